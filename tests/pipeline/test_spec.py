"""IndexSpec: what the pipeline reads off an index record (stages, reused index, compute parameters)."""

import pytest

from atlas_assets.compute.layout import LayoutOptions
from atlas_assets.compute.topics import TopicParams
from atlas_assets.pipeline.naming import STAGES
from atlas_assets.pipeline.spec import IndexSpec
from resources.storage.records import DatasetRecord, IndexRecord, utc_now

TOPICS = {"build_topic_model": True, "topic_label_field": None, "cluster_method": "fast", "enforce_topic_hierarchy": False}
DUPLICATES = {"tag_duplicates": True, "duplicate_cutoff": 0.1}


def _index(name: str = "map", **options) -> IndexRecord:
    values = {
        "projection": {}, "topic_model": TOPICS, "duplicate_detection": DUPLICATES, "indexed_field": "text",
        "modality": "text", **options,
    }
    return IndexRecord(id=f"id-{name}", name=name, asset_name=name, created=utc_now(), **values)


def _spec(index: IndexRecord, *others: IndexRecord) -> IndexSpec:
    record = DatasetRecord(organisation="acme", slug="news", name="news", indices=[*others, index])
    return IndexSpec.of(record, index)


@pytest.mark.parametrize(
    ("options", "stages"),
    [
        ({}, STAGES),
        ({"topic_model": None, "duplicate_detection": None}, ("embeddings", "neighbour_graph", "projection")),
        ({"projection": None, "topic_model": None, "duplicate_detection": None}, ("embeddings", "neighbour_graph")),
        # a topic model needs the map it is placed on, even without projection options
        ({"projection": None, "duplicate_detection": None}, ("embeddings", "neighbour_graph", "projection", "topics")),
        # switched off inside the dict: the stage is not built (the map still is)
        (
            {"topic_model": {**TOPICS, "build_topic_model": False}, "duplicate_detection": {**DUPLICATES, "tag_duplicates": False}},
            ("embeddings", "neighbour_graph", "projection"),
        ),
    ],
)
def test_enabled_stages_follow_the_options_in_pipeline_order(options, stages):
    assert _spec(_index(**options)).enabled_stages == stages


def test_the_record_dicts_become_compute_parameters():
    index = _index(
        projection={"n_neighbors": 30, "n_epochs": None, "model": "nomic-project-v2", "rho": 2.0},
        topic_model={**TOPICS, "cluster_method": "accurate", "enforce_topic_hierarchy": True, "topic_label_field": "title"},
        duplicate_detection={**DUPLICATES, "duplicate_cutoff": 0.05},
    )
    spec = _spec(index)
    assert spec.layout_options == LayoutOptions(n_neighbors=30, model="nomic-project-v2", rho=2.0)
    assert spec.topic_params == TopicParams(cluster_method="accurate", enforce_topic_hierarchy=True)
    assert spec.duplicate_cutoff == 0.05
    assert spec.label_field == "title"


def test_without_a_topic_label_field_a_text_index_names_topics_from_its_indexed_field():
    assert _spec(_index()).label_field == "text"
    assert _spec(_index(topic_model=None)).label_field == "text"


def test_the_reused_index_is_found_by_id_or_name():
    source = _index("first")
    assert _spec(_index("second", reuse_embeddings_from_index=source.id), source).source_index == source
    assert _spec(_index("second", reuse_embeddings_from_index="first"), source).source_index == source
    assert _spec(_index("second"), source).source_index is None


def test_keys_and_outputs_name_the_index(atlas_home):
    spec = _spec(_index("text map"))
    assert spec.key("topics").to_user_string() == "acme/news/text_map/topics"
    assert spec.outputs.relative_dir == "datasets/acme/news/indices/id-text map"
    assert spec.outputs.read("projection") is None


def test_topic_names_are_ranked_by_meaning_with_the_text_model_that_embedded_the_rows():
    text = _index(embedding_model="all-MiniLM-L6-v2")
    assert _spec(text).phrase_model == (True, "all-MiniLM-L6-v2")
    own_vectors = _index("vectors", modality="embedding", indexed_field=None, embedding_model=None)
    assert _spec(own_vectors).phrase_model[0] is False
    reusing = _index("again", modality="embedding", reuse_embeddings_from_index="map", embedding_model=None)
    assert _spec(reusing, text).phrase_model == (True, "all-MiniLM-L6-v2")
