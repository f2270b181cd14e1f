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

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import scipy.sparse as sp

from atlas_assets.compute import layout_kernels
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.errors import InvalidOptionError

Model = Literal["nomic-project-v1", "nomic-project-v2"]
V2_FROM_ROWS = 50_000
"""model=None picks nomic-project-v1 below this many rows, nomic-project-v2 from it."""
SPECTRAL_MAX_ROWS = 200_000
"""Largest map initialised spectrally; above, a graph diffusion of random coordinates is used."""
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
SPECTRAL_MAX_ITERATIONS = 3000
"""ARPACK iterations before the spectral init gives up for the diffusion init (bounds its time)."""
INIT_EXTENT = 10.0
"""Initial coordinates are scaled so the largest absolute coordinate is this (as umap-learn)."""
PCA_SAMPLE_ROWS = 10_000
"""Rows (a seeded sample) whose principal axes place the map when the vectors are given; all rows
are then projected on them, in chunks of PCA_CHUNK_ROWS (no full normalised copy of the vectors)."""
PCA_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class LayoutOptions:
    """The user-facing layout knobs (create_index's `projection=`); None = chosen from the data size.

    The client validates their ranges when the index is created; resolve_layout_params turns them
    into LayoutParams and checks how they combine.
    """

    n_neighbors: int | None = None
    n_epochs: int | None = None
    model: Model | None = None
    local_neighborhood_size: int | None = None
    spread: float | None = None
    rho: float | None = None
    min_dist: float | None = None


@dataclass(frozen=True)
class LayoutParams:
    """Every number the layout uses, resolved (no None): see resolve_layout_params for the defaults.

    n_neighbors: graph columns used per row (<= the graph's k). attraction_neighbors: of those, how
    many nearest get an attraction edge (nomic-project-v2's local_neighborhood_size; n_neighbors in
    v1). repulsion_strength: weight of negative samples (v2's rho; 1 in v1). a, b: the low-dimensional
    similarity 1 / (1 + a d^2b), fitted from spread and min_dist. local_connectivity: neighbours
    assumed fully connected when calibrating the local scale (umap-learn's local_connectivity).
    """

    model: Model
    n_neighbors: int
    n_epochs: int
    spread: float
    min_dist: float
    a: float
    b: float
    negative_sample_rate: int = 5
    learning_rate: float = 1.0
    repulsion_strength: float = 1.0
    attraction_neighbors: int = 15
    local_connectivity: float = 1.0
    init: Literal["auto", "pca", "spectral", "diffusion"] = "auto"
    update_epochs: int = 100

    def __post_init__(self) -> None:
        checks = [
            (self.model in ("nomic-project-v1", "nomic-project-v2"), "model must be nomic-project-v1 or -v2"),
            (2 <= self.n_neighbors <= 200, "n_neighbors must be in 2..200"),
            (1 <= self.n_epochs <= 10_000, "n_epochs must be in 1..10000"),
            (0 < self.spread <= 100, "spread must be in (0, 100]"),
            (0 <= self.min_dist <= self.spread, "min_dist must be in [0, spread]"),
            (self.a > 0 and self.b > 0, "a and b must be positive"),
            (0 <= self.negative_sample_rate <= 100, "negative_sample_rate must be in 0..100"),
            (0 < self.learning_rate <= 100, "learning_rate must be in (0, 100]"),
            (0 <= self.repulsion_strength <= 10, "repulsion_strength (rho) must be in [0, 10]"),
            (1 <= self.attraction_neighbors <= self.n_neighbors,
             "local_neighborhood_size must be in 1..n_neighbors"),
            (self.local_connectivity >= 0, "local_connectivity must be >= 0"),
            (self.init in ("auto", "pca", "spectral", "diffusion"), "init must be auto, pca, spectral or diffusion"),
            (1 <= self.update_epochs <= 10_000, "update_epochs must be in 1..10000"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidOptionError(f"invalid layout parameters: {message}")


@lru_cache(maxsize=64)
def fit_ab(spread: float, min_dist: float) -> tuple[float, float]:
    """a, b of 1 / (1 + a d^2b) closest to 1 below min_dist and exp(-(d - min_dist) / spread) above."""
    from scipy.optimize import curve_fit

    def curve(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return 1.0 / (1.0 + a * x ** (2 * b))

    xv = np.linspace(0, spread * 3, 300)
    yv = np.where(xv < min_dist, 1.0, np.exp(-(xv - min_dist) / spread))
    (a, b), _ = curve_fit(curve, xv, yv)
    return float(a), float(b)


def default_n_epochs(n_rows: int) -> int:
    """Epochs chosen from the size. umap-learn uses 500 up to 10k rows and 200 above; this optimiser
    reaches umap-learn's NP@15 / trustworthiness with fewer (measured on ag_news, stackoverflow_titles:
    docs/layout.md), and large maps need fewer epochs per point to settle."""
    if n_rows <= 10_000:
        return 200
    if n_rows <= 100_000:
        return 120
    return 100


def resolve_layout_params(options: LayoutOptions | None, n_rows: int) -> LayoutParams:
    """LayoutParams for a map of n_rows rows; None options (or None fields) are chosen from n_rows.

    model: nomic-project-v1 is the UMAP-faithful layout; nomic-project-v2 is the same optimiser with
    two extra knobs: local_neighborhood_size (how many nearest neighbours of each row attract it;
    fewer is faster and more local, more gives more global structure; default n_neighbors) and rho
    (repulsion strength: > 1 spreads local structure apart, < 1 packs it tighter; default 1). None
    picks v1 below V2_FROM_ROWS rows and v2 from there; giving local_neighborhood_size or rho picks
    v2, and giving them with an explicit v1 is an error. n_neighbors: 15. n_epochs: 200 up to 10k
    rows, 120 up to 100k, 100 above (default_n_epochs). spread 1, min_dist 0.1 (umap-learn's defaults).
    """
    if n_rows < 0:
        raise InvalidOptionError(f"n_rows must be >= 0, got {n_rows}")
    options = options or LayoutOptions()
    knobs_given = options.local_neighborhood_size is not None or options.rho is not None
    if options.model == "nomic-project-v1" and knobs_given:
        raise InvalidOptionError(
            "local_neighborhood_size and rho only apply to model='nomic-project-v2'; "
            "set model='nomic-project-v2' or leave them None"
        )
    model: Model = options.model or (
        "nomic-project-v2" if knobs_given or n_rows >= V2_FROM_ROWS else "nomic-project-v1"
    )
    n_neighbors = options.n_neighbors or 15
    spread = options.spread if options.spread is not None else 1.0
    min_dist = options.min_dist if options.min_dist is not None else min(0.1, spread)
    if not 0 < spread <= 100:
        raise InvalidOptionError(f"invalid layout parameters: spread must be in (0, 100], got {spread}")
    if min_dist > spread:
        raise InvalidOptionError(f"min_dist ({min_dist}) must not exceed spread ({spread})")
    attraction = n_neighbors
    repulsion = 1.0
    if model == "nomic-project-v2":
        if options.local_neighborhood_size is not None:
            if options.local_neighborhood_size > n_neighbors:
                raise InvalidOptionError(
                    f"local_neighborhood_size ({options.local_neighborhood_size}) must not exceed "
                    f"n_neighbors ({n_neighbors}); lower it or raise n_neighbors"
                )
            attraction = options.local_neighborhood_size
        if options.rho is not None:
            repulsion = options.rho
    a, b = fit_ab(spread, min_dist)
    n_epochs = options.n_epochs or default_n_epochs(n_rows)
    return LayoutParams(
        model=model,
        n_neighbors=n_neighbors,
        n_epochs=n_epochs,
        spread=spread,
        min_dist=min_dist,
        a=a,
        b=b,
        repulsion_strength=repulsion,
        attraction_neighbors=attraction,
        update_epochs=max(30, n_epochs // 2),
    )


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


def _scaled(coords: np.ndarray, seed: int) -> np.ndarray:
    coords = coords - coords.mean(axis=0)
    largest = np.abs(coords).max()
    if not np.isfinite(largest) or largest == 0:
        return np.zeros_like(coords, dtype=np.float32)
    rng = np.random.default_rng(seed)
    coords = coords * (INIT_EXTENT / largest) + rng.normal(scale=1e-4, size=coords.shape)
    return coords.astype(np.float32)


def _normalised_adjacency(weights: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    degree = np.asarray(weights.sum(axis=1)).ravel()
    inverse_root = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    scaling = sp.diags(inverse_root)
    return (scaling @ weights @ scaling).tocsr().astype(np.float64), degree


def spectral_init(weights: sp.csr_matrix, seed: int) -> np.ndarray | None:
    """Eigenvectors 2 and 3 of the normalised adjacency (= Laplacian eigenmap), or None when the
    graph is not connected or the solver does not converge (the caller then diffuses instead)."""
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import ArpackError, eigsh

    n = weights.shape[0]
    if n < 4:
        return None
    n_components, _ = connected_components(weights, directed=False)
    if n_components > 1:
        return None
    adjacency, degree = _normalised_adjacency(weights)
    # (I + A) / 2 has the same eigenvectors with eigenvalues in [0, 1]: the wanted end is the top
    shifted = (adjacency + sp.identity(n, format="csr")) * 0.5
    start = np.sqrt(degree) + np.random.default_rng(seed).normal(scale=1e-3, size=n)
    try:
        values, vectors = eigsh(
            shifted, k=3, which="LA", tol=1e-4, v0=start, maxiter=SPECTRAL_MAX_ITERATIONS, ncv=max(12, int(np.sqrt(n) // 4))
        )
    except (ArpackError, ValueError):
        return None
    order = np.argsort(-values)
    return vectors[:, order[1:3]]


def diffusion_init(weights: sp.csr_matrix, seed: int, n_steps: int = 60) -> np.ndarray:
    """Random coordinates smoothed along the graph (block power iteration on the normalised
    adjacency, the trivial direction projected out): linear in edges, works on any graph."""
    n = weights.shape[0]
    adjacency, degree = _normalised_adjacency(weights)
    adjacency = adjacency.astype(np.float32)
    trivial = np.sqrt(degree).astype(np.float32)
    trivial /= max(float(np.linalg.norm(trivial)), 1e-12)
    block = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    for step in range(n_steps):
        block = 0.5 * (block + adjacency @ block)
        block -= np.outer(trivial, trivial @ block)
        if step % 5 == 4 or step == n_steps - 1:
            block, _ = np.linalg.qr(block)
    # Rayleigh-Ritz: the two leading directions within the block
    small = block.T @ (adjacency @ block)
    values, rotation = np.linalg.eigh((small + small.T) / 2)
    return block @ rotation[:, np.argsort(-values)[:2]]


def _component_coords(weights: sp.csr_matrix, params: LayoutParams, seed: int) -> np.ndarray:
    """Initial coordinates of one connected graph, centred, largest absolute coordinate 1."""
    n = weights.shape[0]
    coords = None
    if n >= 4 and (params.init == "spectral" or (params.init == "auto" and n <= SPECTRAL_MAX_ROWS)):
        coords = spectral_init(weights, seed)
    if coords is None:
        if n >= 4:
            coords = diffusion_init(weights, seed)
        else:
            coords = np.random.default_rng(seed).normal(size=(n, 2))
    coords = coords - coords.mean(axis=0)
    largest = np.abs(coords).max()
    return coords / largest if largest > 0 else coords


def _component_centres(
    labels: np.ndarray, sizes: np.ndarray, vectors: np.ndarray | None, cosine: bool
) -> np.ndarray:
    """2-D positions of the connected components: the first two principal axes of their centroids
    when the vectors are given (so related components sit near each other, as umap-learn does),
    else a golden-angle spiral, largest component in the middle."""
    n_components = sizes.size
    if vectors is not None and len(vectors) == len(labels) and n_components > 2:
        data = np.asarray(vectors, dtype=np.float32)
        if cosine:
            data = data / np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-12)
        membership = sp.csr_matrix(
            (np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))),
            shape=(n_components, len(labels)),
        )
        centroids = np.asarray(membership @ data) / sizes[:, None]
        centred = centroids - centroids.mean(axis=0)
        _, _, axes = np.linalg.svd(centred, full_matrices=False)
        return centred @ axes[:2].T
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty(n_components)
    rank[order] = np.arange(n_components)
    angle = rank * 2.399963  # golden angle
    return np.column_stack([np.sqrt(rank) * np.cos(angle), np.sqrt(rank) * np.sin(angle)])


def pca_init(vectors: np.ndarray, cosine: bool, seed: int) -> np.ndarray | None:
    """Every row projected on the first two principal axes of the (unit-normalised when cosine)
    vectors, the axes fitted on a seeded sample of PCA_SAMPLE_ROWS rows; None when the vectors
    have fewer than two columns or rows."""
    n = len(vectors)
    if n < 2 or vectors.ndim != 2 or vectors.shape[1] < 2:
        return None

    def prepared(rows: np.ndarray) -> np.ndarray:
        block = np.asarray(vectors[rows], dtype=np.float32)
        if cosine:
            block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        return block

    sample = prepared(np.sort(np.random.default_rng(seed).permutation(n)[:PCA_SAMPLE_ROWS]))
    mean = sample.mean(axis=0)
    centred = sample - mean
    # eigenvectors of the d x d scatter matrix: a few times faster than an SVD of the sample
    _, eigenvectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    axes = eigenvectors[:, ::-1][:, :2].astype(np.float32)
    coords = np.empty((n, 2), dtype=np.float32)
    for start in range(0, n, PCA_CHUNK_ROWS):
        rows = np.arange(start, min(start + PCA_CHUNK_ROWS, n))
        coords[rows] = (prepared(rows) - mean) @ axes
    return coords


def initial_positions(
    weights: sp.csr_matrix,
    params: LayoutParams,
    seed: int,
    vectors: np.ndarray | None = None,
    cosine: bool = True,
) -> np.ndarray:
    """Starting map, scaled so the largest coordinate is INIT_EXTENT.

    With the vectors (init "auto" or "pca"): their first two principal axes. The start decides the
    map's large-scale arrangement, which SGD on neighbour edges hardly changes; from PCA, random
    triplet accuracy on digits is 0.69 instead of 0.615 from the spectral start (umap-learn's default,
    0.62), and trustworthiness on 20newsgroups 0.931 instead of 0.929 (docs/layout.md).
    Without them, or with init "spectral" / "diffusion": _graph_positions."""
    if params.init in ("auto", "pca") and vectors is not None and len(vectors) == weights.shape[0]:
        coords = pca_init(vectors, cosine, seed)
        if coords is not None:
            return _scaled(coords, seed)
    return _graph_positions(weights, params, seed, vectors, cosine)


def _graph_positions(
    weights: sp.csr_matrix,
    params: LayoutParams,
    seed: int,
    vectors: np.ndarray | None = None,
    cosine: bool = True,
) -> np.ndarray:
    """Spectral / diffusion coordinates of each connected component, components laid side by side
    (see _component_centres), scaled so the largest coordinate is INIT_EXTENT."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n_components, labels = connected_components(weights, directed=False)
    if n_components == 1:
        return _scaled(_component_coords(weights, params, seed), seed)
    sizes = np.bincount(labels, minlength=n_components).astype(np.float64)
    centres = _component_centres(labels, sizes, vectors, cosine)
    centres = centres - centres.mean(axis=0)
    centres *= INIT_EXTENT / max(float(np.abs(centres).max()), 1e-12)
    gap, _ = cKDTree(centres).query(centres, k=2)
    radius = np.clip(0.45 * gap[:, 1], 1e-3, None)
    rng = np.random.default_rng(seed)
    coords = centres[labels] + rng.normal(scale=1e-2, size=(len(labels), 2)) * radius[labels, None]
    order = np.argsort(labels, kind="stable")
    bounds = np.r_[0, np.cumsum(sizes).astype(np.int64)]
    for component in np.nonzero(sizes >= 4)[0]:
        rows = order[bounds[component] : bounds[component + 1]]
        local = _component_coords(weights[rows][:, rows], params, seed + int(component))
        coords[rows] = centres[component] + local * radius[component]
    return _scaled(coords, seed)


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
) -> np.ndarray:
    """(n, 2) float32 map coordinates of the graph's rows; the same for the same graph and seed.

    vectors (optional, the rows the graph was built from) only place disconnected parts of the
    graph relative to each other (by their centroids); without them such parts are set side by side.
    """
    params = _check_graph(graph, params)
    n = graph.n_rows
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if n == 1:
        return np.zeros((1, 2), dtype=np.float32)
    weights = fuzzy_graph(graph, params)
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
