"""The Dagster instance on PostgreSQL, for real: create_index and update_indices write their runs
and materialisations to a PostgreSQL server, and two processes materialise different datasets at the
same time against it. The instance is configured with the repository's own deploy/dagster.yaml.

Data: the handwritten digits bundled with scikit-learn as the user's own vectors (no text model, so
the pipeline runs in seconds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.postgres

DIGITS_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd
    from sklearn.datasets import load_digits
    from atlas_assets import AtlasDataset

    def rows(start, count):
        data = load_digits()
        frame = pd.DataFrame({"id": [f"d{i}" for i in range(start, start + count)],
                              "digit": [str(t) for t in data.target[start:start + count]]})
        return frame, (data.data[start:start + count] / 16.0).astype(np.float32)

    name, offset = sys.argv[1], int(sys.argv[2])
    dataset = AtlasDataset(name, unique_id_field="id")
    dataset.add_data(*rows(offset, 200))
    atlas_map = dataset.create_index(name="digits", topic_model={"topic_label_field": "digit"})
    dataset.add_data(*rows(offset + 200, 20))
    dataset.update_indices()
    assert len(atlas_map.embeddings.projected) == 220
    print("done", name)
    """
)


@pytest.fixture
def postgres_home(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ATLAS_HOME whose Dagster instance is deploy/dagster.yaml pointed at a fresh database."""
    home = tmp_path / "atlas_home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("ATLAS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url)
    return home


def test_create_index_and_update_indices_record_their_runs_in_postgres(postgres_home):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    from atlas_assets.pipeline.naming import DatasetNames
    from resources.instance import get_instance

    script = postgres_home / "digits.py"
    script.write_text(DIGITS_SCRIPT)
    completed = subprocess.run([sys.executable, str(script), "pg/digits", "0"], capture_output=True, text=True,
                               cwd=REPO_ROOT, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]

    instance = get_instance()
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    runs = instance.get_runs()
    # create_index: one run for the batch, one for the stages over all batches; update_indices: the same
    assert len(runs) == 4 and all(run.is_success for run in runs)
    from atlas_assets import AtlasDataset

    index = AtlasDataset("pg/digits").indices[0]
    names = DatasetNames("pg", "digits")
    for stage in ("neighbour_graph", "projection", "topics", "duplicates"):
        events = instance.fetch_materializations(names.stage(index.asset_name, stage), limit=10).records
        assert len(events) == 2, stage  # built, then updated
    batches = instance.get_dynamic_partitions(names.partitions)
    assert len(batches) == 2


@pytest.mark.slow
def test_two_processes_materialise_different_datasets_at_the_same_time(postgres_home):
    from atlas_assets.pipeline.naming import STAGES, DatasetNames
    from resources.instance import get_instance

    script = postgres_home / "digits.py"
    script.write_text(DIGITS_SCRIPT)
    env = dict(os.environ)
    workers = [
        subprocess.Popen([sys.executable, str(script), name, str(offset)], cwd=REPO_ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, offset in (("pg/left", 0), ("pg/right", 1000))
    ]
    results = [worker.communicate(timeout=1200) for worker in workers]
    for worker, (out, err) in zip(workers, results):
        assert worker.returncode == 0, err[-3000:]
        assert out.strip().startswith("done")

    instance = get_instance()
    records = instance.get_run_records()
    assert len(records) == 8 and all(record.dagster_run.is_success for record in records)
    windows = {}
    by_id = {record.dagster_run.run_id: record for record in records}
    for dataset in ("left", "right"):
        names = DatasetNames("pg", dataset)
        keys = [names.raw_data] + [names.stage("digits", stage) for stage in STAGES]
        run_ids = {event.run_id for key in keys for event in instance.fetch_materializations(key, limit=100).records}
        assert len(run_ids) == 4, dataset  # its two batch runs and its two runs over all batches
        mine = [by_id[run_id] for run_id in run_ids]
        windows[dataset] = (min(r.start_time for r in mine), max(r.end_time for r in mine))
    # the two processes' runs overlapped in time: both wrote to the one database concurrently
    (left_start, left_end), (right_start, right_end) = windows["left"], windows["right"]
    assert left_start < right_end and right_start < left_end
