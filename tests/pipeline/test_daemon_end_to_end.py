"""The hands-off path, as a user meets it: `atlas ui` (a real dagster-webserver and daemon, with the
registry watcher) already running on a fresh ATLAS_HOME; then a dataset is created, a file dropped in
its inbox reaches the map (inbox sensor + declarative automation), deleted rows leave the map without
anyone running an update (the deletions asset + automation), and a file of the wrong type is rejected
with its reason where a Dagster user looks (the inbox's failing check)."""

import time

import dagster as dg
import pytest

from atlas_assets.cli import servers
from atlas_assets.cli.ui_reload import RegistryWatcher
from atlas_assets.dataset import AtlasDataset
from atlas_assets.errors import AtlasError
from atlas_assets.pipeline.naming import DatasetNames
from atlas_assets.pipeline.sensors import INBOX_CHECK, inbox_dir
from resources.instance import get_instance
from tests.cli.test_demo import free_port
from tests.conftest import news_frame

DEADLINE_SECONDS = 480  # the daemon picks a new dataset up on its next workspace reload (60 s)


def _rows_on_map(atlas_map) -> tuple[int, int, int]:
    try:
        return (
            len(atlas_map.embeddings.projected),
            len(atlas_map.topics.df),
            len(atlas_map.duplicates.df),
        )
    except AtlasError:
        return (0, 0, 0)


def _wait(condition, what: str, log_path) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(3)
    raise AssertionError(f"{what} did not happen within {DEADLINE_SECONDS} s; log tail:\n{log_path.read_text()[-4000:]}")


@pytest.mark.slow
def test_files_deletions_and_bad_files_take_the_hands_off_path_with_the_ui_running(atlas_home, shared_data, tmp_path):
    log_path = tmp_path / "dagster-dev.log"
    ui = servers.start_dagster_ui("127.0.0.1", free_port(), log_path=log_path)
    try:
        ui.wait_until_up(240, probe_path="/server_info")
        watcher = RegistryWatcher(ui.url, poll_seconds=1).start()

        dataset = AtlasDataset("acme/live-news", unique_id_field="id")
        dataset.add_data(news_frame(shared_data, rows=60))
        atlas_map = dataset.create_index(name="news", indexed_field="text")
        assert _rows_on_map(atlas_map) == (60, 60, 60)

        folder = inbox_dir("acme", "live-news")
        folder.mkdir(parents=True)
        news_frame(shared_data, start=60, rows=20).to_csv(folder / "new.csv", index=False)
        _wait(lambda: _rows_on_map(atlas_map) == (80, 80, 80), "the dropped file reaching the map", log_path)
        assert (folder / "done" / "new.csv").exists()
        assert "79" in set(atlas_map.embeddings.projected["id"])

        dataset.delete_data([str(i) for i in range(5)])
        _wait(lambda: _rows_on_map(atlas_map) == (75, 75, 75), "the deleted rows leaving the map", log_path)
        assert not {"0", "4"} & set(atlas_map.embeddings.projected["id"])

        (folder / "notes.tsv").write_text("id\ttext\n900\thello\n")
        check = dg.AssetCheckKey(DatasetNames("acme", "live-news").inbox, INBOX_CHECK)

        def rejected() -> bool:
            latest = get_instance().event_log_storage.get_latest_asset_check_execution_by_key([check]).get(check)
            return latest is not None and latest.event is not None and not latest.event.dagster_event.event_specific_data.passed

        _wait(rejected, "the .tsv file's rejection", log_path)
        assert (folder / "rejected" / "notes.tsv.error.txt").exists() and dataset.total_datums == 75
        watcher.stop()
    finally:
        ui.stop()
