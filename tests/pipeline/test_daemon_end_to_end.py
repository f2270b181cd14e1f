"""A real dagster-daemon against a temporary ATLAS_HOME: a file dropped in the inbox ends up on the map
through the inbox sensor (ingest + partition + run) and declarative automation (every later stage)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_assets.dataset import AtlasDataset
from atlas_assets.errors import AtlasError
from atlas_assets.pipeline.sensors import inbox_dir
from tests.conftest import REPO_ROOT, news_frame

DEADLINE_SECONDS = 420


def _daemon(atlas_home: Path, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "ATLAS_HOME": str(atlas_home), "DAGSTER_HOME": str(atlas_home / "dagster")}
    daemon = Path(sys.executable).with_name("dagster-daemon")
    return subprocess.Popen(
        [str(daemon), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _rows_on_map(atlas_map) -> tuple[int, int, int]:
    try:
        return (
            len(atlas_map.embeddings.projected),
            len(atlas_map.topics.df),
            len(atlas_map.duplicates.df),
        )
    except AtlasError:
        return (0, 0, 0)


@pytest.mark.slow
def test_a_file_in_the_inbox_reaches_the_map_through_the_daemon(atlas_home, shared_data, tmp_path):
    dataset = AtlasDataset("acme/live-news", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=60))
    atlas_map = dataset.create_index(name="news", indexed_field="text")
    assert _rows_on_map(atlas_map) == (60, 60, 60)

    log_path = tmp_path / "daemon.log"
    process = _daemon(atlas_home, log_path)
    try:
        folder = inbox_dir("acme", "live-news")
        folder.mkdir(parents=True)
        news_frame(shared_data, start=60, rows=20).to_csv(folder / "new.csv", index=False)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline and _rows_on_map(atlas_map) != (80, 80, 80):
            assert process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(3)
        assert _rows_on_map(atlas_map) == (80, 80, 80), log_path.read_text()[-5000:]
        assert (folder / "done" / "new.csv").exists()
        assert "79" in set(atlas_map.embeddings.projected["id"])
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
