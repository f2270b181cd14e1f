"""The map accessors, read from a real map built through Dagster (see the news_map fixture)."""

import numpy as np
import pandas as pd
import pytest

from atlas_assets.errors import IndexNotFoundError, InvalidOptionError, UnknownIdsError
from resources.index_outputs import IndexOutputs


def test_projected_places_every_live_row_once(news_map):
    projected = news_map.embeddings.projected
    assert list(projected.columns) == ["id", "x", "y"]
    assert len(projected) == news_map.dataset.total_datums
    assert projected["id"].is_unique
    assert np.isfinite(projected[["x", "y"]].to_numpy()).all()


def test_latent_is_aligned_with_projected_and_normalised(news_map):
    latent = news_map.embeddings.latent
    assert latent.shape == (len(news_map.embeddings.projected), 384)
    np.testing.assert_allclose(np.linalg.norm(latent, axis=1), 1.0, atol=1e-4)


def test_every_row_has_a_named_topic_at_every_depth(news_map):
    topics = news_map.topics.df
    depth_columns = [c for c in topics.columns if c.startswith("topic_depth_")]
    assert depth_columns[:2] == ["topic_depth_1", "topic_depth_2"]
    assert topics[depth_columns].notna().all().all()
    assert (topics[depth_columns] != "").all().all()


def test_topic_metadata_and_hierarchy_agree(news_map):
    metadata = news_map.topics.metadata
    assert {"topic_id", "depth", "topic_short_description", "topic_description", "keywords", "parent"} <= set(
        metadata.columns
    )
    depth_one = set(metadata.loc[metadata["depth"] == 1, "topic_short_description"])
    for (label, depth), children in news_map.topics.hierarchy.items():
        assert depth >= 1 and children
        if depth == 1:
            assert label in depth_one


def test_a_topic_description_quotes_its_member_nearest_the_topic_mean_direction(news_map):
    dataset = news_map.dataset
    output = IndexOutputs(dataset.organisation, dataset.slug, news_map.id).read("topics")
    table, topics = output.table, output.side_data["topics"]
    model = news_map.read_model()
    order = {int(row_id): position for position, row_id in enumerate(model.row_ids)}
    vectors = model.vectors()[[order[int(row_id)] for row_id in table["_row_id"].to_numpy()]]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for topic in (t for t in topics if t["depth"] == 1):
        members = np.nonzero(table["topic_id_depth_1"].to_numpy() == topic["topic_id"])[0]
        nearest_mean = members[np.argmax(unit[members] @ unit[members].mean(axis=0))]
        assert topic["representative_row"] == nearest_mean


def test_group_by_topic_covers_every_row_once(news_map):
    groups = news_map.topics.group_by_topic(topic_depth=1)
    ids = [datum for group in groups for datum in group["datum_ids"]]
    assert sorted(ids) == sorted(news_map.embeddings.projected["id"])
    assert all(group["subtopics"] for group in groups)


def test_a_planted_copy_is_a_duplicate_of_its_original(news_map):
    duplicates = news_map.duplicates.df
    pair = duplicates.set_index("id").loc[["0", "copy-of-0"]]
    assert set(pair["duplicate_class"]) == {"retention candidate", "deletion candidate"}
    assert pair["cluster_id"].nunique() == 1
    assert len(news_map.duplicates.deletion_candidates()) >= 1


def test_text_search_finds_space_news(news_map):
    neighbours, distances = news_map.embeddings.vector_search(queries=["rocket launch into orbit"], k=5)
    texts = news_map.dataset.get_data(neighbours[0])
    assert len(neighbours[0]) == 5 and distances[0] == sorted(distances[0])
    assert any("space" in row["text"].lower() or "rocket" in row["text"].lower() for row in texts)


def test_search_by_id_returns_neighbours_not_itself(news_map):
    neighbours, _ = news_map.embeddings.vector_search(ids=["copy-of-0"], k=3)
    assert "copy-of-0" not in neighbours[0] and neighbours[0][0] == "0"


def test_search_rejects_bad_requests(news_map):
    with pytest.raises(InvalidOptionError, match="exactly one"):
        news_map.embeddings.vector_search()
    with pytest.raises(InvalidOptionError, match="k must be"):
        news_map.embeddings.vector_search(ids=["0"], k=0)
    with pytest.raises(UnknownIdsError):
        news_map.embeddings.vector_search(ids=["no-such-id"])


def test_topics_can_be_searched_by_meaning(news_map):
    results = news_map.topics.vector_search_topics(["stock markets and oil prices"], k=3, depth=1)
    (posterior,) = results["topics"]
    assert 1 <= len(posterior) <= 3 and sum(posterior.values()) == pytest.approx(1.0)


def test_tags_written_from_python_persist(news_map):
    tags = news_map.tags
    tags.add(["0", "1"], "reviewed")
    assert "reviewed" in news_map.tags.get_tags()
    assert sorted(news_map.tags.get_datums_in_tag("reviewed")) == ["0", "1"]
    frame = news_map.tags.df
    assert frame.loc[frame["id"] == "0", "reviewed"].item() is True or frame.loc[frame["id"] == "0", "reviewed"].item()
    tags.remove(["1"], "reviewed")
    assert news_map.tags.get_datums_in_tag("reviewed") == ["0"]
    with pytest.raises(UnknownIdsError):
        tags.add(["nope"], "reviewed")


def test_get_map_by_name_id_and_errors(news_map):
    dataset = news_map.dataset
    assert dataset.get_map().id == news_map.id
    assert dataset.get_map(atlas_index_id=news_map.id).name == "news"
    with pytest.raises(IndexNotFoundError, match="no map named"):
        dataset.get_map(name="other")


def test_map_link_points_at_the_map_server(news_map):
    assert news_map.map_link.endswith(f"/maps/tests/ag-news/{news_map.id}")


def test_data_accessor_has_the_fields(news_map):
    frame = news_map.data.df
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "text", "category"]


def test_latent_is_reread_when_the_map_is_rebuilt(news_map):
    first = news_map.embeddings.latent
    assert news_map.embeddings.latent is first  # an unchanged map: the loaded copy
    dataset = news_map.dataset
    outputs = IndexOutputs(dataset.organisation, dataset.slug, news_map.id)
    outputs.write("neighbour_graph", outputs.read("neighbour_graph"))  # a rewrite, as a new run makes
    assert news_map.embeddings.latent is not first
