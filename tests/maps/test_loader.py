"""The map read model of a real map: each output read once per map version, search without scans."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import resources.index_outputs as index_outputs
from atlas_assets.maps import loader
from atlas_assets.web.discovery import HomeRegistry
from resources.storage import DatasetStore


@pytest.fixture
def counted_reads(monkeypatch):
    """Counts every output file read (by stage) and every scan of the dataset's rows."""
    reads: Counter[str] = Counter()
    read_output = index_outputs.read_output
    read_rows = DatasetStore.read_rows

    def counting_read_output(path, columns=None):
        reads[path.parent.name + "/" if path.parent.name == "embeddings" else path.stem] += 1
        return read_output(path, columns)

    def counting_read_rows(self, organisation, slug, columns=None):
        reads["store rows"] += 1
        return read_rows(self, organisation, slug, columns)

    monkeypatch.setattr(index_outputs, "read_output", counting_read_output)
    monkeypatch.setattr(DatasetStore, "read_rows", counting_read_rows)
    monkeypatch.setattr(loader, "_cache", type(loader._cache)())
    return reads


def test_a_map_load_reads_each_output_once_and_serving_reads_nothing_more(news_map, counted_reads):
    key = news_map.map_link.split("/maps/", 1)[1]
    source = HomeRegistry().get(key)
    source.points(), source.topics(), source.fields(), source.datum(0)
    for info in source.fields():
        source.field_column(info.name)
    source.search("rocket", mode="text")
    assert counted_reads == Counter(
        {"neighbour_graph": 1, "projection": 1, "topics": 1, "duplicates": 1, "store rows": 1}
    )
    HomeRegistry().get(key).points()  # another request, another registry: the loaded model
    assert sum(counted_reads.values()) == 5


def test_search_by_meaning_reads_the_embeddings_once_and_never_scans_the_store(news_map, counted_reads):
    key = news_map.map_link.split("/maps/", 1)[1]
    source = HomeRegistry().get(key)
    source.points()
    before = Counter(counted_reads)
    first = source.search("stock markets fall", mode="meaning", k=10)
    second = source.search("a football match", mode="meaning", k=10)
    assert len(first.rows) == len(second.rows) == 10
    batches = len(news_map.dataset._record().batches)
    assert counted_reads - before == Counter({"embeddings/": batches})
    news_map.embeddings.vector_search(queries=["oil prices"], k=3)  # the Atlas accessor: same model
    assert counted_reads - before == Counter({"embeddings/": batches})


def test_topic_parents_are_the_ones_the_topics_output_names(news_map):
    model = news_map.read_model()
    output = index_outputs.IndexOutputs("tests", "ag-news", news_map.id).read("topics")
    parent_of = {topic["topic_id"]: topic["parent"] for topic in output.side_data["topics"]}
    for topic in model.topics:
        expected = parent_of[topic.topic_id]
        assert (model.topics[topic.parent].topic_id if topic.parent is not None else None) == expected


def test_rows_deleted_since_the_build_leave_the_model_at_once(news_map):
    model = news_map.read_model()
    assert len(model) == news_map.dataset.total_datums
    assert np.array_equal(model.rows_of([model.ids[3]]), [3])
