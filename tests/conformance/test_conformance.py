"""Scripts written as Atlas users write them, run as written (only the import changed from `nomic` to
`atlas_assets`), each in its own process with a fresh ATLAS_HOME. Each asserts on its results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SHARED_DATA

SCRIPTS = sorted((Path(__file__).parent / "scripts").glob("*.py"))


def test_there_are_at_least_eight_scripts_and_none_imports_nomic():
    assert len(SCRIPTS) >= 8
    for script in SCRIPTS:
        text = script.read_text()
        assert "import nomic" not in text and "from nomic" not in text.replace("# was: from nomic", "")
        assert "# was: from nomic" in text, f"{script.name} should say which nomic import it replaces"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[script.stem for script in SCRIPTS])
def test_script_runs_as_written(script: Path, tmp_path: Path):
    home = tmp_path / "atlas_home"
    env = {
        **os.environ,
        "ATLAS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ATLAS_MODELS": os.environ.get("ATLAS_MODELS", str(Path.home() / ".atlas" / "models")),
        "ATLAS_SHARED_DATA": str(SHARED_DATA),
        "PYTHONPATH": str(REPO_ROOT),
        "TQDM_DISABLE": "1",
    }
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
