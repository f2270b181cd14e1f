"""The 2-D map: a UMAP-family force-directed layout of the shared neighbour graph.

Steps (docs/layout.md has the full account and measured figures):
1. fuzzy neighbourhood weights: per row a local scale (rho, sigma) so that each row's membership
   strengths sum to log2(n_neighbors); the directed weights are joined by fuzzy union
   w + w^T - w * w^T into one symmetric graph;
2. initial positions: the first two principal axes of the vectors when they are given (they set the
   map's large-scale arrangement); otherwise spectral (leading eigenvectors of the normalised
   adjacency, scipy eigsh) up to SPECTRAL_MAX_ROWS rows, a graph diffusion of random coordinates
   (block power iteration, linear in the edges) above or when the solver does not converge;
3. SGD in epochs: attraction along sampled edges, repulsion from negative samples, learning rate
   decaying linearly; numba, parallel over rows, deterministic for a seed (see layout_kernels).

`update_layout` keeps the old points where they were and places new rows at the weighted mean of
their neighbours before optimising only the new rows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from atlas_assets.compute import layout_kernels
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.compute.layout_init import initial_positions, vector_start
from atlas_assets.compute.layout_params import (
    V2_FROM_ROWS,
    LayoutOptions,
    LayoutParams,
    Model,
    default_n_epochs,
    fit_ab,
    resolve_layout_params,
)
from atlas_assets.errors import InvalidOptionError

__all__ = [
    "V2_FROM_ROWS",
    "LayoutOptions",
    "LayoutParams",
    "Model",
    "compute_layout",
    "default_n_epochs",
    "fit_ab",
    "fuzzy_graph",
    "resolve_layout_params",
    "update_layout",
    "vector_start",
    "with_epochs",
]

ATTRACTION_SCALE = 1.0
"""Step factor of attraction. Each undirected edge is visited from both ends and each visit moves only
its owner (half from its live position, half from the epoch's start: layout_kernels), so a row gets
half umap-learn's attraction, which moves both ends per visit. Measured with that kernel at the
default epochs: 1.0 gives the best trustworthiness (20newsgroups 0.931 vs 0.927 at 1.25, 0.926 at
1.5; ag_news 0.940 vs 0.934 / 0.928) and NP@15; more attraction raises triplet accuracy a little
(20newsgroups 0.630 -> 0.634 / 0.635)."""
UMAP_CALIBRATION = False
"""False: sigma makes a row's memberships sum to log2(n_neighbors) over its n_neighbors other rows.
True: the target umap-learn uses when given the row itself plus these n_neighbors rows (its
n_neighbors is then one more), log2(n_neighbors + 1) over the same rows: stronger far edges, and a
lower trustworthiness (ag_news 0.936 vs 0.940, 20newsgroups 0.928 vs 0.931)."""


def _check_graph(graph: NeighbourGraph, params: LayoutParams) -> LayoutParams:
    """Validate the graph against the parameters; returns the parameters to use (n_neighbors is
    lowered to the graph's k when the graph already lists every other row, i.e. tiny maps)."""
    indices = graph.neighbour_indices
    if indices.size and (indices.min() < -1 or indices.max() >= graph.n_rows):
        raise InvalidOptionError(
            "neighbour graph refers to rows outside 0..n_rows-1; rebuild it for the current rows"
        )
    if params.n_neighbors > graph.k:
        if graph.k >= graph.n_rows - 1:
            usable = max(graph.k, 2)
            return replace(
                params, n_neighbors=usable, attraction_neighbors=min(params.attraction_neighbors, usable)
            )
        raise InvalidOptionError(
            f"n_neighbors ({params.n_neighbors}) exceeds the neighbour graph's k ({graph.k}); "
            f"build the graph with k >= {params.n_neighbors} or lower n_neighbors"
        )
    return params


def fuzzy_graph(graph: NeighbourGraph, params: LayoutParams) -> sp.csr_matrix:
    """Symmetric fuzzy neighbourhood weights (CSR, float32, no self loops) of the first
    params.n_neighbors columns; only the attraction_neighbors nearest keep an edge."""
    n = graph.n_rows
    indices = graph.neighbour_indices[:, : params.n_neighbors]
    distances = graph.neighbour_distances[:, : params.n_neighbors].astype(np.float32)
    valid = (indices >= 0) & np.isfinite(distances) & (indices != np.arange(n)[:, None])
    distances = np.where(valid, distances, 0.0).astype(np.float32)
    # umap-learn's neighbour lists start with the row itself, which its sum skips: given the row plus
    # these n_neighbors rows it aims at log2(n_neighbors + 1) over them
    target = np.log2(params.n_neighbors + 1) if UMAP_CALIBRATION else np.log2(params.n_neighbors)
    sigmas, rhos = layout_kernels.local_scales(
        np.ascontiguousarray(distances), np.ascontiguousarray(valid), params.local_connectivity, float(target)
    )
    strength = np.exp(-np.maximum(distances - rhos[:, None], 0.0) / sigmas[:, None]).astype(np.float32)
    valid[:, params.attraction_neighbors :] = False
    rows = np.broadcast_to(np.arange(n)[:, None], indices.shape)[valid]
    directed = sp.csr_matrix((strength[valid], (rows, indices[valid])), shape=(n, n), dtype=np.float32)
    transposed = directed.T.tocsr()
    product = directed.multiply(transposed)
    joined = (directed + transposed - product).tocsr()
    joined.eliminate_zeros()
    joined.sort_indices()
    return joined


def _epoch_schedule(weights: sp.csr_matrix, params: LayoutParams, n_epochs: int):
    """Per-edge sampling periods (umap-learn's epochs_per_sample), edges lighter than
    max / n_epochs dropped (they would never be sampled)."""
    data = weights.data.astype(np.float64)
    keep = data >= data.max() / n_epochs if data.size else np.zeros(0, dtype=bool)
    pruned = weights.copy()
    pruned.data = np.where(keep, pruned.data, 0.0).astype(np.float32)
    pruned.eliminate_zeros()
    data = pruned.data.astype(np.float64)
    epochs_per_sample = data.max() / data if data.size else data
    rate = max(params.negative_sample_rate, 1e-12)
    epochs_per_negative = epochs_per_sample / rate
    if params.negative_sample_rate == 0:
        epochs_per_negative = np.full_like(epochs_per_sample, np.inf)
    return pruned, epochs_per_sample, epochs_per_negative


def _optimise(
    xy: np.ndarray,
    weights: sp.csr_matrix,
    params: LayoutParams,
    n_epochs: int,
    seed: int,
    movable: np.ndarray,
    progress: bool,
) -> np.ndarray:
    pruned, epochs_per_sample, epochs_per_negative = _epoch_schedule(weights, params, n_epochs)
    indptr = pruned.indptr.astype(np.int64)
    heads_to = pruned.indices.astype(np.int64)
    next_sample = epochs_per_sample.copy()
    next_negative = epochs_per_negative.copy()
    source = np.ascontiguousarray(xy, dtype=np.float32)
    target = np.empty_like(source)
    epochs = range(n_epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc="layout", unit="epoch")
    for epoch in epochs:
        alpha = params.learning_rate * (1.0 - epoch / n_epochs)
        layout_kernels.sgd_epoch(
            source, target, indptr, heads_to, epochs_per_sample, next_sample, epochs_per_negative,
            next_negative, movable, params.a, params.b, params.repulsion_strength, ATTRACTION_SCALE, alpha,
            epoch, seed,
        )
        source, target = target, source
    return source


def compute_layout(
    graph: NeighbourGraph,
    params: LayoutParams,
    seed: int = 0,
    progress: bool = False,
    vectors: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """(n, 2) float32 map coordinates of the graph's rows; the same for the same graph and seed.

    vectors (optional, the rows the graph was built from) only place disconnected parts of the
    graph relative to each other (by their centroids); without them such parts are set side by side.
    start (optional): the starting map `vector_start` made from the vectors, given instead of them
    so the caller need not hold the vectors through the SGD (the same map as passing the vectors).
    """
    params = _check_graph(graph, params)
    n = graph.n_rows
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if n == 1:
        return np.zeros((1, 2), dtype=np.float32)
    if start is not None and np.shape(start) != (n, 2):
        raise InvalidOptionError(f"start must be ({n}, 2) to match the graph's rows, got {np.shape(start)}")
    weights = fuzzy_graph(graph, params)
    if start is not None:
        xy = np.array(start, dtype=np.float32)
    else:
        xy = initial_positions(weights, params, seed, vectors, graph.metric == "cosine")
    if weights.nnz == 0:
        return xy
    return _optimise(xy, weights, params, params.n_epochs, seed, np.zeros(0, dtype=np.bool_), progress)


def update_layout(
    graph: NeighbourGraph, previous_xy: np.ndarray, params: LayoutParams, seed: int = 0
) -> np.ndarray:
    """The map after rows were added: old points keep their coordinates, new ones join them.

    previous_xy: (n, 2), row i aligned with graph row i; finite rows are old points (held exactly
    where they were), NaN rows are new. Each new row starts at the weighted mean of its placed
    neighbours (rows whose neighbours are all new are placed in later passes; rows with no placed
    neighbour at all start at the map's centre), then params.update_epochs epochs move only the new
    rows, attracted by their neighbours and repelled by negative samples of the whole map. With no
    old point it is compute_layout.
    """
    params = _check_graph(graph, params)
    previous = np.asarray(previous_xy, dtype=np.float64)
    n = graph.n_rows
    if previous.shape != (n, 2):
        raise InvalidOptionError(
            f"previous_xy must be ({n}, 2) to match the graph's rows, got {previous.shape}"
        )
    new = np.isnan(previous).any(axis=1)
    if np.isinf(previous).any():
        raise InvalidOptionError("previous_xy holds infinite coordinates; use NaN for new rows")
    if not new.any():
        return previous.astype(np.float32)
    if new.all():
        return compute_layout(graph, params, seed)
    weights = fuzzy_graph(graph, params)
    xy = np.where(new[:, None], 0.0, previous)
    placed = ~new
    unplaced = layout_kernels.place_new_rows(xy, placed, weights.indptr, weights.indices, weights.data)
    if unplaced:
        xy[~placed] = previous[~new].mean(axis=0)
    extent = float(np.ptp(previous[~new], axis=0).max()) or 1.0
    jitter = np.random.default_rng(seed).normal(scale=1e-3 * extent, size=(int(new.sum()), 2))
    xy[new] += jitter
    return _optimise(xy, weights, params, params.update_epochs, seed, new, False)


def with_epochs(params: LayoutParams, n_epochs: int) -> LayoutParams:
    """A copy of params with another epoch count (benchmarks and tuning)."""
    return replace(params, n_epochs=n_epochs)
