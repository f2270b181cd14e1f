"""Rebuild requests travel as run config (`rebuild: true` on projection / topics), for in-process
runs (`materialize_indices`) as for launched ones."""

from atlas_assets.dataset import AtlasDataset
from atlas_assets.pipeline.naming import DatasetNames
from atlas_assets.pipeline.runner import materialize_indices
from tests.conftest import news_frame


def _mode(dataset, index_name: str, stage: str) -> str:
    from resources.instance import get_instance

    key = DatasetNames(dataset.organisation, dataset.slug).stage(index_name, stage)
    return get_instance().get_latest_materialization_event(key).asset_materialization.metadata["mode"].value


def test_rebuild_requests_reach_only_the_asked_stages_of_the_indices_that_have_them(atlas_home, shared_data):
    dataset = AtlasDataset("acme/rebuilt", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=120))
    dataset.create_index(name="topics", indexed_field="text", duplicate_detection=False)
    dataset.create_index(name="plain", indexed_field="text", topic_model=False, duplicate_detection=False)
    record = dataset._store.read_record("acme", "rebuilt")
    assert (_mode(dataset, "topics", "projection"), _mode(dataset, "topics", "topics")) == ("full", "full")

    materialize_indices(record, store=dataset._store)
    assert _mode(dataset, "topics", "projection") == "stable update"
    assert _mode(dataset, "topics", "topics") == "new rows joined existing topics"

    # "plain" has no topics asset: the request is for the indices that have one
    materialize_indices(record, store=dataset._store, rebuild_topic_models=True)
    assert _mode(dataset, "topics", "topics") == "full"
    assert _mode(dataset, "topics", "projection") == _mode(dataset, "plain", "projection") == "stable update"

    materialize_indices(record, store=dataset._store, rebuild_layout=True)
    assert _mode(dataset, "topics", "projection") == _mode(dataset, "plain", "projection") == "full"
    assert _mode(dataset, "topics", "topics") == "new rows joined existing topics"
