"""Deleted rows in Dagster's terms: delete_data materialises the dataset's `deletions` asset, the
graph below it is stale, and the automation asks for it (and so for the whole map) again."""

import dagster as dg

from atlas_assets.dataset import AtlasDataset
from atlas_assets.definitions import defs
from atlas_assets.pipeline.deletions import LATEST_DELETION_KEY
from atlas_assets.pipeline.naming import DatasetNames
from resources.instance import get_instance
from tests.conftest import news_frame

NAMES = DatasetNames("acme", "news")


def test_a_deletion_makes_the_graph_stale_and_the_automation_rebuilds_the_map(atlas_home, shared_data):
    dataset = AtlasDataset("acme/news", unique_id_field="id")
    frame = news_frame(shared_data, rows=80)
    dataset.add_data(frame)
    dataset.create_index(name="map", indexed_field="text", topic_model=False, duplicate_detection=False)
    instance = get_instance()
    built = instance.get_latest_materialization_event(NAMES.deletions).asset_materialization
    assert built.metadata[LATEST_DELETION_KEY].value == "none"  # reported before the build

    code_location = defs()
    settled = dg.evaluate_automation_conditions(defs=code_location, instance=instance)
    assert settled.total_requested == 0

    dataset.delete_data(list(frame["id"][:5]))
    deleted = instance.get_latest_materialization_event(NAMES.deletions).asset_materialization
    assert deleted.metadata["rows_deleted"].value == 5 and deleted.metadata["live_rows"].value == 75
    after = dg.evaluate_automation_conditions(defs=code_location, instance=instance, cursor=settled.cursor)
    assert after.get_num_requested(NAMES.stage("map", "neighbour_graph")) == 1


def test_reporting_the_same_deletions_twice_records_one_materialisation(atlas_home, shared_data):
    from atlas_assets.pipeline.deletions import report_deletions

    dataset = AtlasDataset("acme/news", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=10))
    record = dataset._store.read_record("acme", "news")
    instance = get_instance()
    assert report_deletions(instance, record) is True
    assert report_deletions(instance, record) is False
