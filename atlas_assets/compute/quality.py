"""Quality figures of a neighbour graph and of a 2-D map (definitions in QUALITY_AND_SPEED.md).

Pure functions on arrays, shared by the tests, the benchmarks and the pipeline's cheap metadata.
Every figure is computed on a seeded sample of rows, so it costs O(sample x rows), never O(rows^2).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from atlas_assets.compute.graph import Metric, NeighbourGraph
from atlas_assets.compute.knn import exact_neighbours
from atlas_assets.errors import InvalidOptionError


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _check_aligned(vectors: np.ndarray, xy: np.ndarray) -> None:
    if len(vectors) != len(xy):
        raise InvalidOptionError(f"vectors ({len(vectors)} rows) and map ({len(xy)} rows) differ in rows")


def graph_recall(
    graph: NeighbourGraph, vectors: np.ndarray, sample: int = 2000, seed: int = 0
) -> float:
    """recall@k: share of the exact k nearest neighbours (of sampled rows, against all rows) that
    the graph lists."""
    if len(vectors) != graph.n_rows:
        raise InvalidOptionError("graph and vectors differ in rows")
    rows = _sample(graph.n_rows, sample, seed)
    exact, _ = exact_neighbours(vectors, vectors[rows], graph.k, graph.metric, exclude=rows)
    found = graph.neighbour_indices[rows]
    hits = [np.intersect1d(a[a >= 0], b[b >= 0]).size for a, b in zip(exact, found)]
    wanted = max(int((exact >= 0).sum()), 1)
    return float(np.sum(hits) / wanted)


def _map_neighbours(xy: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    tree = cKDTree(np.asarray(xy, dtype=np.float64))
    _, found = tree.query(np.asarray(xy, dtype=np.float64)[rows], k=k + 1)
    # drop the row itself wherever it lands (ties at distance 0), keep k
    out = np.empty((rows.size, k), dtype=np.int64)
    for position, (row, candidates) in enumerate(zip(rows, found)):
        others = candidates[candidates != row]
        out[position] = others[:k]
    return out


def neighbourhood_preservation(
    vectors: np.ndarray,
    xy: np.ndarray,
    k: int = 15,
    metric: Metric = "cosine",
    sample: int = 2000,
    seed: int = 0,
) -> float:
    """NP@k: mean over sampled rows of |kNN in the vectors intersected with kNN on the map| / k."""
    _check_aligned(vectors, xy)
    rows = _sample(len(vectors), sample, seed)
    high, _ = exact_neighbours(vectors, vectors[rows], k, metric, exclude=rows)
    low = _map_neighbours(xy, rows, k)
    return float(np.mean([np.intersect1d(a, b).size / k for a, b in zip(high, low)]))


def trustworthiness_score(
    vectors: np.ndarray,
    xy: np.ndarray,
    k: int = 15,
    metric: Metric = "cosine",
    sample: int = 4000,
    seed: int = 0,
) -> float:
    """sklearn's trustworthiness T(k) on a seeded sample of rows (quadratic in the sample only)."""
    from sklearn.manifold import trustworthiness

    _check_aligned(vectors, xy)
    rows = _sample(len(vectors), sample, seed)
    return float(
        trustworthiness(np.asarray(vectors)[rows], np.asarray(xy)[rows], n_neighbors=k, metric=metric)
    )


def _distances(a: np.ndarray, b: np.ndarray, metric: Metric) -> np.ndarray:
    if metric == "cosine":
        norm_a = np.linalg.norm(a, axis=1)
        norm_b = np.linalg.norm(b, axis=1)
        denominator = np.maximum(norm_a * norm_b, 1e-12)
        return 1.0 - np.einsum("ij,ij->i", a, b) / denominator
    return np.linalg.norm(a - b, axis=1)


def random_triplet_accuracy(
    vectors: np.ndarray,
    xy: np.ndarray,
    n_triplets: int = 20_000,
    metric: Metric = "cosine",
    seed: int = 0,
) -> float:
    """Share of random triplets (i, j, l) with d(i, j) < d(i, l) in the vectors that keep that order
    on the map (euclidean there): a figure of global structure."""
    _check_aligned(vectors, xy)
    n = len(vectors)
    if n < 3:
        raise InvalidOptionError("random triplet accuracy needs at least 3 rows")
    rng = np.random.default_rng(seed)
    i, j, l = (rng.integers(0, n, size=n_triplets) for _ in range(3))
    distinct = (i != j) & (i != l) & (j != l)
    i, j, l = i[distinct], j[distinct], l[distinct]
    vectors = np.asarray(vectors, dtype=np.float64)
    xy = np.asarray(xy, dtype=np.float64)
    high = _distances(vectors[i], vectors[j], metric) < _distances(vectors[i], vectors[l], metric)
    low = _distances(xy[i], xy[j], "euclidean") < _distances(xy[i], xy[l], "euclidean")
    return float(np.mean(high == low))


def map_neighbour_overlap(
    xy_a: np.ndarray, xy_b: np.ndarray, k: int = 15, sample: int = 2000, seed: int = 0
) -> float:
    """Mean share of each sampled row's k map neighbours that two maps of the same rows share."""
    if len(xy_a) != len(xy_b):
        raise InvalidOptionError("the two maps differ in rows")
    rows = _sample(len(xy_a), sample, seed)
    a = _map_neighbours(xy_a, rows, k)
    b = _map_neighbours(xy_b, rows, k)
    return float(np.mean([np.intersect1d(x, y).size / k for x, y in zip(a, b)]))


def mean_displacement(before: np.ndarray, after: np.ndarray) -> float:
    """Mean euclidean move of points between two maps, relative to the first map's extent (the
    larger side of its bounding box)."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    extent = float(np.ptp(before, axis=0).max()) or 1.0
    return float(np.linalg.norm(after - before, axis=1).mean() / extent)
