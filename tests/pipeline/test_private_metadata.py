"""A private dataset puts no row content in Dagster (issue 21): built through real Dagster runs,
the instance's event log (every run's events, every materialisation, observation and check, and the
raw bytes of every file under DAGSTER_HOME) holds none of its words, while the same scan finds a
public dataset's words (its preview and topic names), so the scan would see a leak."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from atlas_assets.dataset import AtlasDataset
from atlas_assets.pipeline.naming import DatasetNames

THEMES = ["harbour ships cargo", "violin concert orchestra", "volcano lava eruption", "wheat harvest farm"]


def _rows(marker: str, count: int = 160) -> list[dict]:
    """Rows whose every text carries made-up words starting with `marker` (found nowhere else)."""
    rows = []
    for number in range(count):
        theme = number % len(THEMES)
        words = f"{marker}{theme}alpha {marker}{theme}beta {marker}row{number}"
        rows.append({"id": f"r{number}", "text": f"{words} about {THEMES[theme]} and {marker}{theme}gamma"})
    return rows


def _event_log_text(instance: dg.DagsterInstance) -> str:
    """Everything the instance keeps about runs (events, checks, logs) and assets, as text."""
    from dagster._serdes import serialize_value

    parts = []
    for run in instance.get_runs():
        parts.extend(serialize_value(entry) for entry in instance.all_logs(run.run_id))
    for key in instance.get_asset_keys():  # runless events too (the deletions asset's reports)
        for fetch in (instance.fetch_materializations, instance.fetch_observations):
            parts.extend(serialize_value(record.event_log_entry) for record in fetch(key, limit=10_000).records)
    return "\n".join(parts)


def _instance_files_text(home: Path) -> str:
    return "\n".join(path.read_bytes().decode("latin-1") for path in home.rglob("*") if path.is_file())


def test_a_private_dataset_leaves_no_row_content_in_the_dagster_instance(atlas_home: Path) -> None:
    from resources.instance import get_instance

    private = AtlasDataset("closed/notes", unique_id_field="id", is_public=False)
    private.add_data(_rows("zorblat"))
    private.create_index(indexed_field="text", projection={"n_neighbors": 10, "n_epochs": 50},
                         duplicate_detection=False)
    private.delete_data(["r3"])
    public = AtlasDataset("open/notes", unique_id_field="id")
    public.add_data(_rows("plonkish"))
    public.create_index(indexed_field="text", projection={"n_neighbors": 10, "n_epochs": 50},
                        duplicate_detection=False)

    instance = get_instance()
    raw_key = DatasetNames("closed", "notes").raw_data
    shown = instance.get_latest_materialization_event(raw_key).asset_materialization.metadata
    assert shown["dagster/row_count"].value == 160 and "text" in shown["columns"].value  # counts and schema
    assert "preview" not in shown
    logged = _event_log_text(instance)
    files = _instance_files_text(Path(instance.root_directory))
    for where in (logged, files):
        assert "plonkish" in where  # the scan sees a public dataset's rows ...
        assert "zorblat" not in where  # ... and nothing of the private one's
