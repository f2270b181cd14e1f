"""The `nomic` client's surface, item by item, each written as nomic's docs write it (only the import
changed). The session's AG News map (`news_map`, 601 rows) serves the read-only items."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import atlas_assets
from atlas_assets.errors import AtlasError, IndexNotReadyError, PipelineError
from tests.conftest import news_frame


# ------------------------------------------------------------------------------ import paths


def test_the_nomic_module_paths_exist():
    from atlas_assets import AtlasDataset, atlas, embed, login  # was: from nomic import ...
    from atlas_assets.data_inference import (  # was: from nomic.data_inference import ...
        NomicDuplicatesOptions,
        NomicEmbedOptions,
        NomicProjectOptions,
        NomicTopicOptions,
        ProjectionOptions,
    )
    from atlas_assets.dataset import AtlasDataset as DatasetFromModule, AtlasProjection  # noqa: F401

    assert DatasetFromModule is AtlasDataset and callable(atlas.map_data) and callable(embed.text)
    assert issubclass(ProjectionOptions, NomicProjectOptions)
    assert {NomicTopicOptions, NomicDuplicatesOptions, NomicEmbedOptions}
    login("nk-anything")  # nothing to log in to: accepted and ignored
    login(token="nk-anything", tenant="enterprise", domain="atlas.example.com")
    with pytest.raises(ValueError, match="Enterprise tenants"):
        login("nk-anything", tenant="enterprise")
    assert atlas_assets.atlas.map_data is atlas.map_data  # `import atlas_assets as nomic` works too


# ------------------------------------------------------------------------------ options


def test_options_take_every_field_nomic_takes():
    from atlas_assets.data_inference import NomicProjectOptions, NomicTopicOptions, ProjectionOptions

    assert ProjectionOptions(model="umap", n_neighbors=15, n_epochs=50, min_dist=0.1, spread=1.0).layout_settings()["model"] == "nomic-project-v1"
    NomicProjectOptions(n_neighbors=15, n_epochs=50, spread=1.0, local_neighborhood_size=15, model="nomic-project-v2", rho=0.2)
    with pytest.warns(UserWarning, match="rho only applies to model='nomic-project-v2'"):
        assert ProjectionOptions(model="umap", rho=0.5).rho is None  # nomic ignores it for umap
    with pytest.warns(UserWarning, match="ignores 'colorable_fields'"):
        NomicTopicOptions(topic_label_field="text", colorable_fields=["category"])


def test_a_pyarrow_table_with_an_embeddings_column_is_an_embedding_upload(atlas_home):
    from atlas_assets import AtlasDataset

    vectors = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    table = pa.table({"id": [str(i) for i in range(20)]}).append_column(
        "_embeddings", pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 8)  # as nomic's _add_embeddings builds it
    )
    dataset = AtlasDataset("acme/arrow-vectors", unique_id_field="id")
    dataset.add_data(table)
    assert dataset.modality == "embedding" and dataset.total_datums == 20
    assert dataset.dataset_fields == ["id"]


# ------------------------------------------------------------------------------ dataset and map shapes


def test_dataset_meta_indices_projections_and_links(news_map):
    dataset = news_map.dataset
    assert dataset.meta["unique_id_field"] == "id" and dataset.meta["total_datums_in_project"] == 601
    assert dataset.meta["organization_slug"] == "tests" and dataset.meta["atlas_indices"][0]["index_name"] == "news"
    index = dataset.indices[0]
    assert (index.name, index.indexed_field) == ("news", "text")
    assert index.projections[0].id == news_map.id == dataset.projections[0].id
    assert str(news_map) == f"news: {news_map.map_link}"
    assert news_map.dataset_link.endswith("#tests/ag-news")
    assert {"id", "text", "x", "y", "topic_depth_1", "duplicate_class"} <= set(news_map.schema.names)
    assert "news" in repr(news_map) and "all-MiniLM-L6-v2" in repr(news_map)
    assert str(dataset) == str(news_map)


def test_organization_name_is_the_nomic_2_spelling(atlas_home):
    from atlas_assets import AtlasDataset

    with pytest.warns(DeprecationWarning, match="organization/name"):
        dataset = AtlasDataset("news", organization_name="acme", unique_id_field="id")
    assert dataset.identifier == "acme/news"


def test_embeddings_df_tb_and_reprs(news_map):
    assert list(news_map.embeddings.df.columns) == ["id", "x", "y"]
    assert news_map.embeddings.tb.num_rows == 601
    assert "601 rows" in repr(news_map.embeddings)
    assert "deletion candidates in" in repr(news_map.duplicates)
    assert "topic_depth_1" in repr(news_map.topics)
    assert "Tags for" in repr(news_map.tags)


# ------------------------------------------------------------------------------ topics


def test_topic_metadata_has_nomics_columns(news_map):
    topics = news_map.topics
    metadata = topics.metadata
    depth_columns = [f"topic_depth_{d}" for d in range(1, topics.depth + 1)]
    assert {"topic_id", "depth", "topic_short_description", "topic_description", *depth_columns} <= set(metadata.columns)
    for row in metadata.itertuples():
        assert getattr(row, f"topic_depth_{row.depth}") == row.topic_short_description
    assert topics.tb.column_names == ["id", *depth_columns]


def test_topic_density_counts_every_depth_with_an_inclusive_end(atlas_home, shared_data):
    from atlas_assets import AtlasDataset

    frame = news_frame(shared_data, rows=120)
    frame["published"] = [datetime(2024, 1, 1) + timedelta(days=i) for i in range(120)]
    dataset = AtlasDataset("acme/dated", unique_id_field="id")
    dataset.add_data(frame)
    atlas_map = dataset.create_index(indexed_field="text", duplicate_detection=False)
    density = atlas_map.topics.get_topic_density("published", datetime(2024, 1, 1), datetime(2024, 1, 10))
    assert isinstance(density, dict)
    assert sum(density.values()) == 10 * atlas_map.topics.depth  # 10 days, the 10th included, at every depth
    with pytest.raises(ValueError, match="not a date"):
        atlas_map.topics.get_topic_density("text", datetime(2024, 1, 1), datetime(2024, 1, 2))


def test_vector_search_topics_is_a_posterior_over_the_nearest_rows(news_map):
    from atlas_assets import embed

    query = np.array(embed.text(["oil prices and the stock market"], task_type="search_query")["embeddings"])
    result = news_map.topics.vector_search_topics(query, k=32, depth=3)
    (posterior,) = result["topics"]
    assert sum(posterior.values()) == pytest.approx(1.0)
    assert set(posterior) <= set(news_map.topics.df[f"topic_depth_{news_map.topics.depth}"])
    with pytest.raises(ValueError, match="2 dimensional"):
        news_map.topics.vector_search_topics(query[0], k=32)


# ------------------------------------------------------------------------------ tags


def test_tags_with_nomics_signatures(news_map):
    tags = news_map.tags
    tags.add(ids=["5", "6", "7"], tags=["surface-a", "surface-b"])
    found = {tag["tag_name"]: tag for tag in tags.get_tags()}
    assert {"surface-a", "surface-b"} <= set(found)
    assert {"tag_name", "tag_id", "tag_definition_id"} <= set(found["surface-a"])
    assert sorted(tags.get_datums_in_tag("surface-a", overwrite=False)) == ["5", "6", "7"]
    assert tags.remove(ids=["5"], tags=["surface-a"]) is True
    assert sorted(tags.get_datums_in_tag(tag_name="surface-a")) == ["6", "7"]
    tags.remove(ids=[], tags=["surface-a", "surface-b"], delete_all=True)
    assert "surface-a" not in tags.get_tags() and "surface-b" not in tags.get_tags()
    with pytest.raises(ValueError, match="not found"):
        tags.get_datums_in_tag("surface-a")
    tags.add(["8"], "surface-old-form")  # the single-name form keeps working
    assert tags.get_datums_in_tag("surface-old-form") == ["8"]
    tags.remove(["8"], "surface-old-form")


# ------------------------------------------------------------------------------ errors


def test_errors_nomic_raises_as_value_error_are_value_errors(news_map):
    dataset = news_map.dataset
    for call in (
        lambda: dataset.get_map(name="no such map"),
        lambda: news_map.topics.group_by_topic(topic_depth=99),
        lambda: dataset.add_data([{"text": "no id"}]),
        lambda: dataset.get_data(["no-such-id"]),
    ):
        with pytest.raises(ValueError) as caught:
            call()
        assert isinstance(caught.value, AtlasError) and str(caught.value)


# ------------------------------------------------------------------------------ models, failures, deleting maps


def test_a_nomic_model_offline_fails_before_anything_is_registered(atlas_home, shared_data, monkeypatch):
    from atlas_assets import AtlasDataset

    monkeypatch.setenv("ATLAS_HF_ENDPOINT", "http://127.0.0.1:9")  # a hub that cannot be reached
    dataset = AtlasDataset("acme/offline", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=30))
    for model in ("nomic-embed-text-v1.5", {"model": "nomic-embed-text-v1.5"}):
        with pytest.raises(ValueError, match="cannot be reached.*works offline"):
            dataset.create_index(indexed_field="text", embedding_model=model)
    assert dataset.indices == [] and dataset.maps == []


def test_a_failed_build_leaves_no_index_behind(atlas_home, shared_data, monkeypatch):
    from atlas_assets import AtlasDataset
    import atlas_assets.client.dataset as dataset_module

    def failing_run(*args, **kwargs):
        raise PipelineError("the embeddings step failed (simulated)")

    dataset = AtlasDataset("acme/failing", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=30))
    monkeypatch.setattr(dataset_module, "materialize_indices", failing_run)
    with pytest.raises(PipelineError):
        dataset.create_index(indexed_field="text")
    assert dataset.indices == []


@pytest.mark.slow
def test_a_map_can_be_deleted_and_topics_switched_off_say_so(atlas_home, shared_data):
    from atlas_assets import AtlasDataset

    dataset = AtlasDataset("acme/two-maps", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=80))
    kept = dataset.create_index(name="kept", indexed_field="text", topic_model=False, duplicate_detection=False)
    with pytest.raises(IndexNotReadyError, match="switched off \\(topic_model=False\\)"):
        kept.topics.df
    reusing = dataset.create_index(name="reusing", indexed_field="text", reuse_embeddings_from_index="kept",
                                   topic_model=False, duplicate_detection=False)
    with pytest.raises(ValueError, match="reuse its embeddings"):
        dataset.delete_index(name="kept")
    reusing.delete()
    assert [index.name for index in dataset.indices] == ["kept"]
    dataset.delete_index(atlas_index_id=kept.id)
    assert dataset.indices == [] and dataset.total_datums == 80
    dataset.update_indices()  # nothing left to fail on
