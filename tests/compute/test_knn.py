"""The neighbour graph: exact below the size threshold, >= 0.95 recall above, updates like rebuilds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from atlas_assets.compute import knn
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.compute.knn import build_graph, exact_neighbours, extend_graph
from atlas_assets.compute.quality import graph_recall
from atlas_assets.errors import InvalidEmbeddingsError, InvalidOptionError


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data.astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_exact_graph_matches_sklearn_brute_force(digits: np.ndarray, metric: str) -> None:
    graph = build_graph(digits, k=10, metric=metric)
    distances, _ = NearestNeighbors(n_neighbors=11, metric=metric, algorithm="brute").fit(digits).kneighbors(digits)
    assert isinstance(graph, NeighbourGraph) and graph.metric == metric
    assert graph.neighbour_indices.shape == (len(digits), 10)
    assert graph.neighbour_indices.dtype == np.int64 and graph.neighbour_distances.dtype == np.float32
    np.testing.assert_allclose(graph.neighbour_distances, distances[:, 1:], atol=1e-4)
    assert graph_recall(graph, digits, sample=500) >= 0.99


def test_a_row_is_never_its_own_neighbour_even_with_duplicates(digits: np.ndarray) -> None:
    doubled = np.concatenate([digits[:100], digits[:100]])
    graph = build_graph(doubled, k=5, metric="euclidean")
    assert not (graph.neighbour_indices == np.arange(200)[:, None]).any()
    # each row's exact copy is its nearest neighbour, at distance 0
    nearest = graph.neighbour_indices[:, 0]
    assert np.all(graph.neighbour_distances[:, 0] == 0)
    assert np.all(np.abs(nearest - np.arange(200)) % 100 == 0)


def test_fewer_rows_than_k_pad_with_minus_one_and_inf(digits: np.ndarray) -> None:
    graph = build_graph(digits[:4], k=6)
    assert (graph.neighbour_indices[:, :3] >= 0).all()
    assert (graph.neighbour_indices[:, 3:] == -1).all()
    assert np.isinf(graph.neighbour_distances[:, 3:]).all()


@pytest.mark.slow  # pynndescent compiles part of itself in every fresh process (about a minute)
def test_nndescent_engine_reaches_recall_095(digits: np.ndarray) -> None:
    graph = build_graph(digits, k=15, metric="cosine", method="nndescent")
    assert not (graph.neighbour_indices == np.arange(len(digits))[:, None]).any()
    assert graph_recall(graph, digits, sample=1000) >= 0.95


def test_exact_neighbours_of_queries_are_sorted_nearest_first(digits: np.ndarray) -> None:
    indices, distances = exact_neighbours(digits, digits[:7] + 0.5, 4, "euclidean")
    assert indices.shape == (7, 4)
    assert np.all(np.diff(distances, axis=1) >= 0)
    direct = np.linalg.norm(digits[indices[0]] - (digits[0] + 0.5), axis=1)
    np.testing.assert_allclose(distances[0], direct, rtol=1e-4)


def _update_case(digits: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Old rows = digits minus the 5% added; some old rows deleted; returns (old, current, previous_row)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    n_added = len(digits) // 20
    old_rows, added_rows = order[n_added:], order[:n_added]
    deleted = rng.choice(len(old_rows), size=len(old_rows) // 50, replace=False)
    kept = np.setdiff1d(np.arange(len(old_rows)), deleted)
    current = np.concatenate([digits[old_rows[kept]], digits[added_rows]])
    previous_row = np.concatenate([kept, np.full(n_added, -1)])
    return digits[old_rows], current, previous_row


def test_extend_graph_in_the_exact_regime_equals_a_rebuild(digits: np.ndarray) -> None:
    old, current, previous_row = _update_case(digits)
    previous = build_graph(old, k=15, metric="cosine")
    updated = extend_graph(current, previous, previous_row)
    rebuilt = build_graph(current, k=15, metric="cosine")
    np.testing.assert_allclose(updated.neighbour_distances, rebuilt.neighbour_distances, atol=1e-5)
    same = np.mean([np.intersect1d(a, b).size / 15 for a, b in zip(updated.neighbour_indices, rebuilt.neighbour_indices)])
    assert same >= 0.99


@pytest.mark.slow
def test_extend_graph_in_the_approximate_regime_keeps_recall(digits: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knn, "EXACT_MAX_ROWS", 500)
    old, current, previous_row = _update_case(digits)
    previous = build_graph(old, k=15, metric="cosine")
    updated = extend_graph(current, previous, previous_row)
    assert graph_recall(updated, current, sample=1000) >= 0.95
    new_rows = np.nonzero(previous_row < 0)[0]
    assert (updated.neighbour_indices[new_rows] >= 0).all()
    exact, _ = exact_neighbours(current, current[new_rows], 15, "cosine", exclude=new_rows)
    found = updated.neighbour_indices[new_rows]
    new_recall = np.mean([np.intersect1d(a, b).size / 15 for a, b in zip(exact, found)])
    assert new_recall >= 0.95


def test_large_changes_rebuild_and_no_change_returns_the_same_graph(digits: np.ndarray) -> None:
    previous = build_graph(digits[:1000], k=10)
    same = extend_graph(digits[:1000], previous, np.arange(1000))
    assert same is previous
    # 50% new rows: beyond the 20% rule, a rebuild
    grown = extend_graph(digits[:1500], previous, np.concatenate([np.arange(1000), np.full(500, -1)]))
    np.testing.assert_allclose(grown.neighbour_distances, build_graph(digits[:1500], k=10).neighbour_distances, atol=1e-5)


def test_bad_inputs_raise_errors_that_say_what_to_fix(digits: np.ndarray) -> None:
    with pytest.raises(InvalidOptionError, match="metric"):
        build_graph(digits, metric="manhattan")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="k must be"):
        build_graph(digits, k=0)
    with pytest.raises(InvalidEmbeddingsError, match="NaN"):
        build_graph(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(InvalidEmbeddingsError, match="2-D"):
        build_graph(np.zeros(5))
    previous = build_graph(digits[:100], k=5)
    with pytest.raises(InvalidOptionError, match="one entry per current row"):
        extend_graph(digits[:100], previous, np.arange(50))
    with pytest.raises(InvalidOptionError, match="same previous row"):
        extend_graph(digits[:100], previous, np.zeros(100, dtype=np.int64))
    with pytest.raises(InvalidOptionError, match="previous graph"):
        extend_graph(digits[:100], previous, np.arange(100) + 1)


def test_pynndescent_runs_only_above_the_exact_size_and_only_when_asked() -> None:
    assert not knn.uses_nndescent(knn.EXACT_MAX_ROWS, 15)
    assert knn.uses_nndescent(knn.EXACT_MAX_ROWS + 1, 15)
    assert knn.uses_nndescent(1_000, 15, method="nndescent")
    assert not knn.uses_nndescent(50_000, 15, method="exact")
    # too few rows for an approximate search: exact whatever is asked
    assert not knn.uses_nndescent(15 + knn.NNDESCENT_EXTRA_NEIGHBOURS + 1, 15, method="nndescent")


def test_exact_search_breaks_ties_by_the_lower_row_and_matches_a_full_sort():
    from atlas_assets.compute.knn import _best_columns

    score = np.array([[1, 3, 3, 3, 0], [5, 5, 5, 5, 5], [0, 1, 2, 3, 4]], dtype=np.float32)
    columns, values = _best_columns(score, 2)
    assert columns.tolist() == [[1, 2], [0, 1], [4, 3]]
    assert values.tolist() == [[3, 3], [5, 5], [4, 3]]

    random = np.random.default_rng(3).standard_normal((40, 300)).astype(np.float32)
    columns, values = _best_columns(random, 7)
    expected = np.argsort(-random, axis=1, kind="stable")[:, :7]
    assert (columns == expected).all()
    assert (values == np.take_along_axis(random, expected, axis=1)).all()
