"""The static model distilled from the default: its build, its runtime, its quality floors, and a map
made with it through create_index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atlas_assets.errors import ModelError
from resources.embedder import load_text_embedder
from resources.model_registry import STATIC_TEXT_MODEL, resolve_model
from resources.model_store import install_model, is_installed
from resources.static_embedder import StaticEmbedder, build_static_model, sif_weights

# Measured 0.763 (benchmarks.static_model); 0.742 with one global target scale and no common-component
# removal, 0.755 without the removal, 0.751 without the per-text scale: each of those fails this floor.
FITTED_STS_FLOOR = 0.756


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return load_text_embedder(STATIC_TEXT_MODEL)  # type: ignore[return-value]


def test_registered_offline_and_built_from_the_default(static: StaticEmbedder) -> None:
    spec = resolve_model("minilm-static")
    assert spec.name == STATIC_TEXT_MODEL and spec.offline and spec.runtime == "static"
    assert "distilled from all-MiniLM-L6-v2" in spec.source.describe()
    assert is_installed(STATIC_TEXT_MODEL)
    folder = install_model(STATIC_TEXT_MODEL)
    config = json.loads((folder / "config.json").read_text())  # model2vec's layout
    assert config["model_type"] == "model2vec" and config["hidden_dim"] == 256
    assert isinstance(static, StaticEmbedder) and static.dimension == 256


def test_build_from_the_installed_default_model(tmp_path: Path) -> None:
    corpus = ["the cat sat on the mat", "stocks fell sharply today", "how do I reset my password"] * 20
    figures = build_static_model(install_model("all-MiniLM-L6-v2"), tmp_path / "static", dimension=64, corpus=corpus)
    assert figures["vocabulary"] == 30522 and figures["dimension"] == 64
    from safetensors.numpy import load_file

    table = load_file(str(tmp_path / "static" / "model.safetensors"))["embeddings"]
    assert table.shape == (30522, 64) and np.isfinite(table).all()
    assert not table[0].any()  # [PAD] is never pooled


def test_sif_weights_favour_rare_tokens() -> None:
    weights = sif_weights(np.array([1_000_000, 10, 0]))
    assert weights[0] < 0.01
    assert 0.9 < weights[1] < weights[2] <= 1.0


def test_vectors_are_unit_length_in_input_order(static: StaticEmbedder) -> None:
    texts = ["a cat sat on the mat", "", "quarterly earnings beat expectations " * 50, "the cat is on the mat", None]
    vectors = static.embed_documents(texts)  # type: ignore[arg-type]
    assert vectors.shape == (5, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 2, 3]], axis=1), 1.0, atol=1e-5)
    assert not vectors[1].any() and not vectors[4].any()  # nothing to embed: the zero vector
    one_by_one = np.concatenate([static.embed_documents([text]) for text in texts])  # type: ignore[list-item]
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-6)
    chunks = list(static.iter_embed_documents(iter(texts), chunk_rows=2))
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    similarity = vectors @ vectors.T
    assert similarity[0, 3] > 0.8 > similarity[0, 2]
    np.testing.assert_allclose(static.embed_queries(texts[:1]), vectors[:1], atol=1e-6)


def test_quality_floors(static: StaticEmbedder, shared_data) -> None:
    """Measured (benchmarks.static_model): STS-B 0.690 (default 0.820); banking77 k-means AMI 0.568
    (default 0.732). Floors a little below, so a worse build fails."""
    from benchmarks.data import banking77
    from benchmarks.static_model import kmeans_ami, sts_spearman

    assert sts_spearman(static) >= 0.67
    labelled = banking77()
    assert kmeans_ami(static.embed_documents(labelled.texts), labelled.labels) >= 0.54


def test_fitted_rows_replace_a_copys_table_only(static: StaticEmbedder) -> None:
    texts = ["my card was declined at the shop", "how do I top up by bank transfer"]
    targets = load_text_embedder("all-MiniLM-L6-v2").embed_documents(texts)
    before = static.embed_documents(texts)
    fitted_rows = static.fit_rows(texts, targets)
    assert fitted_rows.components.shape == (1, 256)
    fitted = static.with_fitted_rows(fitted_rows.token_ids, fitted_rows.rows, fitted_rows.components)
    assert fitted.fitted_rows == len(fitted_rows.token_ids) > 0 and static.fitted_rows == 0
    np.testing.assert_array_equal(static.embed_documents(texts), before)  # the shared model is unchanged
    assert not np.allclose(fitted.embed_documents(texts), before)
    # The common component is gone from every text, queries and texts the sample never held included.
    others = fitted.embed_queries(["rocket launch", "quarterly earnings"])
    np.testing.assert_allclose(others @ fitted_rows.components.T, 0.0, atol=1e-5)
    counts = static.count_matrix(texts)
    assert counts.shape == (2, 30522) and counts.sum() == static.count_tokens(texts).sum()
    with pytest.raises(ModelError, match="components"):
        static.with_fitted_rows(fitted_rows.token_ids, fitted_rows.rows, np.ones((1, 128), dtype=np.float32))


def test_an_index_fitted_before_common_components_loads_as_it_was(static: StaticEmbedder, atlas_home: Path) -> None:
    """A static_table.parquet without `common_components` in its side data (fitted before the removal
    existed): its rows are put in and nothing is removed, so its batches keep matching its queries."""
    from resources.index_outputs import IndexOutputs
    from resources.static_table import (
        COMPONENTS_KEY,
        index_text_embedder,
        read_fitted_table,
        write_fitted_table,
    )

    texts = ["my card was declined at the shop", "how do I top up by bank transfer"]
    fitted_rows = static.fit_rows(texts, load_text_embedder("all-MiniLM-L6-v2").embed_documents(texts))
    old, new = IndexOutputs("tests", "old-fit", "i-old"), IndexOutputs("tests", "new-fit", "i-new")
    write_fitted_table(old, fitted_rows.token_ids, fitted_rows.rows, {"model": STATIC_TEXT_MODEL})
    write_fitted_table(new, fitted_rows.token_ids, fitted_rows.rows, {"model": STATIC_TEXT_MODEL}, fitted_rows.components)
    assert COMPONENTS_KEY not in read_fitted_table(old)[2]
    np.testing.assert_array_equal(np.asarray(read_fitted_table(new)[2][COMPONENTS_KEY], dtype=np.float32), fitted_rows.components)
    as_before = index_text_embedder(STATIC_TEXT_MODEL, old, base=static)
    expected = static.table.copy()
    expected[fitted_rows.token_ids] = fitted_rows.rows
    np.testing.assert_array_equal(as_before.table, expected)
    now = index_text_embedder(STATIC_TEXT_MODEL, new, base=static)
    np.testing.assert_allclose(now.table, static.with_fitted_rows(fitted_rows.token_ids, fitted_rows.rows, fitted_rows.components).table)
    assert not np.allclose(now.table, as_before.table)
    assert as_before.fingerprint != now.fingerprint


@pytest.mark.slow
def test_quality_floors_with_the_index_time_fit(static: StaticEmbedder, shared_data) -> None:
    """Measured (benchmarks.static_model): banking77 k-means AMI 0.568 as shipped, 0.737 fitted on the
    pipeline's 2,000-row sample (default 0.732; 0.713-0.719 before the per-text scale and the
    common-component removal); on the 1,080 rows outside the sample 0.47 -> 0.634 (default 0.65; 0.610
    before); STS-B fitted on half its pairs' sentences, scored on the other half: 0.763 (shipped 0.690,
    0.742 before). Floors a little below, above the figures before: reverting either change fails."""
    from benchmarks.data import banking77, cached_embeddings
    from benchmarks.static_model import fitted_embedder, kmeans_ami, sts_spearman_fitted

    labelled = banking77()
    fitted, sample = fitted_embedder(static, labelled.texts, cached_embeddings("banking77", labelled.texts))
    vectors = fitted.embed_documents(labelled.texts)
    held = np.setdiff1d(np.arange(len(labelled.texts)), sample)
    assert kmeans_ami(vectors, labelled.labels) >= 0.72
    assert kmeans_ami(vectors[held], labelled.labels[held]) >= 0.62
    assert sts_spearman_fitted(static)["two_fold"] >= FITTED_STS_FLOOR


def test_create_index_with_the_static_model(atlas_home: Path, shared_data) -> None:
    """The index fits its token table once; its batches, its topic names and its searches use it, and
    a later batch reuses it."""
    from atlas_assets import AtlasDataset
    from resources.index_outputs import IndexOutputs
    from resources.static_table import STAGE, index_text_embedder, read_fitted_table
    from tests.conftest import news_frame

    dataset = AtlasDataset("tests/static-news", unique_id_field="id")
    first = news_frame(shared_data, rows=300)
    dataset.add_data(first)
    atlas_map = dataset.create_index(name="static", indexed_field="text", embedding_model=STATIC_TEXT_MODEL)
    assert atlas_map.embeddings.latent.shape == (300, 256)
    assert len(atlas_map.embeddings.projected) == 300
    assert atlas_map.topics.df["topic_depth_1"].notna().all()

    outputs = IndexOutputs(dataset.organisation, dataset.slug, atlas_map.atlas_index_id)
    token_ids, _, details = read_fitted_table(outputs)
    assert details["sample_rows"] == 300 and details["fitted_toward"] == "all-MiniLM-L6-v2" and len(token_ids) > 500
    components = np.asarray(details["common_components"], dtype=np.float32)
    assert components.shape == (1, 256)  # removed from every vector of the index
    np.testing.assert_allclose(atlas_map.embeddings.latent @ components.T, 0.0, atol=1e-5)
    fitted = index_text_embedder(STATIC_TEXT_MODEL, outputs)
    assert fitted.fitted_rows == len(token_ids)
    np.testing.assert_allclose(atlas_map.embeddings.latent, fitted.embed_documents(first["text"].tolist()), atol=1e-5)
    shipped = load_text_embedder(STATIC_TEXT_MODEL).embed_documents(first["text"].tolist())
    assert not np.allclose(atlas_map.embeddings.latent, shipped, atol=1e-3)

    # A text query is embedded with the index's table: the best hit is the brute-force best with it.
    query = fitted.embed_queries(["stock market"])[0]
    found = atlas_map.embeddings.vector_search(queries=["stock market"], k=5)
    assert len(found[0][0]) == 5
    assert found[0][0][0] == first["id"].iloc[int(np.argmax(atlas_map.embeddings.latent @ query))]

    stamp = outputs.path(STAGE).stat().st_mtime_ns
    second = news_frame(shared_data, start=300, rows=60)
    dataset.add_data(second)
    dataset.update_indices()
    assert outputs.path(STAGE).stat().st_mtime_ns == stamp  # fitted once, never refitted
    latest = dataset.get_map(name="static").embeddings.latent
    assert latest.shape == (360, 256)
    np.testing.assert_allclose(latest[300:], fitted.embed_documents(second["text"].tolist()), atol=1e-5)


def test_a_big_text_dataset_hears_of_the_static_model_but_is_never_switched() -> None:
    from atlas_assets.pipeline.assets.static_table import static_model_hint

    hint = static_model_hint(250_000, None)
    assert hint is not None and STATIC_TEXT_MODEL in hint and "250,000" in hint
    assert static_model_hint(50_000, None) is None
    assert static_model_hint(250_000, STATIC_TEXT_MODEL) is None
