"""kill -9 in the middle of add_data, delete_data and update_indices, many times, at random moments.

A forked worker loops over an operation and appends a line to an acknowledgement file (fsynced)
after each call returns. The parent kills it with SIGKILL after a random delay, then checks:

- the dataset loads, and its rows are exactly the committed ones: every acknowledged upload or
  deletion is there exactly once; the one in flight is either there in full or not at all;
  row ids stay unique and consecutive; no row is tombstoned twice;
- the dead worker's locks do not block the next writer (flock dies with its process);
- for materialisations, the next update_indices completes the work: the map covers every live row.

Kill counts are bounded (ADD_KILLS, DELETE_KILLS, INDEX_KILLS) and recorded for docs/reliability.md.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from atlas_assets.compute.tables import ROW_ID
from atlas_assets.dataset import AtlasDataset
from atlas_assets.errors import AtlasError
from tests.reliability.support import (
    acknowledge,
    acknowledged,
    digits_vectors,
    kill_hard,
    record_cases,
    start,
    start_indexing,
)

ADD_KILLS = 30
DELETE_KILLS = 30
INDEX_KILLS = 12
ROWS_PER_UPLOAD = 3000
IDS_PER_DELETE = 150


def _no_stale_lock(dataset: AtlasDataset) -> None:
    """The killed writer's locks are free: the next writer gets them at once."""
    assert not dataset.is_locked
    store = dataset.store
    with store.indexing_lock(dataset.organisation, dataset.slug, timeout=5):
        with store.writer_lock(dataset.organisation, dataset.slug, timeout=5):
            pass


def _left_over_files(dataset: AtlasDataset) -> int:
    """Files of an interrupted write (temp files, uncommitted batches) still on disk."""
    folder = dataset.store.dataset_dir(dataset.organisation, dataset.slug)
    record = dataset.store.read_record(dataset.organisation, dataset.slug)
    committed = {f"{b.batch_id}.parquet" for b in record.batches} | {f"{d.deletion_id}.parquet" for d in record.deletions}
    return sum(
        1
        for path in folder.rglob("*")
        if path.is_file() and path.name != "dataset.json" and "indices" not in path.parts and path.name not in committed
        and "blobs" not in path.parts
    )


# ------------------------------------------------------------------------------ add_data


def _upload(number: int) -> pd.DataFrame:
    ids = [f"u{number}-{i}" for i in range(ROWS_PER_UPLOAD)]
    return pd.DataFrame({"id": ids, "text": [f"text of {i} " * 5 for i in ids], "n": np.arange(ROWS_PER_UPLOAD)})


def _keep_adding(ack: str, first: int) -> None:
    dataset = AtlasDataset("crash/adds")
    for number in range(first, first + 1000):
        dataset.add_data(_upload(number))
        acknowledge(Path(ack), str(number))


def test_kill_9_during_add_data_loses_and_duplicates_nothing(atlas_home: Path, tmp_path: Path) -> None:
    dataset = AtlasDataset("crash/adds", unique_id_field="id")
    dataset.add_data(_upload(-1))
    ack = tmp_path / "acks.txt"
    rng = random.Random(9)
    outcomes: Counter[str] = Counter()
    seen: set[str] = set()
    for kill in range(ADD_KILLS):
        acked_before = set(acknowledged(ack))
        worker = start(_keep_adding, str(ack), kill * 1000)
        time.sleep(rng.uniform(0.0, 0.8))
        kill_hard(worker)
        outcomes["left files behind"] += _left_over_files(dataset) > 0

        rows = dataset.store.read_rows(dataset.organisation, dataset.slug, columns=[ROW_ID, "id"])
        ids = rows.column("id").to_pylist()
        assert len(ids) == len(set(ids)), "a row is duplicated"
        record = dataset.store.read_record(dataset.organisation, dataset.slug)
        assert rows.column(ROW_ID).to_pylist() == list(range(record.next_row_id)), "row ids are not consecutive"
        per_upload = Counter(i.split("-")[0][1:] for i in ids)
        assert all(count == ROWS_PER_UPLOAD for count in per_upload.values()), "an upload is partly there"
        acked = set(acknowledged(ack))
        assert acked <= set(per_upload), f"acknowledged uploads lost: {sorted(acked - set(per_upload))}"
        # committed but killed before acknowledging: allowed (it is there in full, checked above)
        outcomes["committed, not acknowledged"] += len(set(per_upload) - acked - acked_before - {""} - seen)
        seen |= set(per_upload)
        outcomes["uploads acknowledged"] = len(acked)
        _no_stale_lock(dataset)
    dataset.add_data(_upload(99_999))  # the next writer cleans what the dead ones left
    assert _left_over_files(dataset) == 0
    record_cases("crash.add_data.kills", ADD_KILLS)
    for name, count in outcomes.items():
        record_cases(f"crash.add_data.{name}", int(count))


# ------------------------------------------------------------------------------ delete_data


def _keep_deleting(ack: str, chunks: list[list[str]]) -> None:
    dataset = AtlasDataset("crash/deletes")
    for number, chunk in enumerate(chunks):
        dataset.delete_data(chunk)
        acknowledge(Path(ack), str(number))


def test_kill_9_during_delete_data_deletes_each_row_once_or_not_at_all(atlas_home: Path, tmp_path: Path) -> None:
    dataset = AtlasDataset("crash/deletes", unique_id_field="id")
    total = 30_000
    all_ids = [f"r{i}" for i in range(total)]
    dataset.add_data(pd.DataFrame({"id": all_ids, "text": [f"row {i}" for i in all_ids]}))
    chunks = [all_ids[i : i + IDS_PER_DELETE] for i in range(0, total, IDS_PER_DELETE)]
    rng = random.Random(10)
    next_chunk = 0
    outcomes: Counter[str] = Counter()
    for kill in range(DELETE_KILLS):
        if next_chunk >= len(chunks) - 10:
            break
        ack = tmp_path / f"acks-{kill}.txt"
        worker = start(_keep_deleting, str(ack), chunks[next_chunk:])
        time.sleep(rng.uniform(0.0, 0.6))
        kill_hard(worker)
        outcomes["left files behind"] += _left_over_files(dataset) > 0

        live = set(dataset.store.live_ids(dataset.organisation, dataset.slug).to_pylist())
        done = len(acknowledged(ack))
        for chunk in chunks[next_chunk : next_chunk + done]:
            assert not live & set(chunk), "an acknowledged deletion is undone"
        in_flight = chunks[next_chunk + done] if next_chunk + done < len(chunks) else []
        present = len(live & set(in_flight))
        assert present in (0, len(in_flight)), f"a deletion is half applied: {present} of {len(in_flight)}"
        outcomes["committed, not acknowledged"] += present == 0 and bool(in_flight)
        for chunk in chunks[next_chunk + done + 1 :]:
            assert set(chunk) <= live, "rows nobody deleted are gone"
        next_chunk += done + (present == 0 and bool(in_flight))
        # no row is tombstoned twice, and the counts agree with the files
        tombstoned = dataset.store.deleted_row_ids(dataset.organisation, dataset.slug)
        assert len(pc.unique(tombstoned)) == len(tombstoned)
        assert dataset.total_datums == len(live) == total - len(tombstoned)
        _no_stale_lock(dataset)
    assert next_chunk > 0
    dataset.delete_data(chunks[-1])
    assert _left_over_files(dataset) == 0
    record_cases("crash.delete_data.kills", kill + 1)
    record_cases("crash.delete_data.deletions acknowledged", next_chunk)
    for name, count in outcomes.items():
        record_cases(f"crash.delete_data.{name}", int(count))


# ------------------------------------------------------------------------------ materialisation

def _run_to_completion(create: bool) -> None:
    worker = start_indexing("crash/vectors", create)
    worker.join(900)
    assert worker.exitcode == 0, f"{'create_index' if create else 'update_indices'} failed (exit code {worker.exitcode})"


def _map_covers_every_live_row(dataset: AtlasDataset) -> None:
    projected = dataset.get_map("map").embeddings.projected
    live = dataset.store.live_ids(dataset.organisation, dataset.slug).to_pylist()
    assert len(projected) == len(live) and set(projected["id"]) == set(live)
    assert np.isfinite(projected[["x", "y"]].to_numpy()).all()


def _readable_or_not_ready(dataset: AtlasDataset) -> None:
    """After a kill the map is readable (old or new outputs) or reported not built: never corrupt."""
    try:
        projected = dataset.get_map("map").embeddings.projected
    except AtlasError:
        return
    assert projected["id"].notna().all() and not projected["id"].duplicated().any()


@pytest.mark.slow
def test_kill_9_during_update_indices_then_the_next_update_completes_the_work(atlas_home: Path) -> None:
    dataset = AtlasDataset("crash/vectors", unique_id_field="id")
    frame, vectors = digits_vectors(300)
    dataset.add_data(frame, embeddings=vectors)
    _run_to_completion(create=True)
    rng = random.Random(11)
    added = 300
    for kill in range(INDEX_KILLS):
        frame, vectors = digits_vectors(40, start=added)
        dataset.add_data(frame, embeddings=vectors)
        added += 40
        worker = start_indexing("crash/vectors", False)
        time.sleep(rng.uniform(2.0, 12.0))  # a spawned worker imports for ~2 s, then works ~5-10 s
        kill_hard(worker)
        record = dataset.store.read_record(dataset.organisation, dataset.slug)
        assert record.total_datums == added
        _readable_or_not_ready(dataset)
        _no_stale_lock(dataset)
        if kill % 4 == 3:
            _run_to_completion(create=False)
            _map_covers_every_live_row(dataset)
    _run_to_completion(create=False)
    _map_covers_every_live_row(dataset)
    record_cases("crash.update_indices.kills", INDEX_KILLS)


# ------------------------------------------------------------------------------ a dead run's slot

def _pooled_step_that_hangs(ready: str) -> None:
    import dagster as dg

    from resources.instance import get_instance
    from tests.reliability.support import run_in_process

    @dg.asset(pool="atlas_embedding")
    def embedding_like() -> None:
        Path(ready).write_text("in the pooled step")
        time.sleep(3600)

    run_in_process([embedding_like], get_instance())


def test_a_run_killed_in_the_embedding_pool_does_not_block_later_runs(atlas_home: Path, tmp_path: Path) -> None:
    import dagster as dg

    from atlas_assets.pipeline.runner import release_dead_runs
    from resources.instance import get_instance
    from tests.reliability.support import run_in_process, wait_for_file

    ready = tmp_path / "ready"
    worker = start(_pooled_step_that_hangs, str(ready))
    wait_for_file(ready, timeout=300)
    kill_hard(worker)
    instance = get_instance()
    assert instance.event_log_storage.get_concurrency_info("atlas_embedding").claimed_slots, "the dead run holds the slot"
    released = release_dead_runs(instance)
    assert len(released) == 1
    assert instance.get_run_by_id(released[0]).status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info("atlas_embedding").claimed_slots

    @dg.asset(pool="atlas_embedding")
    def next_embedding() -> int:
        return 1

    run_in_process([next_embedding], instance)  # would wait for ever without the release
