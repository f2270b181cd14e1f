"""The k-nearest-neighbour graph every later stage shares (layout, topics, duplicates, search).

Two engines, picked by size, with the same contract (the row itself excluded, nearest first):

* exact brute force (chunked matrix products, memory bounded by `CHUNK_BYTES`) up to
  `EXACT_MAX_ROWS` rows: on 2 cores it is faster than building an approximate index there, and exact;
* pynndescent above that, tuned for recall@k >= 0.95 against exact neighbours.

`extend_graph` updates a graph after rows were added and deleted. The rule: when the changed rows
(new + deleted) are at most `INCREMENTAL_MAX_CHANGE` (20%) of the current rows, the graph is updated
in place of a rebuild; otherwise it is rebuilt. In the exact regime the update is exact (identical
neighbour sets to a rebuild, ties aside); in the approximate regime NN-descent restarts from the
previous graph and reaches the same recall as a rebuild.

pynndescent compiles its numba kernels in every process unless their disk cache is switched on
(`resources.kernel_cache.enable_pynndescent_kernel_cache`, which the pipeline calls: compute writes
no files).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from atlas_assets.compute.arrays import unit_rows
from atlas_assets.compute.graph import Metric, NeighbourGraph
from atlas_assets.errors import InvalidEmbeddingsError, InvalidOptionError

EXACT_MAX_ROWS = 20_000
"""Largest row count handled by exact brute force (n^2 d work: 20k x 384 is ~3 s on 2 cores; above,
pynndescent is several times faster: 40k x 384 exact ~13 s vs ~2 s)."""
NNDESCENT_EXTRA_NEIGHBOURS = 5
"""pynndescent searches k + this many neighbours and keeps k: recall 0.94 -> 0.99 on a hard 384-d
mixture for ~20% more time."""
NNDESCENT_MAX_CANDIDATES = 60
"""pynndescent's candidates per row and iteration (see docs/layout.md for the recall it buys)."""
NNDESCENT_THREADS: int | None = None
"""pynndescent's threads (None: numba's default, every core)."""
INCREMENTAL_MAX_CHANGE = 0.2
"""extend_graph updates in place when (new + deleted rows) <= this share of the current rows."""
CHUNK_BYTES = 32 * 1024 * 1024
"""Size of the similarity block the brute-force search holds at once. Its peak is about 2-3x this
(the block, its partitioned copy and a mask; it was 4x with argpartition's int64 positions). 10,000
x 384, fresh processes, with argpartition: 256 MiB blocks took 3.5-3.9 s and 813 MiB above the
vectors, 32 MiB blocks 1.3-1.4 s and 163 MiB (16 MiB: 1.5-1.8 s, 98 MiB): smaller blocks also stay
in cache."""
METRICS: tuple[str, ...] = ("cosine", "euclidean")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InvalidOptionError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")


def _check_vectors(vectors: np.ndarray, what: str = "vectors") -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] == 0:
        raise InvalidEmbeddingsError(f"{what} must be a 2-D (rows, dims) array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise InvalidEmbeddingsError(f"{what} must be numeric, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not all(np.isfinite(array[start : start + 65_536]).all() for start in range(0, len(array), 65_536)):
        raise InvalidEmbeddingsError(f"{what} contain NaN or infinite values; drop or fix those rows")
    return array


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InvalidOptionError(f"k must be a positive integer, got {k!r}")


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0  # a zero vector stays zero: cosine distance 1 to everything
    return vectors / norms


def _inverse_norms(vectors: np.ndarray) -> np.ndarray:
    """1 / the length of each row (1 for a zero row), by einsum: no n x d temporary."""
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    norms[norms == 0] = 1.0
    return (1.0 / norms).astype(np.float32)


def _best_columns(score: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The `keep` highest-scoring columns of each row, best first (ties: lower column first), and
    their scores.

    Not argpartition: it moves an int64 position with every value, 125 ms per 32 MiB block against
    45 ms for partitioning the values alone to find each row's threshold and keeping the columns at
    or above it (10,000 x 384: 1.5 -> 0.5 s for the whole exact graph).
    """
    n_rows, n_columns = score.shape
    if keep >= n_columns:
        columns = np.broadcast_to(np.arange(n_columns), (n_rows, n_columns))
        order = np.argsort(-score, axis=1, kind="stable")
        return np.take_along_axis(columns, order, axis=1), np.take_along_axis(score, order, axis=1)
    threshold = np.partition(score, n_columns - keep, axis=1)[:, n_columns - keep]
    rows, columns = np.nonzero(score >= threshold[:, None])  # at least `keep` per row (more on ties)
    values = score[rows, columns]
    order = np.lexsort((columns, -values, rows))  # by row, then best first, then lower column
    rows, columns, values = rows[order], columns[order], values[order]
    first_of_row = np.searchsorted(rows, np.arange(n_rows))
    taken = (first_of_row[:, None] + np.arange(keep)[None, :]).ravel()
    return columns[taken].reshape(n_rows, keep), values[taken].reshape(n_rows, keep)


def exact_neighbours(
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: Metric = "cosine",
    exclude: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of `vectors` for each query, nearest first, by chunked brute force.

    exclude: optional row number of `vectors` per query to leave out (the query itself when the
    queries are rows of `vectors`; -1 excludes nothing). Returns (indices int64, distances float32),
    each (n_queries, k), padded with -1 / inf when fewer than k rows are available. Memory stays
    below CHUNK_BYTES for the similarity block whatever the sizes, so it doubles as the reference
    for recall measurements and as exact search.
    """
    _check_metric(metric)
    _check_k(k)
    base = _check_vectors(vectors)
    query = _check_vectors(queries, "queries")
    if query.shape[1] != base.shape[1]:
        raise InvalidEmbeddingsError(
            f"queries have {query.shape[1]} dimensions but vectors have {base.shape[1]}"
        )
    n_base, n_query = base.shape[0], query.shape[0]
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64)
        if exclude.shape != (n_query,):
            raise InvalidOptionError("exclude must hold one row number (or -1) per query")
    indices = np.full((n_query, k), -1, dtype=np.int64)
    distances = np.full((n_query, k), np.inf, dtype=np.float32)
    if n_base == 0 or n_query == 0:
        return indices, distances
    base_scale = None
    if metric == "cosine":
        query = _normalised(query)
        if n_base <= EXACT_MAX_ROWS:
            base = _normalised(base)
        else:  # a large base (the recall sample of a 1M graph) is not copied: its scores are scaled
            base_scale = _inverse_norms(base)
    else:
        base_sq = np.einsum("ij,ij->i", base, base)
    keep = min(k, n_base)
    chunk = max(1, CHUNK_BYTES // (4 * n_base))
    starts = range(0, n_query, chunk)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="exact kNN", unit="chunk")
    for start in starts:
        stop = min(start + chunk, n_query)
        block = query[start:stop]
        # score: larger is nearer (cosine similarity, or -squared distance up to a per-query constant)
        if metric == "cosine":
            score = block @ base.T
            if base_scale is not None:
                score *= base_scale[None, :]
        else:
            score = block @ base.T
            score *= 2.0
            score -= base_sq[None, :]
        if exclude is not None:
            rows = np.nonzero(exclude[start:stop] >= 0)[0]
            score[rows, exclude[start:stop][rows]] = -np.inf
        top, top_score = _best_columns(score, keep)
        if metric == "cosine":
            top_distance = np.clip(1.0 - top_score, 0.0, 2.0)
        else:
            block_sq = np.einsum("ij,ij->i", block, block)
            top_distance = np.sqrt(np.maximum(block_sq[:, None] - top_score, 0.0))
        excluded = ~np.isfinite(top_score)
        top_distance[excluded] = np.inf
        indices[start:stop, :keep] = np.where(excluded, -1, top)
        distances[start:stop, :keep] = top_distance
    return indices, distances


def _drop_self(indices: np.ndarray, distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own number from its list (wherever it sits), keep the k nearest others."""
    n = indices.shape[0]
    is_self = indices == np.arange(n)[:, None]
    invalid = is_self | (indices < 0)
    distances = np.where(invalid, np.inf, distances).astype(np.float32)
    # stable sort keeps the engine's order among equal distances; invalid entries go last
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    out_indices = np.take_along_axis(np.where(invalid, -1, indices), order, axis=1)
    out_distances = np.take_along_axis(distances, order, axis=1)
    if out_indices.shape[1] < k:
        pad = k - out_indices.shape[1]
        out_indices = np.pad(out_indices, ((0, 0), (0, pad)), constant_values=-1)
        out_distances = np.pad(out_distances, ((0, 0), (0, pad)), constant_values=np.inf)
    return out_indices.astype(np.int64), out_distances.astype(np.float32)


def _nndescent(
    vectors: np.ndarray,
    k: int,
    metric: Metric,
    seed: int,
    progress: bool,
    init_graph: np.ndarray | None = None,
    delta: float = 0.001,
) -> tuple[np.ndarray, np.ndarray]:
    from pynndescent import NNDescent

    if metric == "cosine":
        # pynndescent's dense cosine normalises a copy of the rows (one more n x d float32 matrix:
        # 1 GB at 1M x 256); on unit rows euclidean orders neighbours the same and needs no copy
        vectors = unit_rows(vectors)
    index = NNDescent(
        vectors,
        metric="euclidean",
        n_neighbors=init_graph.shape[1] if init_graph is not None else k + NNDESCENT_EXTRA_NEIGHBOURS,
        random_state=seed,
        max_candidates=NNDESCENT_MAX_CANDIDATES,
        n_jobs=NNDESCENT_THREADS,
        delta=delta,
        low_memory=True,
        compressed=True,
        init_graph=init_graph,
        verbose=progress,
    )
    indices, distances = index.neighbor_graph
    del index  # its heaps and buffers, before the copies below
    if metric == "cosine":  # |a - b|^2 = 2 - 2 cos(a, b) between unit rows
        distances = np.clip(np.square(distances, dtype=np.float32) / 2, 0.0, 2.0)
    return _drop_self(indices.astype(np.int64), distances, k)


def uses_nndescent(n_rows: int, k: int, method: Literal["auto", "exact", "nndescent"] = "auto") -> bool:
    """Whether build_graph / extend_graph of n_rows rows run pynndescent (False: exact brute force,
    and pynndescent need not even be imported)."""
    exact = n_rows <= EXACT_MAX_ROWS if method == "auto" else method == "exact"
    return not exact and n_rows > k + NNDESCENT_EXTRA_NEIGHBOURS + 1


def build_graph(
    vectors: np.ndarray,
    k: int = 15,
    metric: Metric = "cosine",
    seed: int = 0,
    progress: bool = False,
    method: Literal["auto", "exact", "nndescent"] = "auto",
) -> NeighbourGraph:
    """The k nearest other rows of every row (exact up to EXACT_MAX_ROWS rows, pynndescent above).

    method: "auto" picks by size; "exact" / "nndescent" force an engine (benchmarks, tests).

    Cosine suits normalised text embeddings; euclidean or cosine suit user vectors. Rows with fewer
    than k other rows pad with -1 / inf. Deterministic for a seed in the exact regime; pynndescent's
    parallel build can differ in a few far neighbours between runs.
    """
    _check_metric(metric)
    _check_k(k)
    array = _check_vectors(vectors)
    n = array.shape[0]
    if method not in ("auto", "exact", "nndescent"):
        raise InvalidOptionError(f"unknown method {method!r}; use auto, exact or nndescent")
    if not uses_nndescent(n, k, method):
        indices, distances = exact_neighbours(
            array, array, k, metric, exclude=np.arange(n), progress=progress
        )
    else:
        indices, distances = _nndescent(array, k, metric, seed, progress)
    return NeighbourGraph(indices, distances, metric)


def _check_previous_row(previous_row: np.ndarray, n: int, previous: NeighbourGraph) -> np.ndarray:
    rows = np.asarray(previous_row)
    if rows.shape != (n,) or not np.issubdtype(rows.dtype, np.integer):
        raise InvalidOptionError(
            f"previous_row must be an integer array with one entry per current row ({n}), "
            f"got shape {rows.shape} and dtype {rows.dtype}"
        )
    rows = rows.astype(np.int64)
    kept = rows[rows >= 0]
    if (rows < -1).any() or (kept >= previous.n_rows).any():
        raise InvalidOptionError(
            f"previous_row entries must be -1 (new row) or a row of the previous graph "
            f"(0..{previous.n_rows - 1})"
        )
    if np.unique(kept).size != kept.size:
        raise InvalidOptionError("previous_row maps two current rows to the same previous row")
    return rows


def _carried_over(previous: NeighbourGraph, previous_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Previous neighbour lists renumbered to current rows; deleted neighbours become -1 / inf."""
    n = previous_row.shape[0]
    k = previous.k
    current_of_previous = np.full(previous.n_rows + 1, -1, dtype=np.int64)  # last slot: padding -1
    old = np.nonzero(previous_row >= 0)[0]
    current_of_previous[previous_row[old]] = old
    indices = np.full((n, k), -1, dtype=np.int64)
    distances = np.full((n, k), np.inf, dtype=np.float32)
    old_lists = previous.neighbour_indices[previous_row[old]]
    renumbered = current_of_previous[np.where(old_lists < 0, previous.n_rows, old_lists)]
    indices[old] = renumbered
    distances[old] = np.where(renumbered >= 0, previous.neighbour_distances[previous_row[old]], np.inf)
    return indices, distances


def _merge(
    indices_a: np.ndarray, distances_a: np.ndarray, indices_b: np.ndarray, distances_b: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of two candidate lists per row (no row appears in both)."""
    indices = np.concatenate([indices_a, indices_b], axis=1)
    distances = np.concatenate([distances_a, distances_b], axis=1)
    distances = np.where(indices < 0, np.inf, distances)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(distances, order, axis=1)


def extend_graph(
    vectors: np.ndarray,
    previous: NeighbourGraph,
    previous_row: np.ndarray,
    seed: int = 0,
) -> NeighbourGraph:
    """The graph of the current rows, updated from `previous` after additions and deletions.

    vectors: all current live rows. previous_row[i]: the row number of current row i in `previous`,
    or -1 for a new row; previous rows nobody refers to were deleted and leave every list.

    Rule: when (new + deleted rows) <= INCREMENTAL_MAX_CHANGE (20%) of the current rows, update;
    otherwise rebuild with build_graph. Updating, in the exact regime (<= EXACT_MAX_ROWS rows): new
    rows search all rows, old rows compare only against the new rows and keep their old lists, rows
    that lost a neighbour to a deletion are searched again, so the result equals a rebuild. In the
    approximate regime NN-descent restarts from the carried-over lists (new rows seeded from an exact
    search of a row sample) and converges in a few iterations to the recall of a rebuild.
    """
    array = _check_vectors(vectors)
    n = array.shape[0]
    rows = _check_previous_row(previous_row, n, previous)
    k, metric = previous.k, previous.metric
    new = np.nonzero(rows < 0)[0]
    n_deleted = previous.n_rows - (n - new.size)
    if n == 0 or new.size + n_deleted > INCREMENTAL_MAX_CHANGE * n or previous.n_rows == 0:
        return build_graph(array, k=k, metric=metric, seed=seed)
    if new.size == 0 and n_deleted == 0:
        return previous
    indices, distances = _carried_over(previous, rows)
    if n <= EXACT_MAX_ROWS:
        indices, distances = _extend_exact(array, indices, distances, new, k, metric)
    else:
        indices, distances = _extend_nndescent(array, indices, distances, new, k, metric, seed)
    return NeighbourGraph(indices, distances, metric)


def _extend_exact(
    array: np.ndarray,
    indices: np.ndarray,
    distances: np.ndarray,
    new: np.ndarray,
    k: int,
    metric: Metric,
) -> tuple[np.ndarray, np.ndarray]:
    n = array.shape[0]
    is_new = np.zeros(n, dtype=bool)
    is_new[new] = True
    # rows whose list lost an entry (deleted neighbour) or is new: search them against everything
    available = min(k, n - 1)
    incomplete = (indices[:, :available] < 0).any(axis=1) | is_new
    redo = np.nonzero(incomplete)[0]
    keep = np.nonzero(~incomplete)[0]
    if new.size and keep.size:
        cand_idx, cand_dist = exact_neighbours(array[new], array[keep], min(k, new.size), metric)
        cand_idx = np.where(cand_idx >= 0, new[np.maximum(cand_idx, 0)], -1)
        merged_idx, merged_dist = _merge(indices[keep], distances[keep], cand_idx, cand_dist, k)
        indices[keep], distances[keep] = merged_idx, merged_dist
    if redo.size:
        indices[redo], distances[redo] = exact_neighbours(array, array[redo], k, metric, exclude=redo)
    return indices, distances


def _extend_nndescent(
    array: np.ndarray,
    indices: np.ndarray,
    distances: np.ndarray,
    new: np.ndarray,
    k: int,
    metric: Metric,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = array.shape[0]
    rng = np.random.default_rng(seed)
    old = np.setdiff1d(np.arange(n), new)
    # seed each new row with its exact nearest rows among a sample: NN-descent then only refines
    sample = np.sort(rng.choice(old, size=min(old.size, 4096), replace=False))
    seed_idx, seed_dist = exact_neighbours(array[sample], array[new], k + 1, metric)
    indices[new] = np.where(seed_idx[:, :k] >= 0, sample[np.maximum(seed_idx[:, :k], 0)], -1)
    distances[new] = seed_dist[:, :k]
    # extra columns: NN-descent searches k + NNDESCENT_EXTRA_NEIGHBOURS (as in a rebuild); in old
    # rows they start with the nearest new rows that chose them as seeds (the reverse direction)
    extra = NNDESCENT_EXTRA_NEIGHBOURS
    init_graph = np.concatenate([indices, np.full((n, extra), -1, dtype=np.int64)], axis=1)
    pair_old = indices[new].ravel()
    pair_new = np.repeat(new, k)
    pair_distance = distances[new].ravel()
    usable = pair_old >= 0
    pair_old, pair_new, pair_distance = pair_old[usable], pair_new[usable], pair_distance[usable]
    order = np.lexsort((pair_distance, pair_old))
    pair_old, pair_new = pair_old[order], pair_new[order]
    first_of_group = np.r_[0, np.nonzero(np.diff(pair_old))[0] + 1]
    rank = np.arange(pair_old.size) - np.repeat(first_of_group, np.diff(np.r_[first_of_group, pair_old.size]))
    chosen = rank < extra
    init_graph[pair_old[chosen], k + rank[chosen]] = pair_new[chosen]
    # distances are recomputed by pynndescent in its own internal scale (squared euclidean, or its
    # alternative cosine): handing it ours would mix scales in its heaps
    return _nndescent(array, k, metric, seed, False, init_graph=init_graph.astype(np.int32))
