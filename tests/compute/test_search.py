"""search_vectors / search_ids: exact nearest neighbours, validated inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from atlas_assets.compute.search import MAX_K, search_ids, search_vectors
from atlas_assets.errors import InvalidOptionError


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """1,797 real 64-d vectors (scikit-learn's bundled handwritten digits), as float32."""
    return load_digits().data.astype(np.float32)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    if metric == "cosine":
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        probe = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        distance = 1.0 - probe.astype(np.float64) @ unit.T.astype(np.float64)
    else:
        distance = np.linalg.norm(queries[:, None, :].astype(np.float64) - vectors[None], axis=2)
    return np.argsort(distance, axis=1, kind="stable")[:, :k], np.sort(distance, axis=1)[:, :k]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_recall_at_10_against_brute_force_is_at_least_0_95(digits: np.ndarray, metric: str) -> None:
    queries = digits[::9] + np.random.default_rng(0).normal(0, 0.5, digits[::9].shape).astype(np.float32)
    found, distances = search_vectors(digits, queries, k=10, metric=metric)
    expected, expected_distances = brute_force(digits, queries, 10, metric)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, expected, strict=True)])
    assert recall >= 0.95
    assert found.shape == distances.shape == (len(queries), 10)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-3, atol=1e-3)


def test_results_are_nearest_first(digits: np.ndarray) -> None:
    _, distances = search_vectors(digits, digits[:20], k=50)
    assert np.all(np.diff(distances, axis=1) >= -1e-6)


def test_k_up_to_1000_works_across_chunks(digits: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    import atlas_assets.compute.search as search

    monkeypatch.setattr(search, "_SCORE_BUDGET", 3000)  # forces many small chunks
    found, _ = search_vectors(digits, digits[:3], k=MAX_K)
    expected, _ = brute_force(digits, digits[:3], MAX_K, "cosine")
    for got, want in zip(found, expected, strict=True):
        assert len(set(got) & set(want)) >= 0.99 * MAX_K
    assert all(len(set(row)) == MAX_K for row in found)


def test_a_single_query_vector_is_accepted(digits: np.ndarray) -> None:
    found, _ = search_vectors(digits, digits[5], k=3)
    assert found.shape == (1, 3)
    assert found[0, 0] == 5


def test_search_ids_excludes_the_row_itself_but_keeps_its_copies(digits: np.ndarray) -> None:
    with_copy = np.vstack([digits, digits[7:8]])
    copy_row = len(digits)
    found, distances = search_ids(with_copy, np.array([7, 100]), k=5)
    assert 7 not in found[0] and found[0, 0] == copy_row and distances[0, 0] == pytest.approx(0, abs=1e-6)
    assert 100 not in found[1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda v: search_vectors(v, v[:2], k=0), "k must be"),
        (lambda v: search_vectors(v, v[:2], k=1001), "k must be"),
        (lambda v: search_vectors(v, v[:2], k=2.5), "k must be"),
        (lambda v: search_vectors(v, v[:2, :10], k=3), "queries must be"),
        (lambda v: search_vectors(v, v[:2], k=3, metric="dot"), "metric"),
        (lambda v: search_vectors(v[:4], v[:2], k=5), "more neighbours than"),
        (lambda v: search_ids(v[:4], np.array([0]), k=4), "more neighbours than"),
        (lambda v: search_ids(v, np.array([len(v)]), k=4), "row_of_ids"),
        (lambda v: search_vectors(v, np.full((1, v.shape[1]), np.nan), k=3), "finite"),
    ],
)
def test_bad_requests_raise_invalid_option_error(digits: np.ndarray, call, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        call(digits)
