"""Fixtures shared by the whole suite: an isolated ATLAS_HOME per test, the shared evaluation data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ATLAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _shared_model_cache() -> None:
    """Every test store shares one model cache, so the default model is built once per machine."""
    os.environ.setdefault("ATLAS_MODELS", str(Path.home() / ".atlas" / "models"))


@pytest.fixture
def atlas_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ATLAS_HOME (and its Dagster instance folder) for one test."""
    home = tmp_path / "atlas_home"
    home.mkdir()
    monkeypatch.setenv("ATLAS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real evaluation data sets in ../shared/data (read there, never copied)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set ATLAS_SHARED_DATA to its folder")
    return SHARED_DATA
