"""Code written for Nomic Atlas runs here with only the import changed."""

import numpy as np
import pytest

from atlas_assets import AtlasDataset  # was: from nomic import AtlasDataset
from atlas_assets import NomicDuplicatesOptions, NomicProjectOptions, NomicTopicOptions
from tests.conftest import news_frame


@pytest.mark.slow
def test_create_add_index_read_update_and_read_again(atlas_home, shared_data):
    dataset = AtlasDataset("acme/news-demo", unique_id_field="id", description="AG News sample")
    dataset.add_data(news_frame(shared_data, rows=300))
    atlas_map = dataset.create_index(
        name="news",
        indexed_field="text",
        topic_model=NomicTopicOptions(topic_label_field="text"),
        duplicate_detection=NomicDuplicatesOptions(duplicate_cutoff=0.1),
        projection=NomicProjectOptions(n_neighbors=15),
    )
    before = atlas_map.embeddings.projected.set_index("id")
    assert len(atlas_map.topics.df) == 300
    assert set(atlas_map.duplicates.df["duplicate_class"]) <= {"singleton", "retention candidate", "deletion candidate"}
    neighbours, _ = atlas_map.embeddings.vector_search(queries=["football match"], k=3)
    assert len(neighbours[0]) == 3

    dataset.add_data(news_frame(shared_data, start=300, rows=15))
    dataset.delete_data(["5", "6"])
    dataset.update_indices()

    after = atlas_map.embeddings.projected.set_index("id")
    assert len(after) == 313 and {"5", "6"}.isdisjoint(after.index)
    assert {"300", "314"} <= set(after.index)
    assert len(atlas_map.topics.df) == 313 and atlas_map.topics.df["topic_depth_1"].notna().all()
    assert len(atlas_map.duplicates.df) == 313
    # Old points keep their places: a person who knew the map still recognises it.
    kept = before.index.intersection(after.index)
    shift = np.linalg.norm(after.loc[kept, ["x", "y"]].to_numpy() - before.loc[kept, ["x", "y"]].to_numpy(), axis=1)
    extent = np.ptp(before[["x", "y"]].to_numpy(), axis=0).max()
    assert shift.mean() / extent < 0.02


def test_update_maps_adds_and_updates(atlas_home, shared_data):
    dataset = AtlasDataset("acme/small", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=120))
    atlas_map = dataset.create_index(indexed_field="text", topic_model=False, duplicate_detection=False)
    dataset.update_maps(news_frame(shared_data, start=120, rows=10))
    assert len(atlas_map.embeddings.projected) == 130
    assert dataset.total_datums == 130


def test_rows_deleted_since_the_last_build_leave_the_accessors_at_once(atlas_home, shared_data):
    dataset = AtlasDataset("acme/deleting", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=80))
    atlas_map = dataset.create_index(indexed_field="text", duplicate_detection=False)
    dataset.delete_data(["3"])
    assert "3" not in set(atlas_map.embeddings.projected["id"])
    assert "3" not in set(atlas_map.topics.df["id"])
    assert atlas_map.embeddings.projected["id"].notna().all()
    neighbours, _ = atlas_map.embeddings.vector_search(ids=["4"], k=79)
    assert "3" not in neighbours[0] and None not in neighbours[0]
