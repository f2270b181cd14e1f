"""The inbox sensor turns dropped files into batches, partitions and run requests."""

import dagster as dg
import pandas as pd
import pytest

from atlas_assets.dataset import AtlasDataset
from atlas_assets.client.index_request import new_index_record
from atlas_assets.pipeline.factory import batches_partitions
from atlas_assets.pipeline.sensors import inbox_dir, inbox_sensor
from resources.storage import DatasetStore
from tests.conftest import news_frame


@pytest.fixture
def dataset_with_index(atlas_home, shared_data):
    dataset = AtlasDataset("acme/inbox-test", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=30))
    store = dataset._store
    index = new_index_record(store.read_record("acme", "inbox-test"), name="map", indexed_field="text")
    record = store.update_record("acme", "inbox-test", lambda r: r.model_copy(update={"indices": [index]}))
    return dataset, record


def _tick(record, instance):
    sensor = inbox_sensor(record, batches_partitions(record))
    context = dg.build_sensor_context(instance=instance, resources={"store": DatasetStore()})
    return sensor(context)


def test_a_dropped_csv_becomes_a_batch_and_a_run_request(dataset_with_index, shared_data):
    dataset, record = dataset_with_index
    folder = inbox_dir("acme", "inbox-test")
    folder.mkdir(parents=True)
    news_frame(shared_data, start=30, rows=12).to_csv(folder / "more.csv", index=False)
    with dg.instance_for_test() as instance:
        result = _tick(record, instance)
    assert dataset.total_datums == 42
    new_batch = dataset._store.batch_ids("acme", "inbox-test")[-1]
    requested = {request.partition_key for request in result.run_requests}
    assert new_batch in requested
    added = result.dynamic_partitions_requests[0]
    assert new_batch in added.partition_keys
    assert (folder / "done" / "more.csv").exists() and not (folder / "more.csv").exists()
    keys = {key.path[-1] for key in result.run_requests[0].asset_selection}
    assert keys == {"raw_data", "embeddings"}


def test_a_bad_file_is_moved_aside_with_its_reason_and_nothing_ingested(dataset_with_index):
    dataset, record = dataset_with_index
    folder = inbox_dir("acme", "inbox-test")
    folder.mkdir(parents=True)
    # Ids 0..2 already exist: the whole file must be refused.
    pd.DataFrame({"id": ["0", "1", "2"], "text": ["a", "b", "c"], "category": ["x", "y", "z"]}).to_csv(
        folder / "clash.csv", index=False
    )
    before = dataset.total_datums
    with dg.instance_for_test() as instance:
        _tick(record, instance)
    assert dataset.total_datums == before
    reason = (folder / "rejected" / "clash.csv.error.txt").read_text()
    assert "0" in reason and (folder / "rejected" / "clash.csv").exists()


def test_batches_added_from_python_are_requested_once(dataset_with_index):
    _, record = dataset_with_index
    with dg.instance_for_test() as instance:
        first = _tick(record, instance)
        assert len(first.run_requests) == 1
        instance.add_dynamic_partitions(batches_partitions(record).name, [r.partition_key for r in first.run_requests])
        second = _tick(record, instance)
    assert second.run_requests == []


def test_every_file_is_ingested_or_rejected_and_a_rejection_fails_the_inbox_check(dataset_with_index):
    from atlas_assets.pipeline.naming import DatasetNames
    from atlas_assets.pipeline.sensors import INBOX_CHECK, inbox_check

    dataset, record = dataset_with_index
    folder = inbox_dir("acme", "inbox-test")
    folder.mkdir(parents=True)
    (folder / "notes.tsv").write_text("id\ttext\n900\thello\n")
    (folder / ".copying.csv").write_text("id,text\n")  # still being written: left alone
    before = dataset.total_datums
    with dg.instance_for_test() as instance:
        _tick(record, instance)
        check_key = dg.AssetCheckKey(DatasetNames("acme", "inbox-test").inbox, INBOX_CHECK)
        evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])[check_key]
        reported = evaluation.event.dagster_event.event_specific_data
    assert dataset.total_datums == before
    assert not (folder / "notes.tsv").exists() and (folder / ".copying.csv").exists()
    reason = (folder / "rejected" / "notes.tsv.error.txt").read_text()
    assert ".tsv" in reason and "csv" in reason
    assert reported.passed is False and reported.metadata["rejected_file"].value == "notes.tsv"
    # The check, run by hand from the UI, fails while the rejected file waits, and names it.
    by_hand = inbox_check(record)()
    assert by_hand.passed is False and "notes.tsv" in by_hand.metadata["reasons"].value
    for path in (folder / "rejected").iterdir():
        path.unlink()
    assert inbox_check(record)().passed is True
