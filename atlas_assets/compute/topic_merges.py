"""Step 3 of topic building (compute/topics.py): the greedy modularity merge tree over the leaves,
cut into nested topics, deepest depth first (bottom_up) or broadest first (top_down)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

# Modularity resolution of the merges (docs/topics_and_duplicates.md has the measurements): the
# fine topics of a three-depth hierarchy come out of even size (at 1, the five largest of 87-137
# fine topics held a third of the rows); topics grouped into broader ones follow how strongly they
# are tied more than their sizes; the deepest depth of a two-depth hierarchy, themes rather than
# fine topics, keeps modularity's own balance.
FINE_TOPICS_RESOLUTION = 3.0
GROUPING_RESOLUTION = 0.5
THEMES_RESOLUTION = 1.0


def _merge_sequence(
    between: np.ndarray,
    centroids: np.ndarray,
    sizes: np.ndarray,
    adjacent: np.ndarray | None = None,
    resolution: float = 1.0,
) -> list[tuple[int, int]]:
    """Greedy modularity agglomeration of communities: the (kept, absorbed) pairs in merge order.

    Modularity is that of `between` at `resolution` (the weight of the size term: above 1 merging
    large communities costs more, so topics come out more even in size; below 1 merges follow the
    ties between communities more than their sizes). Only communities that touch (share edges in
    `adjacent`, or in `between` when it is None) are merged, so merged topics stay contiguous, with
    one exception:
    an island (a community touching no other, e.g. a small group the layout put apart) joins the
    community with the nearest 2-D centroid as soon as that costs less modularity than the best
    connected merge. Without that, a few tiny islands would be kept as whole topics at depth 1
    while the main map is forced into one.
    """
    centroids = centroids.astype(np.float64).copy()
    sizes = sizes.astype(np.float64).copy()
    weights = between.astype(np.float64).copy()
    # Without an adjacency, touching means sharing weight: the same matrix, merged once.
    touching = weights if adjacent is None else adjacent.astype(np.float64).copy()
    n_comm = len(weights)
    total = weights.sum()
    if n_comm <= 1:
        return []
    if total <= 0:
        weights += 1e-12
        total = weights.sum()
    share = weights.sum(axis=1) / total
    alive = np.ones(n_comm, dtype=bool)

    def gains(row: int) -> np.ndarray:
        gain = np.where(touching[row] > 0, 2.0 * (weights[row] / total - resolution * share[row] * share), -np.inf)
        gain[~alive] = -np.inf
        gain[row] = -np.inf
        return gain

    best_gain = np.empty(n_comm)
    best_partner = np.empty(n_comm, dtype=np.int64)
    for row in range(n_comm):
        gain = gains(row)
        best_partner[row] = int(np.argmax(gain))
        best_gain[row] = gain[best_partner[row]]
    merges: list[tuple[int, int]] = []
    for _ in range(n_comm - 1):
        candidates = np.where(alive, best_gain, -np.inf)
        kept = int(np.argmax(candidates))
        absorbed = int(best_partner[kept])
        islands = np.nonzero(alive & ~np.isfinite(best_gain))[0]
        if len(islands) and not candidates[kept] >= 0:
            gap = ((centroids[islands][:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
            gap[:, ~alive] = np.inf
            gap[np.arange(len(islands)), islands] = np.inf
            nearest = np.argmin(gap, axis=1)
            island_gain = -2.0 * resolution * share[islands] * share[nearest]
            pick = int(np.argmax(island_gain))
            if not np.isfinite(candidates[kept]) or island_gain[pick] > candidates[kept]:
                kept, absorbed = int(islands[pick]), int(nearest[pick])
        if absorbed < kept:
            kept, absorbed = absorbed, kept
        merges.append((kept, absorbed))
        _absorb(weights, kept, absorbed)
        if touching is not weights:
            _absorb(touching, kept, absorbed)
        share[kept] += share[absorbed]
        share[absorbed] = 0.0
        centroids[kept] = (centroids[kept] * sizes[kept] + centroids[absorbed] * sizes[absorbed]) / max(
            sizes[kept] + sizes[absorbed], 1.0
        )
        sizes[kept] += sizes[absorbed]
        alive[absorbed] = False
        gain = gains(kept)
        best_partner[kept] = int(np.argmax(gain))
        best_gain[kept] = gain[best_partner[kept]]
        improved = alive & (gain > best_gain)
        improved[kept] = False
        best_gain[improved] = gain[improved]
        best_partner[improved] = kept
        stale = np.nonzero(alive & ((best_partner == absorbed) | (best_partner == kept)) & ~improved)[0]
        for row in stale:
            if row == kept:
                continue
            row_gain = gains(int(row))
            best_partner[row] = int(np.argmax(row_gain))
            best_gain[row] = row_gain[best_partner[row]]
    return merges


def _absorb(between: np.ndarray, kept: int, absorbed: int) -> None:
    """Merge community `absorbed` into `kept` in a (communities x communities) weight matrix."""
    between[kept] += between[absorbed]
    between[:, kept] += between[:, absorbed]
    between[absorbed] = 0.0
    between[:, absorbed] = 0.0


def _cut(n_leaves: int, merges: Sequence[tuple[int, int]], n_clusters: int) -> np.ndarray:
    """Cluster of every leaf after the first n_leaves - n_clusters merges."""
    label = np.arange(n_leaves)
    for kept, absorbed in merges[: max(0, n_leaves - n_clusters)]:
        label[label == absorbed] = kept
    return label


@dataclass(frozen=True)
class Leaves:
    """The small communities every depth is made of: their graph, 2-D centroids and row counts."""

    between: np.ndarray  # (n, n) summed edge weights; the diagonal holds twice the internal weight
    centroids: np.ndarray
    sizes: np.ndarray
    adjacent: np.ndarray | None = None  # (n, n) > 0 where two leaves touch on the map; None: `between` > 0

    def subset(self, members: np.ndarray) -> "Leaves":
        block = np.ix_(members, members)
        adjacent = None if self.adjacent is None else self.adjacent[block]
        return Leaves(self.between[block], self.centroids[members], self.sizes[members], adjacent)

    def grouped(self, label: np.ndarray) -> "Leaves":
        """The communities of `label` (0..k-1 per leaf) as leaves of their own."""
        k = int(label.max()) + 1
        member = sparse.csr_matrix((np.ones(len(label)), (label, np.arange(len(label)))), shape=(k, len(label)))

        def summed(matrix: np.ndarray) -> np.ndarray:
            return np.asarray((member @ sparse.csr_matrix(matrix) @ member.T).todense())

        sizes = np.bincount(label, weights=self.sizes, minlength=k)
        centroids = (member @ (self.centroids * self.sizes[:, None])) / np.maximum(sizes, 1e-12)[:, None]
        adjacent = None if self.adjacent is None else summed(self.adjacent)
        return Leaves(summed(self.between), centroids, sizes, adjacent)


def _group(leaves: Leaves, target: int, resolution: float) -> np.ndarray:
    """Exactly min(target, n) groups of the leaves (a label 0..k-1 per leaf) from the merge tree.

    The greedy merges only depend on the summed weights between groups, so at one resolution
    grouping the groups of a finer cut continues the same tree, and a subset of leaves (one
    parent's) is grouped exactly as the whole tree would group it. Groups of groups always nest.
    """
    n_leaves = len(leaves.sizes)
    if target >= n_leaves:
        return np.arange(n_leaves)
    merges = _merge_sequence(leaves.between, leaves.centroids, leaves.sizes, leaves.adjacent, resolution)
    return np.unique(_cut(n_leaves, merges, max(target, 1)), return_inverse=True)[1]


def _resolution(depth_index: int, n_depths: int) -> float:
    if depth_index < n_depths - 1:
        return GROUPING_RESOLUTION
    return FINE_TOPICS_RESOLUTION if n_depths == 3 else THEMES_RESOLUTION


def bottom_up(leaves: Leaves, counts: list[int]) -> list[np.ndarray]:
    """Deepest depth first from the leaves, each broader depth grouping the topics below it."""
    n_depths = len(counts)
    levels = [_group(leaves, counts[-1], _resolution(n_depths - 1, n_depths))]
    for depth_index in range(n_depths - 2, -1, -1):
        finer = levels[0]
        coarser = _group(leaves.grouped(finer), counts[depth_index], _resolution(depth_index, n_depths))
        levels.insert(0, coarser[finer])
    return levels


def top_down(leaves: Leaves, counts: list[int]) -> list[np.ndarray]:
    """Depth 1 from the leaves; every topic then split on its own, in proportion to its size."""
    n_depths = len(counts)
    levels = [_group(leaves, counts[0], _resolution(0, n_depths))]
    total = leaves.sizes.sum()
    for depth_index, count in enumerate(counts[1:], start=1):
        parent = levels[-1]
        level = np.zeros(len(parent), dtype=np.int64)
        offset = 0
        for parent_label in np.unique(parent):
            members = np.nonzero(parent == parent_label)[0]
            wanted = max(2, int(round(count * leaves.sizes[members].sum() / total)))
            label = _group(leaves.subset(members), min(wanted, len(members)), _resolution(depth_index, n_depths))
            level[members] = label + offset
            offset += int(label.max()) + 1
        levels.append(level)
    return levels
