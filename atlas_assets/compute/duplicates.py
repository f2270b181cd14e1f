"""Semantic duplicates: rows closer than a cosine-distance cutoff, grouped into clusters.

Rules (docs/topics_and_duplicates.md):
- Two rows are duplicates when their cosine distance (1 - cosine similarity of the vectors) is
  <= cutoff. Candidate pairs come from the shared neighbour graph, and their distance is recomputed
  from the vectors, so a euclidean graph gives the same answer as a cosine one.
- Rows with bit-identical vectors are always duplicates of each other, however many copies exist
  (the graph only holds k neighbours per row, so 50 copies of one text would otherwise escape it).
- Pairs are joined transitively (union-find) into clusters. In each cluster the most central member
  (highest mean cosine similarity to the cluster's mean direction; ties: lowest row) is the
  "retention candidate", every other member a "deletion candidate". Other rows are "singleton".
- cluster_id: 0, 1, ... numbered by each cluster's lowest row; -1 for singletons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atlas_assets.compute.arrays import unit_rows
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.errors import InvalidOptionError

SINGLETON = "singleton"
RETENTION = "retention candidate"
DELETION = "deletion candidate"
# The candidate pairs' vectors gathered at a time: both ends of an edge, so 2 x edges x d x 4 bytes
# (200,000 edges of 384-d vectors at once held 614 MiB, the stage's whole spike at 50,000 rows).
_GATHER_BYTES = 32 * 1024 * 1024
# Rows hashed at a time: the product of a block with the multipliers is a temporary as big as the
# block (8,192 rows x 384 float32 = 12 MB; a whole 50,000-row map at once was 77 MB more at the peak).
_HASH_BLOCK_ROWS = 8_192


@dataclass(frozen=True)
class DuplicateResult:
    """duplicate_class: (n,) object array of the three class names; cluster_id: (n,) int64, -1 = none."""

    duplicate_class: np.ndarray
    cluster_id: np.ndarray

    @property
    def deletion_rows(self) -> np.ndarray:
        return np.nonzero(self.duplicate_class == DELETION)[0]


def _find(parent: np.ndarray) -> np.ndarray:
    """Root of every element (full path compression, vectorised)."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def _union_all(n_rows: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Connected components of the pair list: a root label per row (vectorised union-find)."""
    parent = np.arange(n_rows, dtype=np.int64)
    first = first.astype(np.int64)
    second = second.astype(np.int64)
    while len(first):
        parent = _find(parent)
        root_a, root_b = parent[first], parent[second]
        differ = root_a != root_b
        if not differ.any():
            break
        low = np.minimum(root_a[differ], root_b[differ])
        high = np.maximum(root_a[differ], root_b[differ])
        # Hook every high root onto the lowest root it is paired with; repeat until stable.
        np.minimum.at(parent, high, low)
        first, second = first[differ], second[differ]
    return _find(parent)


def _row_hashes(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of every row's bytes (multiply-add over 8-byte words, wrapping)."""
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.hstack([raw, np.zeros((len(rows), pad), dtype=np.uint8)])
    words = raw.view(np.uint64)
    multipliers = np.random.default_rng(12345).integers(1, 2**63, words.shape[1], dtype=np.uint64) | np.uint64(1)
    hashes = np.zeros(len(rows), dtype=np.uint64)
    for start in range(0, len(rows), _HASH_BLOCK_ROWS):
        stop = start + _HASH_BLOCK_ROWS
        with np.errstate(over="ignore"):
            hashes[start:stop] = (words[start:stop] * multipliers).sum(axis=1, dtype=np.uint64)
    return hashes


def _exact_copy_pairs(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, first row with the same bytes) for every row that repeats an earlier vector exactly.

    Rows are grouped by a hash of their bytes and every candidate is compared byte for byte with
    its group's first row, so a hash collision can never join two different vectors.
    """
    rows = np.ascontiguousarray(vectors)
    hashes = _row_hashes(rows)
    _, first_of, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    representative = first_of[inverse.ravel()]
    copies = np.nonzero(representative != np.arange(len(rows)))[0]
    same = np.all(rows[copies] == rows[representative[copies]], axis=1) if len(copies) else np.zeros(0, bool)
    # NaN never equals itself; rows that differ despite the hash stay apart.
    return copies[same], representative[copies[same]]


def _centrality(unit: np.ndarray, members: np.ndarray, cluster_of: np.ndarray, n_clusters: int) -> np.ndarray:
    """Each member's cosine-like closeness to its cluster's mean direction, `_GATHER_BYTES` of rows at
    a time: gathering every member's vector and its cluster's mean at once took 3 copies of the
    members' vectors (413 MiB at 50,000 rows with 47,000 rows in clusters)."""
    mean_direction = np.zeros((n_clusters, unit.shape[1]), dtype=np.float64)
    rows_per_chunk = max(1, _GATHER_BYTES // (unit.shape[1] * 8))
    chunks = [slice(start, start + rows_per_chunk) for start in range(0, len(members), rows_per_chunk)]
    for chunk in chunks:
        np.add.at(mean_direction, cluster_of[chunk], unit[members[chunk]])
    centrality = np.empty(len(members), dtype=np.float32)
    for chunk in chunks:
        centrality[chunk] = np.einsum(
            "ij,ij->i", unit[members[chunk]], mean_direction[cluster_of[chunk]].astype(np.float32)
        )
    return centrality


def find_duplicates(graph: NeighbourGraph, vectors: np.ndarray, cutoff: float = 0.1) -> DuplicateResult:
    """Duplicate clusters of the rows of `vectors` (same row order as `graph`). See the module rules."""
    if not 0.0 <= cutoff <= 1.0:
        raise InvalidOptionError(f"duplicate_cutoff is a cosine distance from 0 to 1, not {cutoff}")
    vectors = np.asarray(vectors)
    n_rows = vectors.shape[0]
    if graph.n_rows != n_rows:
        raise ValueError(f"graph has {graph.n_rows} rows but vectors have {n_rows}")
    duplicate_class = np.full(n_rows, SINGLETON, dtype=object)
    cluster_id = np.full(n_rows, -1, dtype=np.int64)
    if n_rows == 0:
        return DuplicateResult(duplicate_class, cluster_id)
    unit = unit_rows(vectors.astype(np.float32, copy=False))  # no copy when already unit (text embeddings are)

    source = np.repeat(np.arange(n_rows, dtype=np.int64), graph.k)
    target = graph.neighbour_indices.ravel().astype(np.int64)
    valid = target >= 0
    source, target = source[valid], target[valid]
    # Cheap pre-filter on the graph's own distances when they are cosine (with slack for float32),
    # then the exact cosine distance from the vectors decides.
    if graph.metric == "cosine":
        near = graph.neighbour_distances.ravel()[valid] <= cutoff + 1e-3
        source, target = source[near], target[near]
    close = np.zeros(len(source), dtype=bool)
    edges_per_chunk = max(1, _GATHER_BYTES // (2 * unit.shape[1] * unit.itemsize))
    for start in range(0, len(source), edges_per_chunk):  # bounded memory for euclidean graphs
        stop = start + edges_per_chunk
        distance = 1.0 - np.einsum("ij,ij->i", unit[source[start:stop]], unit[target[start:stop]])
        close[start:stop] = distance <= cutoff + 1e-6
    copy_rows, copy_of = _exact_copy_pairs(vectors)
    root = _union_all(
        n_rows, np.concatenate([source[close], copy_rows]), np.concatenate([target[close], copy_of])
    )

    cluster_size = np.bincount(root, minlength=n_rows)
    in_cluster = cluster_size[root] > 1
    if not in_cluster.any():
        return DuplicateResult(duplicate_class, cluster_id)
    members = np.nonzero(in_cluster)[0]
    roots = root[members]
    # Roots are the lowest row of each cluster (unions hook onto the lower root), so numbering roots
    # in ascending order numbers clusters by their lowest row.
    distinct_roots, compact = np.unique(roots, return_inverse=True)
    n_clusters = len(distinct_roots)
    centrality = _centrality(unit, members, compact, n_clusters)
    # Most central first, lowest row breaking ties: the first member per cluster in this order wins.
    order = np.lexsort((members, -centrality, compact))
    first_in_cluster = np.ones(len(order), dtype=bool)
    first_in_cluster[1:] = compact[order][1:] != compact[order][:-1]
    duplicate_class[members] = DELETION
    duplicate_class[members[order[first_in_cluster]]] = RETENTION
    cluster_id[members] = compact
    return DuplicateResult(duplicate_class, cluster_id)
