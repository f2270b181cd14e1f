"""Many writers and readers on one dataset at once: no lost rows, no torn reads, no lock errors.

Workers are forked processes (separate interpreters, separate file locks), as a notebook, the
daemon's sensor and `atlas` commands would be. Every worker acknowledges what it did; the parent
checks the dataset against the acknowledgements once all are done.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atlas_assets.compute.tables import ROW_ID
from atlas_assets.dataset import AtlasDataset
from atlas_assets.pipeline.sensors import ingest_inbox, inbox_dir
from resources.storage import DatasetStore
from tests.reliability.support import acknowledge, acknowledged, digits_vectors, record_cases, start, start_indexing

log = logging.getLogger(__name__)


def _join_all(workers, timeout: float = 600) -> None:
    for worker in workers:
        worker.join(timeout)
        assert worker.exitcode == 0, f"a worker failed (exit code {worker.exitcode})"


# ------------------------------------------------------------------------------ adders and deleters


def _adder(ack: str, worker: int, uploads: int, rows: int) -> None:
    dataset = AtlasDataset("many/writers")
    for number in range(uploads):
        ids = [f"a{worker}-{number}-{i}" for i in range(rows)]
        dataset.add_data(pd.DataFrame({"id": ids, "text": ids}))
        acknowledge(Path(ack), f"add {worker}-{number}")


def _deleter(ack: str, ids: list[str], chunk: int) -> None:
    dataset = AtlasDataset("many/writers")
    for start_at in range(0, len(ids), chunk):
        dataset.delete_data(ids[start_at : start_at + chunk])
        acknowledge(Path(ack), f"delete {start_at}")


def _reader(ack: str, seconds: float) -> None:
    """Reads the whole dataset over and over: every read must be one committed state."""
    store = DatasetStore()
    deadline = time.monotonic() + seconds
    reads = 0
    while time.monotonic() < deadline:
        rows = store.read_rows("many", "writers", columns=[ROW_ID, "id"])
        ids = rows.column("id").to_pylist()
        assert len(ids) == len(set(ids)), "torn read: an id twice"
        record = store.read_record("many", "writers")
        assert rows.column(ROW_ID).to_pylist() == sorted(rows.column(ROW_ID).to_pylist())
        assert record.next_row_id >= len(ids)
        reads += 1
    acknowledge(Path(ack), f"reads {reads}")


def test_processes_adding_deleting_and_reading_at_once_lose_nothing(atlas_home: Path, tmp_path: Path) -> None:
    dataset = AtlasDataset("many/writers", unique_id_field="id")
    preloaded = [f"p{i}" for i in range(4000)]
    dataset.add_data(pd.DataFrame({"id": preloaded, "text": preloaded}))
    ack = tmp_path / "acks.txt"
    adders = [start(_adder, str(ack), worker, 6, 300) for worker in range(3)]
    deleters = [start(_deleter, str(ack), preloaded[part::2][:1500], 100) for part in range(2)]
    readers = [start(_reader, str(ack), 8.0)]
    _join_all(adders + deleters + readers)

    done = acknowledged(ack)
    assert sum(line.startswith("add") for line in done) == 18
    assert sum(line.startswith("delete") for line in done) == 30
    deleted = set(preloaded[0::2][:1500]) | set(preloaded[1::2][:1500])
    added = {f"a{w}-{n}-{i}" for w in range(3) for n in range(6) for i in range(300)}
    live = dataset.store.live_ids(dataset.organisation, dataset.slug).to_pylist()
    assert len(live) == len(set(live))
    assert set(live) == (set(preloaded) - deleted) | added
    assert dataset.total_datums == len(live) == 4000 - 3000 + 5400
    reads = int(next(line for line in done if line.startswith("reads")).split()[1])
    record_cases("concurrency.writers.consistent_reads", reads)


# ------------------------------------------------------------------------------ inbox + Python API


def _inbox_sensor_ticks(seconds: float) -> None:
    """The body of the daemon's inbox sensor, ticking as fast as it can."""
    store = DatasetStore()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = store.read_record("many", "inbox")
        ingest_inbox(store, record, log)
        time.sleep(0.05)


def _drop_files(count: int, rows: int) -> None:
    folder = inbox_dir("many", "inbox")
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        ids = [f"f{number}-{i}" for i in range(rows)]
        temp = folder / f".f{number}.csv.part"
        pd.DataFrame({"id": ids, "text": ids}).to_csv(temp, index=False)
        temp.rename(folder / f"f{number}.csv")  # written aside, then renamed in: the documented way
        time.sleep(0.1)


def _python_api(ack: str, uploads: int) -> None:
    dataset = AtlasDataset("many/inbox")
    for number in range(uploads):
        ids = [f"py{number}-{i}" for i in range(200)]
        dataset.add_data(pd.DataFrame({"id": ids, "text": ids}))
        dataset.delete_data(ids[:50])
        acknowledge(Path(ack), str(number))


def test_the_inbox_sensor_and_the_python_api_share_a_dataset(atlas_home: Path, tmp_path: Path) -> None:
    dataset = AtlasDataset("many/inbox", unique_id_field="id")
    dataset.add_data(pd.DataFrame({"id": ["seed"], "text": ["seed"]}))
    ack = tmp_path / "acks.txt"
    workers = [start(_inbox_sensor_ticks, 12.0), start(_drop_files, 15, 150), start(_python_api, str(ack), 10)]
    _join_all(workers)
    _inbox_sensor_ticks(1.0)  # a last tick for a file dropped at the very end

    folder = inbox_dir("many", "inbox")
    assert sorted(p.name for p in (folder / "done").iterdir()) == sorted(f"f{n}.csv" for n in range(15))
    assert not (folder / "rejected").exists()
    live = dataset.store.live_ids(dataset.organisation, dataset.slug).to_pylist()
    expected = {"seed"} | {f"f{n}-{i}" for n in range(15) for i in range(150)}
    expected |= {f"py{n}-{i}" for n in range(10) for i in range(50, 200)}
    assert len(live) == len(set(live)) and set(live) == expected
    assert len(acknowledged(ack)) == 10


def _slow_copy(target: str, frame_csv: bytes, pieces: int) -> None:
    """A person copying a big file straight into the inbox (not written aside first)."""
    with open(target, "wb") as handle:
        size = len(frame_csv) // pieces + 1
        for piece in range(pieces):
            handle.write(frame_csv[piece * size : (piece + 1) * size])
            handle.flush()
            time.sleep(0.15)


def test_a_file_still_being_copied_into_the_inbox_is_not_ingested_half(atlas_home: Path) -> None:
    dataset = AtlasDataset("many/inbox", unique_id_field="id")
    dataset.add_data(pd.DataFrame({"id": ["seed"], "text": ["seed"]}))
    folder = inbox_dir("many", "inbox")
    folder.mkdir(parents=True)
    ids = [f"big-{i}" for i in range(20_000)]
    data = pd.DataFrame({"id": ids, "text": ids}).to_csv(index=False).encode()
    copier = start(_slow_copy, str(folder / "big.csv"), data, 20)
    ticker = start(_inbox_sensor_ticks, 5.0)
    _join_all([copier, ticker])
    _inbox_sensor_ticks(0.5)
    assert dataset.total_datums in (1, 20_001), f"{dataset.total_datums - 1} of 20000 rows ingested"
    assert dataset.total_datums == 20_001 and not (folder / "rejected").exists()


# ------------------------------------------------------------------------------ materialising while adding

def _projected_is_consistent(dataset: AtlasDataset, sizes: set[int]) -> int:
    projected = dataset.get_map("map").embeddings.projected
    assert len(projected) in sizes, f"{len(projected)} rows is no committed state ({sorted(sizes)})"
    assert projected["id"].notna().all() and not projected["id"].duplicated().any()
    assert np.isfinite(projected[["x", "y"]].to_numpy()).all()
    return len(projected)


@pytest.mark.slow
def test_rows_added_during_a_materialisation_appear_after_the_next_update(atlas_home: Path) -> None:
    dataset = AtlasDataset("many/vectors", unique_id_field="id")
    frame, vectors = digits_vectors(300)
    dataset.add_data(frame, embeddings=vectors)
    creator = start_indexing("many/vectors", True)
    creator.join(600)
    assert creator.exitcode == 0
    sizes = {300}
    frame, vectors = digits_vectors(60, start=300)
    dataset.add_data(frame, embeddings=vectors)
    sizes.add(360)
    updater = start_indexing("many/vectors", False)
    added, reads = 360, 0
    while updater.is_alive():  # add rows and read the map while the run writes
        if added < 600:
            frame, vectors = digits_vectors(40, start=added)
            dataset.add_data(frame, embeddings=vectors)
            added += 40
            sizes.add(added)
        _projected_is_consistent(dataset, sizes)
        reads += 1
        time.sleep(0.2)
    assert updater.exitcode == 0
    _projected_is_consistent(dataset, sizes)
    _join_all([start_indexing("many/vectors", False)])  # the next update brings every row added mid-run onto the map
    assert _projected_is_consistent(dataset, {added}) == added
    record_cases("concurrency.map_reads_during_a_run", reads)


@pytest.mark.slow
def test_materialisations_of_three_datasets_share_one_sqlite_instance(atlas_home: Path) -> None:
    """Three processes write run and event records into one SQLite instance at once."""
    for number in range(3):
        dataset = AtlasDataset(f"many/parallel-{number}", unique_id_field="id")
        frame, vectors = digits_vectors(200, start=200 * number)
        dataset.add_data(frame, embeddings=vectors)
    workers = [start_indexing(f"many/parallel-{number}", True) for number in range(3)]
    _join_all(workers)
    for number in range(3):
        frame, vectors = digits_vectors(50, start=1000 + 50 * number)
        AtlasDataset(f"many/parallel-{number}").add_data(frame, embeddings=vectors)
    workers = [start_indexing(f"many/parallel-{number}", False) for number in range(3)]
    _join_all(workers)
    for number in range(3):
        _projected_is_consistent(AtlasDataset(f"many/parallel-{number}"), {250})


def _many_small_runs(number: int, runs: int, ack: str) -> None:
    import dagster as dg

    from resources.instance import get_instance
    from tests.reliability.support import run_in_process

    @dg.asset(name=f"tiny_{number}")
    def tiny() -> int:
        return number

    instance = get_instance()
    for _ in range(runs):
        run_in_process([tiny], instance)  # a PipelineError or an OperationalError fails the worker
        acknowledge(Path(ack), f"run {number}")


def _instance_reader(seconds: float, ack: str) -> None:
    """What the Dagster UI and the daemon do meanwhile: read runs and events."""
    from resources.instance import get_instance

    instance = get_instance()
    deadline = time.monotonic() + seconds
    reads = 0
    while time.monotonic() < deadline:
        for run in instance.get_runs(limit=20):
            instance.all_logs(run.run_id)
        reads += 1
    acknowledge(Path(ack), f"reads {reads}")


@pytest.mark.slow
def test_many_processes_writing_one_sqlite_instance_never_see_database_is_locked(atlas_home: Path, tmp_path: Path) -> None:
    from resources.instance import get_instance

    get_instance()  # create the instance folder once, before the workers race for it
    ack = tmp_path / "acks.txt"
    workers = [start(_many_small_runs, number, 5, str(ack)) for number in range(4)]
    workers.append(start(_instance_reader, 15.0, str(ack)))
    _join_all(workers)
    assert sum(line.startswith("run") for line in acknowledged(ack)) == 20
    record_cases("concurrency.sqlite_runs_at_once", 20)


def _churn_datasets(seconds: float) -> None:
    store = DatasetStore()
    deadline = time.monotonic() + seconds
    number = 0
    while time.monotonic() < deadline:
        store.create_dataset("churn", f"d{number % 5}", unique_id_field="id", exist_ok=True)
        store.delete_dataset("churn", f"d{number % 5}")
        number += 1


def test_listing_datasets_while_others_are_created_and_deleted_never_fails(atlas_home: Path) -> None:
    """What `atlas serve` does on every request while a notebook creates and deletes datasets."""
    store = DatasetStore()
    store.create_dataset("stays", "here", unique_id_field="id")
    churner = start(_churn_datasets, 6.0)
    listings = 0
    while churner.is_alive():
        identifiers = {record.identifier for record in store.list_datasets()}
        assert "stays/here" in identifiers
        listings += 1
    _join_all([churner])
    assert listings > 100
    record_cases("concurrency.listings_during_churn", listings)


@pytest.mark.slow
def test_processes_opening_a_new_instance_at_once_all_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook and the daemon starting on a fresh ATLAS_HOME at the same moment."""
    from tests.reliability.support import SPAWN, open_instance

    outcomes = []
    for trial in range(2):
        home = tmp_path / f"home-{trial}"
        monkeypatch.setenv("ATLAS_HOME", str(home))
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        results = [tmp_path / f"result-{trial}-{n}" for n in range(4)]
        workers = [SPAWN.Process(target=open_instance, args=(str(path),)) for path in results]
        for worker in workers:
            worker.start()
        _join_all(workers)
        outcomes += [path.read_text() for path in results]
    assert outcomes == ["ok"] * 8, [o for o in outcomes if o != "ok"]
