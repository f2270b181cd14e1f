"""`atlas demo` / `make demo`: a real map from real text every Python machine has, then the two UIs.

The text is the docstrings of the standard library and the installed packages
(`resources.demo_corpus`), with the top-level package as a category field. The first run builds
the dataset and its map through the same pipeline as any dataset (a few minutes on 2 cores); a second
run finds both, updates the map only if something is stale (or the limit grew), and starts the
Dagster UI and the map server in seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa

DEMO_DATASET = "demo/python-docstrings"
DEMO_MAP = "docstrings"
DEMO_DESCRIPTION = "Docstrings of the Python standard library and the installed packages"
# 8,000 documents: about 3 to 6 minutes of embedding on 2 cores, enough for a map with real structure.
DEFAULT_LIMIT = 8_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoState:
    """What `prepare_demo` found and did."""

    identifier: str
    map_name: str
    map_link: str
    rows: int
    rows_added: int
    built: bool
    updated: bool
    seconds: float


@lru_cache(maxsize=1)
def _every_docstring() -> tuple:
    """The whole corpus in its stable order, parsed once per process (about 30 s of CPU)."""
    from resources.demo_corpus import collect

    return tuple(collect())


def corpus_table(limit: int, skip_ids: set[str] | None = None) -> pa.Table:
    """`limit` docstrings as id, package (the category), module, name, kind, text (minus `skip_ids`).

    The first `limit` of the stable order, so a larger limit adds to a smaller one.
    """
    docs = [doc for doc in _every_docstring()[:limit] if not skip_ids or doc.id not in skip_ids]
    return pa.table(
        {
            "id": [doc.id for doc in docs],
            "package": [doc.package for doc in docs],
            "module": [doc.module for doc in docs],
            "name": [doc.name for doc in docs],
            "kind": [doc.kind for doc in docs],
            "text": [doc.text for doc in docs],
        }
    )


def prepare_demo(limit: int = DEFAULT_LIMIT, say: Callable[[str], None] = print) -> DemoState:
    """Create or reuse the demo dataset and map; add rows up to `limit`; update what is stale."""
    from atlas_assets.client.dataset import AtlasDataset
    from atlas_assets.client.status import dataset_status
    from resources.model_store import install_model, is_installed

    started = time.perf_counter()
    if not is_installed():
        say("building the default embedding model (once per machine)...")
        install_model()
    dataset = AtlasDataset(DEMO_DATASET, unique_id_field="id", description=DEMO_DESCRIPTION)
    record = dataset._record()  # noqa: SLF001 - counts committed rows, deleted ones included
    added = 0
    if record.total_rows < limit:
        say(f"collecting up to {limit:,} docstrings of the standard library and installed packages...")
        existing: set[str] = set()
        if record.total_rows:
            ids = dataset.store.read_rows(dataset.organisation, dataset.slug, columns=["id"])["id"]
            existing = set(ids.to_pylist()) | set(dataset.store.deleted_ids(dataset.organisation, dataset.slug).to_pylist())
        table = corpus_table(limit, existing)
        if table.num_rows:
            say(f"adding {table.num_rows:,} docstrings to {dataset.identifier}")
            dataset.add_data(table)
            added = table.num_rows
    built = updated = False
    if not any(index.name == DEMO_MAP for index in dataset.indices):
        say(f"building the map of {dataset.total_datums:,} docstrings (embeddings, graph, layout, topics, duplicates);"
            " the runs show up in the Dagster UI")
        dataset.create_index(name=DEMO_MAP, indexed_field="text", topic_model={"topic_label_field": "text"})
        built = True
    elif dataset_status(dataset.store, dataset.organisation, dataset.slug).is_stale:
        say("the map is behind its data: updating it (only new rows are embedded)")
        dataset.update_indices()
        updated = True
    atlas_map = dataset.get_map(name=DEMO_MAP)
    return DemoState(
        identifier=dataset.identifier,
        map_name=DEMO_MAP,
        map_link=atlas_map.map_link,
        rows=dataset.total_datums,
        rows_added=added,
        built=built,
        updated=updated,
        seconds=round(time.perf_counter() - started, 1),
    )


def run_demo(
    limit: int = DEFAULT_LIMIT,
    serve: bool = True,
    host: str = "127.0.0.1",
    ui_port: int = 3000,
    map_port: int = 8765,
    say: Callable[[str], None] = print,
) -> int:
    """Prepare the demo, then run the Dagster UI and the map server until Ctrl-C (unless serve=False)."""
    import os

    from atlas_assets.cli import servers
    from atlas_assets.config import atlas_home

    if serve:  # fail before the long work when a port is taken
        servers.require_loopback_map_host(host)
        servers.require_free_port(host, ui_port, "Dagster UI", "--ui-port")
        servers.require_free_port(host, map_port, "map server", "--map-port")
        shown = f"[{host}]" if ":" in host else host
        os.environ.setdefault("ATLAS_MAP_URL", f"http://{shown}:{map_port}")
    state = prepare_demo(limit, say=say)
    what = "built" if state.built else "updated" if state.updated else "reused"
    say(f"{state.identifier}: {state.rows:,} docstrings, map {state.map_name!r} {what} ({state.seconds:.0f} s)")
    if not serve:
        say(f"map page (start it with `atlas serve`): {state.map_link}")
        return 0
    logs = atlas_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ui = servers.start_dagster_ui(host, ui_port, log_path=logs / "dagster-dev.log")
    maps = servers.start_map_server(host, map_port, log_path=logs / "map-server.log")
    try:
        maps.wait_until_up(60)
        ui.wait_until_up(240, probe_path="/server_info")
    except BaseException:
        ui.stop()
        maps.stop()
        raise
    say("")
    say(f"  map:        {state.map_link}")
    say(f"  Dagster UI: {ui.url}/assets  (asset lineage, runs, sensors, schedules)")
    say(f"  logs:       {logs}")
    say("  Ctrl-C stops both.")
    sys.stdout.flush()
    from atlas_assets.cli.ui_reload import RegistryWatcher

    watcher = RegistryWatcher(ui.url).start()
    try:
        return servers.wait_for_children([ui, maps])
    finally:
        watcher.stop()
