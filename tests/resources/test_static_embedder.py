"""The static model distilled from the default: its build, its runtime, its quality floors, and a map
made with it through create_index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from resources.embedder import load_text_embedder
from resources.model_registry import STATIC_TEXT_MODEL, resolve_model
from resources.model_store import install_model, is_installed
from resources.static_embedder import StaticEmbedder, build_static_model, sif_weights


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


def test_create_index_with_the_static_model(atlas_home: Path, shared_data) -> None:
    from atlas_assets import AtlasDataset
    from tests.conftest import news_frame

    dataset = AtlasDataset("tests/static-news", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=300))
    atlas_map = dataset.create_index(name="static", indexed_field="text", embedding_model=STATIC_TEXT_MODEL)
    assert atlas_map.embeddings.latent.shape == (300, 256)
    assert len(atlas_map.embeddings.projected) == 300
    assert atlas_map.topics.df["topic_depth_1"].notna().all()
    found = atlas_map.embeddings.vector_search(queries=["stock market"], k=5)
    assert len(found[0][0]) == 5
