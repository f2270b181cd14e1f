"""The Dagster UI follows the registry by itself: with `atlas ui`'s watcher running against a real
dagster-webserver, a dataset created from Python appears in the UI within seconds, deleting it takes
it away, adding rows does not reload, and the UI stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pandas as pd
import pytest

from atlas_assets import AtlasDataset
from atlas_assets.cli import servers
from atlas_assets.cli.ui_reload import RegistryWatcher, registry_stamp
from tests.cli.test_demo import free_port

pytestmark = pytest.mark.slow

APPEAR_WITHIN_SECONDS = 30  # poll (1 s here, 2 s by default) + one reload of the code location


def _asset_paths(ui_url: str) -> set[str]:
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    request = urllib.request.Request(ui_url + "/graphql", data=query, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        nodes = json.load(response)["data"]["assetNodes"]
    return {"/".join(node["assetKey"]["path"]) for node in nodes}


def _wait_for(condition, timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.5)
    return time.monotonic() - started


def test_new_and_deleted_datasets_show_in_the_running_ui_by_themselves(atlas_home, tmp_path):
    ui = servers.start_dagster_ui("127.0.0.1", free_port(), log_path=tmp_path / "ui.log")
    try:
        ui.wait_until_up(240, probe_path="/server_info")
        watcher = RegistryWatcher(ui.url, poll_seconds=1).start()
        assert "acme/news/raw_data" not in _asset_paths(ui.url)

        dataset = AtlasDataset("acme/news", unique_id_field="id")
        dataset.add_data(pd.DataFrame({"id": ["1", "2"], "text": ["rates rise", "rates fall"]}))
        _wait_for(lambda: "acme/news/raw_data" in _asset_paths(ui.url), APPEAR_WITHIN_SECONDS)
        reloads = watcher.reloads

        dataset.add_data(pd.DataFrame({"id": ["3"], "text": ["rates hold"]}))
        time.sleep(3)
        assert watcher.reloads == reloads  # rows need no reload: partitions live in the instance

        dataset.delete()
        _wait_for(lambda: "acme/news/raw_data" not in _asset_paths(ui.url), APPEAR_WITHIN_SECONDS)
        watcher.stop()
    finally:
        started = time.monotonic()
        ui.process.send_signal(signal.SIGTERM)
        code = ui.process.wait(timeout=90)
        stopped_in = time.monotonic() - started
        ui.stop()
    assert code == 0, f"the UI exited {code} on SIGTERM; log: {tmp_path / 'ui.log'}"
    assert stopped_in < servers.STOP_TIMEOUT_SECONDS


def test_the_stamp_changes_with_datasets_and_maps_not_with_rows(atlas_home):
    empty = registry_stamp()
    dataset = AtlasDataset("acme/news", unique_id_field="id")
    dataset.add_data(pd.DataFrame({"id": ["1"], "text": ["a"]}))
    with_dataset = registry_stamp()
    dataset.add_data(pd.DataFrame({"id": ["2"], "text": ["b"]}))
    assert empty != with_dataset == registry_stamp()
