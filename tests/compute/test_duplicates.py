"""find_duplicates: cutoff semantics, exact copies, union-find clusters, retention choice, quality."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from atlas_assets.compute.duplicates import DELETION, RETENTION, SINGLETON, find_duplicates
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.errors import InvalidOptionError


def knn_graph(vectors: np.ndarray, k: int, metric: str = "cosine") -> NeighbourGraph:
    """Exact kNN graph (the row itself excluded) built with scikit-learn, as the pipeline's would be."""
    k = min(k, len(vectors) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(vectors).kneighbors(vectors)
    keep = indices != np.arange(len(vectors))[:, None]
    # Drop the row itself (or, for exact copies, one column) so k columns remain.
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return NeighbourGraph(
        np.take_along_axis(indices, order, axis=1).astype(np.int64),
        np.take_along_axis(distances, order, axis=1).astype(np.float32),
        metric,
    )


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """Real 64-d vectors: scikit-learn's bundled handwritten digits, made distinct (no exact repeats)."""
    vectors = load_digits().data.astype(np.float32)
    return np.unique(vectors, axis=0)


def test_distinct_far_apart_rows_are_all_singletons(digits: np.ndarray) -> None:
    result = find_duplicates(knn_graph(digits, 10), digits, cutoff=0.0)
    assert set(result.duplicate_class) == {SINGLETON}
    assert np.all(result.cluster_id == -1)


def test_exact_copies_are_found_however_many_there_are(digits: np.ndarray) -> None:
    many = np.vstack([digits[:300], np.repeat(digits[10:11], 40, axis=0), np.repeat(digits[20:21], 3, axis=0)])
    # k=5 is far smaller than the 41 copies of row 10: the graph alone could not join them all.
    result = find_duplicates(knn_graph(many, 5), many, cutoff=0.0)
    copies_of_10 = np.r_[10, np.arange(300, 340)]
    copies_of_20 = np.r_[20, np.arange(340, 343)]
    assert len(set(result.cluster_id[copies_of_10])) == 1 and result.cluster_id[10] >= 0
    assert len(set(result.cluster_id[copies_of_20])) == 1 and result.cluster_id[20] >= 0
    assert result.cluster_id[10] != result.cluster_id[20]
    assert (result.duplicate_class[copies_of_10] == RETENTION).sum() == 1
    assert (result.duplicate_class[copies_of_10] == DELETION).sum() == 40
    others = np.setdiff1d(np.arange(len(many)), np.r_[copies_of_10, copies_of_20])
    assert set(result.duplicate_class[others]) == {SINGLETON}


def test_cutoff_is_a_cosine_distance_and_pairs_join_transitively() -> None:
    angle = lambda degrees: np.array([np.cos(np.radians(degrees)), np.sin(np.radians(degrees)), 0.0])
    # 0, 20 and 40 degrees: neighbours 20 degrees apart (cosine distance 0.060), the ends 40 apart
    # (0.234). With cutoff 0.07 the chain joins all three; 90 degrees stays alone.
    vectors = np.stack([angle(0), angle(20), angle(40), angle(90) * 3.0]).astype(np.float32)
    result = find_duplicates(knn_graph(vectors, 3), vectors, cutoff=0.07)
    assert list(result.cluster_id) == [0, 0, 0, -1]
    assert list(result.duplicate_class) == [DELETION, RETENTION, DELETION, SINGLETON]
    tighter = find_duplicates(knn_graph(vectors, 3), vectors, cutoff=0.05)
    assert set(tighter.duplicate_class) == {SINGLETON}


def test_a_euclidean_graph_gives_the_same_clusters_as_a_cosine_one(digits: np.ndarray) -> None:
    noisy = np.vstack([digits, digits[:50] + np.random.default_rng(1).normal(0, 0.3, (50, 64))]).astype(np.float32)
    by_cosine = find_duplicates(knn_graph(noisy, 10, "cosine"), noisy, cutoff=0.01)
    by_euclid = find_duplicates(knn_graph(noisy, 10, "euclidean"), noisy, cutoff=0.01)
    np.testing.assert_array_equal(by_cosine.cluster_id, by_euclid.cluster_id)
    assert (by_cosine.cluster_id[-50:] >= 0).mean() > 0.9


def test_cluster_ids_are_numbered_by_lowest_row(digits: np.ndarray) -> None:
    rows = np.vstack([digits[:100], digits[50:51], digits[5:6]])
    result = find_duplicates(knn_graph(rows, 5), rows, cutoff=0.0)
    assert result.cluster_id[5] == 0 and result.cluster_id[50] == 1
    assert result.cluster_id[101] == 0 and result.cluster_id[100] == 1


def test_cutoff_outside_zero_to_one_is_rejected(digits: np.ndarray) -> None:
    with pytest.raises(InvalidOptionError, match="cosine distance"):
        find_duplicates(knn_graph(digits[:20], 3), digits[:20], cutoff=1.5)


def test_empty_input_gives_empty_result() -> None:
    empty = NeighbourGraph(np.zeros((0, 3), np.int64), np.zeros((0, 3), np.float32), "cosine")
    result = find_duplicates(empty, np.zeros((0, 8), np.float32))
    assert len(result.duplicate_class) == 0 and len(result.cluster_id) == 0


@pytest.mark.slow
def test_planted_near_duplicates_recall_and_precision_at_the_default_cutoff() -> None:
    """Real ag_news texts plus edited copies (case, punctuation, swapped or replaced word)."""
    from benchmarks.duplicates import planted_corpus

    corpus, vectors = planted_corpus(n_base=800, n_originals=200, seed=3)
    result = find_duplicates(knn_graph(vectors, 15), vectors)  # default cutoff 0.1
    from benchmarks.duplicates import pair_scores

    scores = pair_scores(result.cluster_id, corpus.origin)
    assert scores["recall"] >= 0.95
    assert scores["precision"] >= 0.95
