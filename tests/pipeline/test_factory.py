"""The asset family of a dataset, built from its record and run against a test instance."""

import dagster as dg
import numpy as np
import pytest

from atlas_assets.dataset import AtlasDataset
from atlas_assets.client.index_request import new_index_record
from atlas_assets.pipeline.factory import batches_partitions, build_dataset_definitions
from atlas_assets.pipeline.naming import DatasetNames
from atlas_assets.pipeline.runner import default_resources
from tests.conftest import news_frame


@pytest.fixture
def indexed_record(atlas_home, shared_data):
    """A dataset of 80 AG News rows with one registered (not yet built) text index."""
    dataset = AtlasDataset("acme/news", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=80))
    store = dataset._store
    record = store.read_record("acme", "news")
    index = new_index_record(record, name="text map", indexed_field="text")
    return store.update_record("acme", "news", lambda r: r.model_copy(update={"indices": [index]}))


def test_every_stage_of_an_index_is_an_asset_with_the_dataset_prefix(indexed_record):
    defs = build_dataset_definitions(indexed_record)
    keys = {key.to_user_string() for asset in defs.assets for key in asset.keys}
    assert keys == {
        "acme/news/raw_data",
        "acme/news/deletions",
        "acme/news/text_map/embeddings",
        "acme/news/text_map/neighbour_graph",
        "acme/news/text_map/projection",
        "acme/news/text_map/topics",
        "acme/news/text_map/duplicates",
    }
    groups = {asset.group_names_by_key[key] for asset in defs.assets for key in asset.keys}
    assert groups == {"acme__news"}


def test_raw_data_and_embeddings_share_the_batch_partitions(indexed_record):
    defs = build_dataset_definitions(indexed_record)
    names = DatasetNames("acme", "news")
    by_key = {key: asset for asset in defs.assets for key in asset.keys}
    partitions = batches_partitions(indexed_record)
    assert by_key[names.raw_data].partitions_def == partitions
    assert by_key[names.stage("text_map", "embeddings")].partitions_def == partitions
    assert by_key[names.stage("text_map", "projection")].partitions_def is None


def test_switched_off_stages_are_not_built(atlas_home, shared_data):
    dataset = AtlasDataset("acme/plain", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=20))
    record = dataset._store.read_record("acme", "plain")
    index = new_index_record(record, indexed_field="text", topic_model=False, duplicate_detection=False)
    record = dataset._store.update_record("acme", "plain", lambda r: r.model_copy(update={"indices": [index]}))
    stages = {key.path[-1] for asset in build_dataset_definitions(record).assets for key in asset.keys}
    assert stages == {"raw_data", "deletions", "embeddings", "neighbour_graph", "projection"}


def test_the_family_loads_with_its_resources(indexed_record):
    defs = dg.Definitions.merge(
        build_dataset_definitions(indexed_record), dg.Definitions(resources=default_resources())
    )
    dg.Definitions.validate_loadable(defs)


def test_one_batch_materialises_with_a_passing_check(indexed_record):
    defs = build_dataset_definitions(indexed_record)
    names = DatasetNames("acme", "news")
    batch_id = indexed_record.batches[0].batch_id
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(names.partitions, [batch_id])
        result = dg.materialize(
            list(defs.assets),
            selection=[names.raw_data, names.stage("text_map", "embeddings")],
            partition_key=batch_id,
            instance=instance,
            resources=default_resources(),
        )
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert [c.check_name for c in checks] == ["rows_match_raw_and_finite"] and checks[0].passed
        with_resources = dg.Definitions.merge(defs, dg.Definitions(resources=default_resources()))
        embedded = with_resources.load_asset_value(names.stage("text_map", "embeddings"), partition_key=batch_id, instance=instance)
        vectors = np.stack(embedded.table["embedding"].to_numpy(zero_copy_only=False))
        assert vectors.shape == (80, 384) and np.isfinite(vectors).all()


def test_materialisations_carry_what_a_person_reads_in_the_ui(news_map):
    from resources.instance import get_instance

    instance = get_instance()
    names = DatasetNames("tests", "ag-news")

    def metadata(stage):
        event = instance.get_latest_materialization_event(names.stage("news", stage))
        return event.asset_materialization.metadata

    graph = metadata("neighbour_graph")
    assert graph["dagster/row_count"].value == 601
    recall_key = next(key for key in graph if key.startswith("recall_at_"))
    assert graph[recall_key].value >= 0.95
    projection = metadata("projection")
    assert projection["map"].value.startswith("![map thumbnail](data:image/png;base64,")
    assert projection["map_link"].value == news_map.map_link
    assert projection["np_at_15_sample"].value > 0.2
    topics = metadata("topics")
    assert topics["depths"].value >= 2 and "**" in topics["depth_1_topics"].value
    duplicates = metadata("duplicates")
    assert duplicates["deletion_candidates"].value >= 1


def _projection_mode(dataset) -> str:
    from resources.instance import get_instance

    key = DatasetNames(dataset.organisation, dataset.slug).stage(dataset.indices[0].asset_name, "projection")
    event = get_instance().get_latest_materialization_event(key)
    return event.asset_materialization.metadata["mode"].value


def test_small_additions_keep_the_map_large_ones_lay_it_out_afresh(atlas_home, shared_data):
    dataset = AtlasDataset("acme/growing", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=100))
    dataset.create_index(indexed_field="text", topic_model=False, duplicate_detection=False)
    assert _projection_mode(dataset) == "full"
    dataset.update_maps(news_frame(shared_data, start=100, rows=10))
    assert _projection_mode(dataset) == "stable update"
    dataset.update_maps(news_frame(shared_data, start=110, rows=60))
    assert _projection_mode(dataset) == "full"


def test_runs_are_named_by_their_dataset_and_tagged_with_what_started_them(news_map):
    from atlas_assets.pipeline.factory import DATASET_TAG, TRIGGER_TAG
    from resources.instance import get_instance

    runs = get_instance().get_runs(filters=dg.RunsFilter(tags={DATASET_TAG: "tests/ag-news"}))
    assert {run.job_name for run in runs} == {"tests__ag_news__embed_batch", "tests__ag_news__build_maps"}
    assert {run.tags[TRIGGER_TAG] for run in runs} == {"create_index"}
    assert not get_instance().get_runs(filters=dg.RunsFilter(job_name="__ephemeral_asset_job__"))


def test_the_dataset_jobs_are_in_the_code_location_so_the_ui_can_re_execute_them(indexed_record):
    defs = dg.Definitions.merge(build_dataset_definitions(indexed_record), dg.Definitions(resources=default_resources()))
    embed = defs.resolve_job_def("acme__news__embed_batch")
    build = defs.resolve_job_def("acme__news__build_maps")
    assert embed.partitions_def == batches_partitions(indexed_record)
    assert {key.path[-1] for key in build.asset_layer.executable_asset_keys} == {
        "neighbour_graph", "projection", "topics", "duplicates"
    }
