"""The dataset store: layout, atomic commits, orphans, locks, concurrent writers."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from atlas_assets.compute import tables
from atlas_assets.errors import (
    DatasetLockedError,
    DatasetNotFoundError,
    DuplicateIdError,
    InvalidIdentifierError,
    StoreWriteError,
    UnknownIdsError,
)
from resources.storage.records import IndexRecord
from resources.storage import DatasetStore
from resources.storage.layout import new_batch_id

ORG, SLUG = "acme", "news"


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`: equal fingerprints mean byte-for-byte equal trees."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def ag_news(shared_data: Path) -> pa.Table:
    frame = pd.read_csv(shared_data / "ag_news" / "test.csv", nrows=400)
    return pa.Table.from_pandas(frame, preserve_index=False)


@pytest.fixture
def store(atlas_home: Path) -> DatasetStore:
    store = DatasetStore()
    store.create_dataset(ORG, SLUG, name="News", unique_id_field="id")
    return store


def test_store_defaults_to_atlas_home_and_takes_a_root(atlas_home: Path, tmp_path: Path) -> None:
    assert DatasetStore().home == atlas_home
    assert DatasetStore(root=str(tmp_path / "elsewhere")).home == tmp_path / "elsewhere"


def test_create_lays_out_the_folder_and_record(store: DatasetStore, atlas_home: Path) -> None:
    folder = atlas_home / "datasets" / ORG / SLUG
    assert sorted(p.name for p in folder.iterdir()) == ["batches", "blobs", "dataset.json", "deletions", "indices"]
    record = json.loads((folder / "dataset.json").read_text())
    assert record["organisation"] == ORG and record["slug"] == SLUG and record["unique_id_field"] == "id"
    assert record["arrow_schema"] is None and record["batches"] == [] and record["next_row_id"] == 0
    assert "access_token" not in record  # tokens live in one place: $ATLAS_HOME/web/tokens.json (0600)


def test_find_list_and_get_by_id(store: DatasetStore) -> None:
    record = store.read_record(ORG, SLUG)
    assert store.find_dataset(ORG, "missing") is None
    assert [r.identifier for r in store.list_datasets()] == ["acme/news"]
    assert store.get_dataset_by_id(record.id) == record
    with pytest.raises(DatasetNotFoundError):
        store.get_dataset_by_id("00000000-0000-0000-0000-000000000000")
    with pytest.raises(DatasetNotFoundError):
        store.read_record(ORG, "missing")


def test_create_twice_is_an_error_unless_exist_ok(store: DatasetStore) -> None:
    with pytest.raises(InvalidIdentifierError, match="already exists"):
        store.create_dataset(ORG, SLUG)
    assert store.create_dataset("acme/News", exist_ok=True).id == store.read_record(ORG, SLUG).id


def test_add_batch_assigns_consecutive_row_ids_and_commits(store: DatasetStore, ag_news: pa.Table) -> None:
    first = store.add_batch(ORG, SLUG, ag_news.slice(0, 150))
    second = store.add_batch(ORG, SLUG, ag_news.slice(150, 250))
    assert (first.first_row_id, first.rows, second.first_row_id, second.rows) == (0, 150, 150, 250)
    assert store.batch_ids(ORG, SLUG) == [first.batch_id, second.batch_id]
    batch = store.read_batch(ORG, SLUG, second.batch_id)
    assert batch.column_names[0] == tables.ROW_ID
    assert batch.column(tables.ROW_ID).to_pylist() == list(range(150, 400))
    rows = store.read_rows(ORG, SLUG, columns=["id", "title"])
    assert rows.column_names == ["id", "title"]
    assert rows.column("id").to_pylist() == ag_news.column("id").to_pylist()
    assert store.read_record(ORG, SLUG).next_row_id == 400


def test_batch_ids_sort_in_upload_order_and_are_partition_keys() -> None:
    ids = [new_batch_id()]
    for _ in range(200):
        ids.append(new_batch_id(ids[-1]))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", batch_id) for batch_id in ids)
    future = "29991231T235959999999-abcdef"
    assert new_batch_id(future) > future


def test_delete_ids_tombstones_rows(store: DatasetStore, ag_news: pa.Table) -> None:
    store.add_batch(ORG, SLUG, ag_news.slice(0, 100))
    assert store.delete_ids(ORG, SLUG, [5, 7, 5]) == 2
    assert store.deleted_row_ids(ORG, SLUG).to_pylist() == [5, 7]
    assert store.deleted_ids(ORG, SLUG).to_pylist() == [5, 7]
    assert store.read_record(ORG, SLUG).total_datums == 98
    live = store.read_rows(ORG, SLUG, columns=["id"]).column("id").to_pylist()
    assert 5 not in live and 7 not in live and len(live) == 98
    # deleted rows stay in their batch (row ids stay aligned); readers drop them via the tombstones
    assert store.read_batch(ORG, SLUG, store.batch_ids(ORG, SLUG)[0]).num_rows == 100
    before = fingerprint(store.dataset_dir(ORG, SLUG))
    with pytest.raises(UnknownIdsError, match="5"):
        store.delete_ids(ORG, SLUG, [5, 6])
    assert fingerprint(store.dataset_dir(ORG, SLUG)) == before


def test_a_deleted_id_may_be_added_again(store: DatasetStore, ag_news: pa.Table) -> None:
    store.add_batch(ORG, SLUG, ag_news.slice(0, 10))
    store.delete_ids(ORG, SLUG, [3])
    store.add_batch(ORG, SLUG, ag_news.slice(3, 1))
    assert store.find_rows(ORG, SLUG, [3], columns=[tables.ROW_ID]).column(0).to_pylist() == [10]
    with pytest.raises(DuplicateIdError):
        store.add_batch(ORG, SLUG, ag_news.slice(3, 1))


def test_find_rows_keeps_order_and_names_unknown_ids(store: DatasetStore, ag_news: pa.Table) -> None:
    store.add_batch(ORG, SLUG, ag_news.slice(0, 50))
    store.add_batch(ORG, SLUG, ag_news.slice(50, 50))
    found = store.find_rows(ORG, SLUG, [70, 2, 49, 2], columns=["id", "label"])
    assert found.column("id").to_pylist() == [70, 2, 49, 2]
    with pytest.raises(UnknownIdsError, match="1000, 2000"):
        store.find_rows(ORG, SLUG, [1, 1000, 2000])


def test_update_record_round_trips_indices(store: DatasetStore) -> None:
    index = IndexRecord(
        id="idx1",
        name="map",
        asset_name="map",
        indexed_field="title",
        modality="text",
        embedding_model="NomicEmbed",
        reuse_embeddings_from_index=None,
        projection={"n_neighbors": 15},
        topic_model={"build_topic_model": True},
        duplicate_detection=None,
        created=datetime(2026, 11, 25, 2, 0, tzinfo=UTC),
    )

    def add_index(record):
        record.indices.append(index)
        return record

    store.update_record(ORG, SLUG, add_index)
    assert store.read_record(ORG, SLUG).indices == [index]
    assert store.index_dir(ORG, SLUG, "idx1") == store.dataset_dir(ORG, SLUG) / "indices" / "idx1"

    def rename(record):
        record.slug = "other"
        return record

    with pytest.raises(Exception, match="may not change"):
        store.update_record(ORG, SLUG, rename)


def test_a_failed_rename_leaves_the_dataset_as_before(
    store: DatasetStore, ag_news: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_batch(ORG, SLUG, ag_news.slice(0, 100))
    before = fingerprint(store.dataset_dir(ORG, SLUG))
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".parquet"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StoreWriteError, match="nothing was committed"):
        store.add_batch(ORG, SLUG, ag_news.slice(100, 100))
    monkeypatch.setattr(os, "replace", real_replace)
    assert fingerprint(store.dataset_dir(ORG, SLUG)) == before
    assert store.read_rows(ORG, SLUG).num_rows == 100


def test_a_failed_commit_of_the_record_leaves_no_batch(
    store: DatasetStore, ag_news: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_batch(ORG, SLUG, ag_news.slice(0, 100))
    before = fingerprint(store.dataset_dir(ORG, SLUG))
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("dataset.json"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StoreWriteError):
        store.add_batch(ORG, SLUG, ag_news.slice(100, 100))
    monkeypatch.setattr(os, "replace", real_replace)
    assert fingerprint(store.dataset_dir(ORG, SLUG)) == before
    reloaded = DatasetStore()
    assert reloaded.read_record(ORG, SLUG).total_datums == 100
    assert reloaded.read_rows(ORG, SLUG).num_rows == 100


def test_orphans_of_a_crash_are_ignored_and_cleaned_by_the_next_writer(
    store: DatasetStore, ag_news: pa.Table
) -> None:
    store.add_batch(ORG, SLUG, ag_news.slice(0, 10))
    folder = store.dataset_dir(ORG, SLUG)
    # what a process killed between the batch rename and the dataset.json replace leaves behind
    orphan = folder / "batches" / f"{new_batch_id()}.parquet"
    import pyarrow.parquet as pq

    pq.write_table(ag_news.slice(10, 10), orphan)
    half = folder / "batches" / ".tmp-abc-x.parquet"
    half.write_bytes(b"PAR1 half written")
    stale = folder / ".tmp-123-dataset.json"
    stale.write_text("{")
    assert store.read_rows(ORG, SLUG).num_rows == 10
    assert len(store.batch_ids(ORG, SLUG)) == 1
    store.add_batch(ORG, SLUG, ag_news.slice(20, 5))
    assert not orphan.exists() and not half.exists() and not stale.exists()
    assert store.read_rows(ORG, SLUG).num_rows == 15


def test_delete_dataset_removes_the_folder(store: DatasetStore, ag_news: pa.Table) -> None:
    store.add_batch(ORG, SLUG, ag_news.slice(0, 10))
    folder = store.dataset_dir(ORG, SLUG)
    store.delete_dataset(ORG, SLUG)
    assert not folder.exists() and not list(folder.parent.iterdir())
    assert store.list_datasets() == []
    with pytest.raises(DatasetNotFoundError):
        store.delete_dataset(ORG, SLUG)


def _hold_lock(root: str, kind: str, ready, release) -> None:
    store = DatasetStore(root=root)
    lock = store.writer_lock if kind == "writer" else store.indexing_lock
    with lock(ORG, SLUG):
        ready.set()
        release.wait(30)


@pytest.mark.parametrize("kind", ["writer", "indexing"])
def test_locks_are_seen_across_processes(store: DatasetStore, atlas_home: Path, kind: str) -> None:
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(atlas_home), kind, ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        assert store.is_locked(ORG, SLUG)
        with pytest.raises(DatasetLockedError, match="acme/news is locked"):
            with store.writer_lock(ORG, SLUG, timeout=0.2) if kind == "writer" else store.indexing_lock(
                ORG, SLUG, timeout=0.2
            ):
                pass
        with pytest.raises(DatasetLockedError):
            store.wait_until_unlocked(ORG, SLUG, timeout=0.2)
    finally:
        release.set()
        holder.join(30)
    assert not store.is_locked(ORG, SLUG)


def test_is_locked_sees_this_process_and_the_writer_lock_is_reentrant(store: DatasetStore) -> None:
    assert not store.is_locked(ORG, SLUG)
    with store.writer_lock(ORG, SLUG):
        assert store.is_locked(ORG, SLUG)
        store.update_record(ORG, SLUG, lambda record: record)  # takes the writer lock again
    with store.indexing_lock(ORG, SLUG):
        assert store.is_locked(ORG, SLUG)
    assert not store.is_locked(ORG, SLUG)


def _add_many(root: str, worker: int, batches: int, rows: int) -> None:
    store = DatasetStore(root=root)
    for number in range(batches):
        ids = [f"w{worker}-{number}-{i}" for i in range(rows)]
        table = pa.table({"id": ids, "text": [f"text {i}" for i in ids]})
        store.add_batch(ORG, "parallel", table)


def test_two_processes_adding_at_once_lose_no_rows(atlas_home: Path) -> None:
    store = DatasetStore()
    store.create_dataset(ORG, "parallel", unique_id_field="id")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(str(atlas_home), w, 8, 250)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(240)
        assert worker.exitcode == 0
    record = store.read_record(ORG, "parallel")
    assert len(record.batches) == 16 and record.total_datums == 4000 and record.next_row_id == 4000
    rows = store.read_rows(ORG, "parallel", columns=[tables.ROW_ID, "id"])
    assert rows.column(tables.ROW_ID).to_pylist() == list(range(4000))
    assert len(set(rows.column("id").to_pylist())) == 4000
    assert store.batch_ids(ORG, "parallel") == sorted(store.batch_ids(ORG, "parallel"))


def test_embeddings_and_blob_columns_are_stored(atlas_home: Path) -> None:
    store = DatasetStore()
    store.create_dataset(ORG, "vectors", unique_id_field="id")
    vectors = np.random.default_rng(0).normal(size=(20, 16)).astype(np.float64)
    store.add_batch(ORG, "vectors", pa.table({"id": list(range(20))}), embeddings=vectors)
    column = store.read_rows(ORG, "vectors").column(tables.EMBEDDING)
    assert column.type == pa.list_(pa.float32(), 16)
    np.testing.assert_array_equal(tables.embedding_matrix(column), vectors.astype(np.float32))
    assert store.read_record(ORG, "vectors").embedding_dim == 16


def _crash_before_commit(root: str) -> None:
    """Add a batch but die (no cleanup, no exception handlers) right before dataset.json is replaced."""
    real_replace = os.replace

    def die_on_commit(src, dst):
        if str(dst).endswith("dataset.json"):
            os._exit(17)
        return real_replace(src, dst)

    os.replace = die_on_commit
    store = DatasetStore(root=root)
    store.add_batch(ORG, SLUG, pa.table({"id": list(range(1000, 1050)), "title": ["t"] * 50}))


def test_a_process_killed_mid_write_leaves_the_old_state(store: DatasetStore, ag_news: pa.Table, atlas_home: Path) -> None:
    store.add_batch(ORG, SLUG, ag_news.slice(0, 20).select(["id", "title"]))
    record_before = store.read_record(ORG, SLUG)
    context = multiprocessing.get_context("fork")
    crasher = context.Process(target=_crash_before_commit, args=(str(atlas_home),))
    crasher.start()
    crasher.join(120)
    assert crasher.exitcode == 17
    folder = store.dataset_dir(ORG, SLUG)
    assert len(list((folder / "batches").glob("*.parquet"))) == 2  # the orphan is there ...
    assert store.read_record(ORG, SLUG) == record_before  # ... but not committed
    assert store.read_rows(ORG, SLUG).num_rows == 20
    assert not store.is_locked(ORG, SLUG)  # the dead process's lock died with it
    store.add_batch(ORG, SLUG, ag_news.slice(20, 5).select(["id", "title"]))
    assert len(list((folder / "batches").glob("*.parquet"))) == 2  # orphan cleaned, new batch added
    assert store.read_rows(ORG, SLUG, columns=["id"]).column(0).to_pylist() == list(range(25))


def test_threads_adding_at_once_lose_no_rows(store: DatasetStore) -> None:
    import threading

    def add(worker: int) -> None:
        for number in range(5):
            ids = [f"t{worker}-{number}-{i}" for i in range(100)]
            store.add_batch(ORG, SLUG, pa.table({"id": ids}))

    threads = [threading.Thread(target=add, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = store.read_rows(ORG, SLUG)
    assert rows.num_rows == 2000 and rows.column(tables.ROW_ID).to_pylist() == list(range(2000))
    assert len(set(rows.column("id").to_pylist())) == 2000


def _create(root: str, queue) -> None:
    queue.put(DatasetStore(root=root).create_dataset(ORG, "race", unique_id_field="id", exist_ok=True).id)


def test_processes_creating_one_dataset_at_once_agree_on_it(atlas_home: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    creators = [context.Process(target=_create, args=(str(atlas_home), queue)) for _ in range(3)]
    for creator in creators:
        creator.start()
    ids = {queue.get(timeout=120) for _ in creators}
    for creator in creators:
        creator.join(60)
    assert ids == {DatasetStore().read_record(ORG, "race").id}


def test_add_batch_takes_every_input_kind(store: DatasetStore, ag_news: pa.Table) -> None:
    frame = ag_news.to_pandas()
    store.add_batch(ORG, SLUG, frame.iloc[:10])
    store.add_batch(ORG, SLUG, frame.iloc[10:20].to_dict("records"))
    store.add_batch(ORG, SLUG, (ag_news.slice(start, 5) for start in (20, 25)))  # streamed chunks
    store.add_batch(ORG, SLUG, [ag_news.slice(30, 5), ag_news.slice(35, 5)])
    assert store.read_rows(ORG, SLUG, columns=["id"]).column(0).to_pylist() == list(range(40))
    assert [b.rows for b in store.read_record(ORG, SLUG).batches] == [10, 10, 10, 10]
    assert store.find_rows(ORG, SLUG, [], columns=["id"]).num_rows == 0
