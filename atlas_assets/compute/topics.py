"""A topic hierarchy with names: every row gets one topic at every depth, depth 1 the broadest.

How topics are built (docs/topics_and_duplicates.md has the measured figures):
1. Two weighted graphs: "similar", the shared neighbour graph in embedding space, and for
   cluster_method "fast" also "touching", the k nearest neighbours in the 2-D layout (for
   "accurate" touching = similar). Edge weights fall off with distance relative to each row's own
   neighbourhood (as in UMAP), and both graphs are symmetric.
2. The map is cut into small compact cells (k-means of the 2-D points, twice as many cells as the
   deepest depth has topics), each split into its pieces connected in the touching graph: the
   leaves. Tiny leaves are folded into the neighbour they are most connected to.
3. Leaves are merged greedily: always the pair whose merge raises the modularity of the similar
   graph most, among pairs that touch (so "fast" topics stay regions of the map; an island joins
   its nearest region once that is cheaper than any touching merge). The fine topics of the third
   depth merge at resolution 3 (even sizes), broader depths group the topics below them at
   resolution 0.5 (merges follow the ties between regions more than their sizes), and the deepest
   of two depths merges at resolution 1. With enforce_topic_hierarchy False each depth is cut at
   its topic count (the data decides how many subtopics each topic has; a compact topic may keep a
   single subtopic); with True every topic is split into subtopics in proportion to its size, at
   least two whenever it holds two or more leaves. Either way each topic at depth d+1 lies inside
   one topic at depth d.
4. Rows are refined (a row joins the topic holding most of its similar-graph weight, depth 1
   first, deeper depths among the children of the row's parent); a "fast" row only joins a topic
   it touches on the map.
5. Names (compute/keywords.py, one call per depth): the two keywords that set a topic apart from
   its siblings most (class-based TF-IDF) make its short description; eight more are picked in
   turns across the depth for relevance, co-occurrence and few repeats among cousins. Without
   texts, "Topic 3 (north-west)" from the topic's number and its position on the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from atlas_assets.compute import keywords as kw
from atlas_assets.compute.arrays import rows_by_label
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.errors import InvalidOptionError

THREE_DEPTHS_FROM = 2_000
LAYOUT_NEIGHBOURS = 15
_DEPTH_EXPONENTS = {1: (0.18,), 2: (0.18, 0.4), 3: (0.18, 0.3, 0.5)}
_DEPTH_CAPS = (20, 200, 1_000)
_MAX_COMMUNITIES = 3_000
LEAVES_PER_TOPIC = 2
# Modularity resolution of the merges (docs/topics_and_duplicates.md has the measurements): the
# fine topics of a three-depth hierarchy come out of even size (at 1, the five largest of 87-137
# fine topics held a third of the rows); topics grouped into broader ones follow how strongly they
# are tied more than their sizes; the deepest depth of a two-depth hierarchy, themes rather than
# fine topics, keeps modularity's own balance.
FINE_TOPICS_RESOLUTION = 3.0
GROUPING_RESOLUTION = 0.5
THEMES_RESOLUTION = 1.0


@dataclass(frozen=True)
class TopicParams:
    """How topics are built (create_index's `topic_model=` settings that reach compute).

    cluster_method: "fast" only merges regions that touch on the 2-D map (each topic is one region);
    "accurate" merges whatever is most alike in embedding space. enforce_topic_hierarchy: False cuts
    each depth at its topic count; True splits every topic into subtopics in proportion to its size.
    """

    cluster_method: Literal["fast", "accurate"] = "fast"
    enforce_topic_hierarchy: bool = False

    def __post_init__(self) -> None:
        if self.cluster_method not in ("fast", "accurate"):
            raise InvalidOptionError(f"cluster_method must be 'fast' or 'accurate', got {self.cluster_method!r}")


@dataclass(frozen=True)
class Topic:
    """One topic. topic_id is unique across depths; parent is the topic_id one depth up (None at 1)."""

    topic_id: int
    depth: int
    parent: int | None
    short_description: str
    description: str
    keywords: list[str]
    size: int
    centroid_x: float
    centroid_y: float
    representative_row: int


@dataclass(frozen=True)
class TopicModel:
    """assignments: (n_rows, n_depths) int32 topic_id of every row at depths 1..n_depths."""

    assignments: np.ndarray
    topics: list[Topic]

    @property
    def n_depths(self) -> int:
        return int(self.assignments.shape[1])

    def topic(self, topic_id: int) -> Topic:
        return self._by_id()[topic_id]

    def _by_id(self) -> dict[int, Topic]:
        return {topic.topic_id: topic for topic in self.topics}

    def labels(self, depth: int) -> np.ndarray:
        """The short description of every row's topic at `depth` (1-based), as an object array."""
        if not 1 <= depth <= self.n_depths:
            raise InvalidOptionError(f"topic depth must be from 1 to {self.n_depths}, not {depth}")
        ids = self.assignments[:, depth - 1]
        names = {topic.topic_id: topic.short_description for topic in self.topics}
        lookup = np.empty(int(ids.max()) + 1 if len(ids) else 0, dtype=object)
        for topic_id, name in names.items():
            if topic_id < len(lookup):
                lookup[topic_id] = name
        return lookup[ids] if len(ids) else np.empty(0, dtype=object)


def depth_rule(n_rows: int) -> int:
    """Two depths below 2,000 rows, three from 2,000 rows on."""
    return 3 if n_rows >= THREE_DEPTHS_FROM else 2


def topic_counts(n_rows: int, n_depths: int) -> list[int]:
    """Number of topics per depth: about n^0.18, n^0.3, n^0.5 (capped at 20, 200, 1000).

    A handful of broad regions, a few dozen themes, about a hundred fine topics. Two depths use
    n^0.18 and n^0.4. E.g. 3,080 rows: 4 / 11 / 55; 20,000: 6 / 20 / 141; 1M: 12 / 63 / 1000.
    Never more topics than rows, never fewer than at the depth above.
    """
    counts: list[int] = []
    for depth, exponent in enumerate(_DEPTH_EXPONENTS[n_depths]):
        count = int(round(max(n_rows, 1) ** exponent))
        count = min(count, _DEPTH_CAPS[depth], n_rows)
        count = max(count, counts[-1] if counts else 1, 1 if n_rows else 0)
        counts.append(count)
    return counts


# ---------------------------------------------------------------------------------------------
# Step 1: the weighted graph to cluster


def _layout_neighbours(xy: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n_rows = len(xy)
    k = min(k, n_rows - 1)
    distances, indices = cKDTree(xy).query(xy, k=k + 1, workers=-1)
    return indices[:, 1:].astype(np.int64), distances[:, 1:].astype(np.float64)


def _symmetric_weights(indices: np.ndarray, distances: np.ndarray) -> sparse.csr_matrix:
    """UMAP-like membership strengths, summed over both directions of every edge."""
    n_rows = indices.shape[0]
    distances = np.where(np.isfinite(distances), distances, np.nan)
    nearest = np.nanmin(np.where(indices >= 0, distances, np.nan), axis=1, initial=np.inf)
    nearest = np.where(np.isfinite(nearest), nearest, 0.0)
    spread = np.nanmean(np.where(indices >= 0, distances, np.nan), axis=1) - nearest
    spread = np.where(np.isfinite(spread) & (spread > 1e-12), spread, 1.0)
    weights = np.exp(-np.maximum(distances - nearest[:, None], 0.0) / spread[:, None])
    valid = (indices >= 0) & np.isfinite(weights) & (indices != np.arange(n_rows)[:, None])
    rows = np.repeat(np.arange(n_rows), indices.shape[1])[valid.ravel()]
    cols = indices.ravel()[valid.ravel()]
    matrix = sparse.csr_matrix((weights.ravel()[valid.ravel()], (rows, cols)), shape=(n_rows, n_rows))
    return (matrix + matrix.T).tocsr()


def _map_graph(xy: np.ndarray) -> sparse.csr_matrix:
    """Which rows touch on the 2-D map: the weighted graph of their nearest layout neighbours."""
    return _symmetric_weights(*_layout_neighbours(xy, LAYOUT_NEIGHBOURS))


def _embedding_graph(graph: NeighbourGraph) -> sparse.csr_matrix:
    """How alike rows are: the weighted shared neighbour graph in embedding space."""
    return _symmetric_weights(graph.neighbour_indices, graph.neighbour_distances.astype(np.float64))


# ---------------------------------------------------------------------------------------------
# Step 2: many small communities (cells of the map)


def _layout_cells(xy: np.ndarray, wanted: int, seed: int) -> np.ndarray:
    """Compact cells of the map: the leaves every topic is made of.

    k-means on (a sample of) the 2-D points, every row to its nearest centre. Measured against
    Leiden communities of the row graph as leaves, cells gave equal or better topics (AMI on
    stackoverflow_titles 0.713 vs 0.682, ag_news 0.600 vs 0.496, banking77 0.754 vs 0.761 with
    "accurate") in a third of the time, and they scale to millions of rows.
    """
    from sklearn.cluster import KMeans, kmeans_plusplus

    rng = np.random.default_rng(seed)
    sample = xy[rng.choice(len(xy), size=min(len(xy), max(20 * wanted, 50_000)), replace=False)]
    # k-means++ seeding costs sample x cells x trials distances (19 of 70 s at 300k rows, 2,200
    # cells); seeding on a quarter of the sample gives the same cells after Lloyd's iterations.
    seeds = kmeans_plusplus(sample[: max(4 * wanted, len(sample) // 4)], wanted, random_state=seed)[0]
    centres = KMeans(wanted, init=seeds, n_init=1, max_iter=30, random_state=seed).fit(sample).cluster_centers_
    return cKDTree(centres).query(xy, workers=-1)[1].astype(np.int64)


def _connected_pieces(weights: sparse.csr_matrix, cell: np.ndarray) -> np.ndarray:
    """Split every cell into its pieces connected within the cell, so each leaf is one region
    (a cell can straddle a gap between two islands of the map)."""
    from scipy.sparse.csgraph import connected_components

    inside = weights.tocoo()
    keep = cell[inside.row] == cell[inside.col]
    within = sparse.csr_matrix((inside.data[keep], (inside.row[keep], inside.col[keep])), shape=weights.shape)
    return connected_components(within, directed=False)[1].astype(np.int64)


def _community_weights(weights: sparse.csr_matrix, membership: np.ndarray, n_communities: int) -> np.ndarray:
    n_rows = weights.shape[0]
    member = sparse.csr_matrix(
        (np.ones(n_rows), (membership, np.arange(n_rows))), shape=(n_communities, n_rows)
    )
    return np.asarray((member @ weights @ member.T).todense(), dtype=np.float64)


def _fold_small(
    membership: np.ndarray, weights: sparse.csr_matrix, xy: np.ndarray, min_size: int, limit: int
) -> np.ndarray:
    """Fold communities below min_size (and the smallest beyond `limit`) into their best neighbour.

    The best neighbour is the community sharing the most edge weight, preferring ones that are not
    small themselves; a community without edges joins the one whose 2-D centroid is nearest.
    """
    from scipy.sparse.csgraph import connected_components

    membership = np.unique(membership, return_inverse=True)[1]
    for _ in range(20):
        n_comm = int(membership.max()) + 1
        sizes = np.bincount(membership, minlength=n_comm)
        n_small = max(n_comm - limit, int((sizes < min_size).sum()))
        if n_small == 0 or n_comm <= 1:
            break
        small = np.argsort(sizes, kind="stable")[:n_small]
        is_small = np.zeros(n_comm, dtype=bool)
        is_small[small] = True
        between = _community_weights(weights, membership, n_comm)
        np.fill_diagonal(between, 0.0)
        centroids = np.zeros((n_comm, 2))
        np.add.at(centroids, membership, xy)
        centroids /= np.maximum(sizes, 1)[:, None]
        target = np.arange(n_comm)
        for community in small:
            links = between[community] * np.where(is_small, 1e-3, 1.0)
            if links.max() > 0:
                target[community] = int(np.argmax(links))
            else:
                gap = np.linalg.norm(centroids - centroids[community], axis=1)
                gap[community] = np.inf
                target[community] = int(np.argmin(gap))
        pairs = sparse.csr_matrix((np.ones(n_comm), (np.arange(n_comm), target)), shape=(n_comm, n_comm))
        merged = connected_components(pairs, directed=False)[1]
        membership = merged[membership]
        if int(membership.max()) + 1 == n_comm:
            break
    return membership


# ---------------------------------------------------------------------------------------------
# Step 3: the merge tree


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


# ---------------------------------------------------------------------------------------------
# Step 4: names


_COMPASS = ("east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east")


def position_name(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> str:
    """Where a point lies on a map spanning low..high: "centre" or a compass direction from the
    map's middle. The bounds are passed in: computing them per topic cost minutes at 1M rows."""
    middle = (low + high) / 2.0
    extent = max(float((high - low).max()), 1e-12)
    offset = point - middle
    if np.hypot(*offset) < extent / 6.0:
        return "centre"
    angle = np.degrees(np.arctan2(offset[1], offset[0])) % 360.0
    return _COMPASS[int(((angle + 22.5) % 360.0) // 45.0)]


def _unique_names(names: list[str], alternatives: list[list[str]], sizes: list[int]) -> list[str]:
    """No two topics of a depth share a name: larger topics keep theirs, others take alternatives."""
    final = list(names)
    taken: set[str] = set()
    for index in sorted(range(len(names)), key=lambda i: (-sizes[i], i)):
        options = [names[index], *alternatives[index]]
        choice = next((option for option in options if option and option.lower() not in taken), None)
        if choice is None:
            number = 2
            while f"{names[index]} ({number})".lower() in taken:
                number += 1
            choice = f"{names[index]} ({number})"
        final[index] = choice
        taken.add(choice.lower())
    return final


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _representative(members: np.ndarray, xy: np.ndarray, unit_vectors: np.ndarray | None) -> int:
    """Most central member of a topic: nearest to the topic's mean direction (unit_vectors: every
    row's vector scaled to length 1), or without vectors nearest its 2-D centroid."""
    if unit_vectors is not None:
        member_units = unit_vectors[members]
        return int(members[np.argmax(member_units @ member_units.mean(axis=0))])
    centre = xy[members].mean(axis=0)
    return int(members[np.argmin(((xy[members] - centre) ** 2).sum(axis=1))])


def _name_topics(
    assignments: np.ndarray,
    parents: dict[int, int | None],
    xy: np.ndarray,
    texts: Sequence[str] | None,
    vectors: np.ndarray | None,
) -> list[Topic]:
    terms = kw.count_terms(texts) if texts is not None else None
    unit_vectors = None if vectors is None else _unit_rows(vectors)
    low, high = xy.min(axis=0), xy.max(axis=0)
    topics: list[Topic] = []
    for depth_index in range(assignments.shape[1]):
        column = assignments[:, depth_index]
        topic_ids = np.unique(column)
        sizes = np.bincount(column, minlength=int(topic_ids.max()) + 1)
        members_of = rows_by_label(column)
        keywords_of: dict[int, list[str]] = {int(t): [] for t in topic_ids}
        if terms is not None and terms.counts.shape[1]:
            keywords_of.update(kw.depth_keywords(terms, column, {int(t): parents[int(t)] for t in topic_ids}))
        names, alternatives = [], []
        for number, topic_id in enumerate(topic_ids, start=1):
            centre = xy[members_of[int(topic_id)]].mean(axis=0)
            positional = f"Topic {number} ({position_name(centre, low, high)})"
            words = keywords_of[int(topic_id)]
            if words:
                names.append(kw.short_description(words))
                alternatives.append(
                    [kw.short_description(words[skip:]) for skip in range(1, min(len(words), 4))]
                    + [kw.short_description(words[:1] + words[skip:]) for skip in range(2, min(len(words), 5))]
                )
            else:
                names.append(positional)
                alternatives.append([])
        names = _unique_names(names, alternatives, [int(sizes[t]) for t in topic_ids])
        for name, topic_id in zip(names, topic_ids, strict=True):
            members = members_of[int(topic_id)]
            centre = xy[members].mean(axis=0)
            row = _representative(members, xy, unit_vectors)
            words = keywords_of[int(topic_id)]
            topics.append(
                Topic(
                    topic_id=int(topic_id),
                    depth=depth_index + 1,
                    parent=parents[int(topic_id)],
                    short_description=name,
                    description=kw.long_description(words, texts[row] if texts is not None else None)
                    if texts is not None
                    else f"{name}: {len(members)} rows around ({centre[0]:.2f}, {centre[1]:.2f})",
                    keywords=words,
                    size=len(members),
                    centroid_x=float(centre[0]),
                    centroid_y=float(centre[1]),
                    representative_row=row,
                )
            )
    return topics


# ---------------------------------------------------------------------------------------------
# The public entry points


def _check_inputs(
    graph: NeighbourGraph, xy: np.ndarray, texts: Sequence[str] | None, vectors: np.ndarray | None = None
) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must be (n_rows, 2), got shape {xy.shape}")
    if graph.n_rows != len(xy):
        raise ValueError(f"graph has {graph.n_rows} rows but xy has {len(xy)}")
    if texts is not None and len(texts) != len(xy):
        raise ValueError(f"texts has {len(texts)} entries but there are {len(xy)} rows")
    if vectors is not None and len(vectors) != len(xy):
        raise ValueError(f"vectors has {len(vectors)} rows but there are {len(xy)} rows")
    return xy


def _renumber(levels: list[np.ndarray]) -> tuple[np.ndarray, dict[int, int | None]]:
    """Topic ids unique across depths (depth 1 first, larger topics first) and each topic's parent."""
    n_rows = len(levels[0])
    assignments = np.zeros((n_rows, len(levels)), dtype=np.int32)
    parents: dict[int, int | None] = {}
    next_id = 0
    for depth_index, level in enumerate(levels):
        labels, local = np.unique(level, return_inverse=True)
        sizes = np.bincount(local, minlength=len(labels))
        if depth_index == 0:
            order = np.lexsort((np.arange(len(labels)), -sizes))
        else:
            parent_of = np.zeros(len(labels), dtype=np.int64)
            parent_of[local] = assignments[:, depth_index - 1]
            order = np.lexsort((np.arange(len(labels)), -sizes, parent_of))
        new_id = np.empty(len(labels), dtype=np.int64)
        new_id[order] = np.arange(next_id, next_id + len(labels))
        assignments[:, depth_index] = new_id[local]
        for label_index in range(len(labels)):
            topic_id = int(new_id[label_index])
            if depth_index == 0:
                parents[topic_id] = None
            else:
                row = int(np.argmax(local == label_index))
                parents[topic_id] = int(assignments[row, depth_index - 1])
        next_id += len(labels)
    return assignments, parents


def build_topics(
    graph: NeighbourGraph,
    xy: np.ndarray,
    texts: Sequence[str] | None,
    options: TopicParams,
    seed: int = 0,
    vectors: np.ndarray | None = None,
) -> TopicModel:
    """The topic hierarchy of a map (module docstring). texts None: topics named by position."""
    xy = _check_inputs(graph, xy, texts, vectors)
    n_rows = len(xy)
    if n_rows == 0:
        return TopicModel(np.zeros((0, depth_rule(0)), dtype=np.int32), [])
    levels = cluster_rows(graph, xy, topic_counts(n_rows, depth_rule(n_rows)), options, seed)
    assignments, parents = _renumber(levels)
    topics = _name_topics(assignments, parents, xy, texts, None if vectors is None else np.asarray(vectors))
    return TopicModel(assignments, topics)


def cluster_rows(
    graph: NeighbourGraph, xy: np.ndarray, counts: list[int], options: TopicParams, seed: int = 0
) -> list[np.ndarray]:
    """A nested topic label per row at every depth (steps 1-4 of the module docstring), about
    counts[d] topics at depth d+1."""
    n_rows = len(xy)
    if n_rows < 3:
        return [np.zeros(n_rows, dtype=np.int64) for _ in counts]
    similar = _embedding_graph(graph)
    # "fast" topics are regions of the map: leaves, merges and moves follow which rows touch on it.
    map_graph = _map_graph(xy) if options.cluster_method == "fast" else None
    touching = similar if map_graph is None else map_graph
    wanted = min(n_rows, max(LEAVES_PER_TOPIC * counts[-1], 2), _MAX_COMMUNITIES)
    membership = _connected_pieces(touching, _layout_cells(xy, wanted, seed))
    min_size = max(2, min(10, n_rows // (counts[-1] * 4)))
    membership = _fold_small(membership, touching, xy, min_size, limit=_MAX_COMMUNITIES)
    n_leaves = int(membership.max()) + 1
    leaf_sizes = np.bincount(membership, minlength=n_leaves)
    leaf_centroids = np.zeros((n_leaves, 2))
    np.add.at(leaf_centroids, membership, xy)
    leaf_centroids /= np.maximum(leaf_sizes, 1)[:, None]
    leaves = _Leaves(
        _community_weights(similar, membership, n_leaves), leaf_centroids, leaf_sizes,
        None if map_graph is None else _community_weights(map_graph, membership, n_leaves),
    )
    leaf_levels = (_top_down if options.enforce_topic_hierarchy else _bottom_up)(leaves, counts)
    levels = [leaf_level[membership] for leaf_level in leaf_levels]
    return _refine(similar, levels, within=map_graph)


@dataclass(frozen=True)
class _Leaves:
    """The small communities every depth is made of: their graph, 2-D centroids and row counts."""

    between: np.ndarray  # (n, n) summed edge weights; the diagonal holds twice the internal weight
    centroids: np.ndarray
    sizes: np.ndarray
    adjacent: np.ndarray | None = None  # (n, n) > 0 where two leaves touch on the map; None: `between` > 0

    def subset(self, members: np.ndarray) -> "_Leaves":
        block = np.ix_(members, members)
        adjacent = None if self.adjacent is None else self.adjacent[block]
        return _Leaves(self.between[block], self.centroids[members], self.sizes[members], adjacent)

    def grouped(self, label: np.ndarray) -> "_Leaves":
        """The communities of `label` (0..k-1 per leaf) as leaves of their own."""
        k = int(label.max()) + 1
        member = sparse.csr_matrix((np.ones(len(label)), (label, np.arange(len(label)))), shape=(k, len(label)))

        def summed(matrix: np.ndarray) -> np.ndarray:
            return np.asarray((member @ sparse.csr_matrix(matrix) @ member.T).todense())

        sizes = np.bincount(label, weights=self.sizes, minlength=k)
        centroids = (member @ (self.centroids * self.sizes[:, None])) / np.maximum(sizes, 1e-12)[:, None]
        adjacent = None if self.adjacent is None else summed(self.adjacent)
        return _Leaves(summed(self.between), centroids, sizes, adjacent)


def _group(leaves: _Leaves, target: int, resolution: float) -> np.ndarray:
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


def _refine(
    weights: sparse.csr_matrix, levels: list[np.ndarray], sweeps: int = 4, within: sparse.csr_matrix | None = None
) -> list[np.ndarray]:
    """Move rows to the topic their neighbours are most tied to, depth 1 first, keeping the nesting.

    Communities are built on groups of rows, so a row at a border can end up on the wrong side; a
    few sweeps of "join the topic holding most of your edge weight" (strictly more than your own)
    fix that. At depth d > 1 a row may only join children of its (possibly new) parent; a row whose
    parent changed and that has no tie to any child there joins the parent's largest child. With
    `within` (the map graph of "fast" topics) a row may only join a topic it touches there, so a
    topic grows along its border and stays one region.
    """
    refined: list[np.ndarray] = []
    n_rows = weights.shape[0]
    rows = np.arange(n_rows)
    for depth_index, level in enumerate(levels):
        label = np.unique(level, return_inverse=True)[1]
        n_topics = int(label.max()) + 1
        topic_parent = np.zeros(n_topics, dtype=np.int64)
        if depth_index:
            topic_parent[label] = levels[depth_index - 1]  # original nesting: one parent per topic
            parent_row = refined[-1]
            sizes = np.bincount(label, minlength=n_topics)
            largest_child = {}
            for topic in np.argsort(sizes)[::-1]:
                largest_child.setdefault(int(topic_parent[topic]), int(topic))
            orphan = topic_parent[label] != parent_row
            label[orphan] = [largest_child.get(int(p), -1) for p in parent_row[orphan]]
            label = np.where(label < 0, 0, label)
        for _ in range(sweeps):
            one_hot = sparse.csr_matrix((np.ones(n_rows), (rows, label)), shape=(n_rows, n_topics))
            tie = weights @ one_hot
            if within is not None:
                tie = tie.multiply((within @ one_hot) > 0)
            tie = sparse.coo_matrix(tie)
            allowed = tie.data > 0
            if depth_index:
                allowed &= topic_parent[tie.col] == parent_row[tie.row]
            row, topic, weight = tie.row[allowed], tie.col[allowed], tie.data[allowed]
            own = np.zeros(n_rows)
            mine = topic == label[row]
            own[row[mine]] = weight[mine]
            order = np.lexsort((topic, -weight, row))
            first = np.ones(len(order), dtype=bool)
            first[1:] = row[order][1:] != row[order][:-1]
            best_row, best_topic, best_weight = row[order][first], topic[order][first], weight[order][first]
            move = best_weight > own[best_row] * (1.0 + 1e-9)
            if not move.any():
                break
            label = label.copy()
            label[best_row[move]] = best_topic[move]
        refined.append(label)
    return refined


def _resolution(depth_index: int, n_depths: int) -> float:
    if depth_index < n_depths - 1:
        return GROUPING_RESOLUTION
    return FINE_TOPICS_RESOLUTION if n_depths == 3 else THEMES_RESOLUTION


def _bottom_up(leaves: _Leaves, counts: list[int]) -> list[np.ndarray]:
    """Deepest depth first from the leaves, each broader depth grouping the topics below it."""
    n_depths = len(counts)
    levels = [_group(leaves, counts[-1], _resolution(n_depths - 1, n_depths))]
    for depth_index in range(n_depths - 2, -1, -1):
        finer = levels[0]
        coarser = _group(leaves.grouped(finer), counts[depth_index], _resolution(depth_index, n_depths))
        levels.insert(0, coarser[finer])
    return levels


def _top_down(leaves: _Leaves, counts: list[int]) -> list[np.ndarray]:
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


def assign_new_rows(
    previous: TopicModel,
    previous_row: np.ndarray,
    graph: NeighbourGraph,
    xy: np.ndarray,
    texts: Sequence[str] | None,
    vectors: np.ndarray | None = None,
) -> TopicModel:
    """The previous topics over the current rows, without rebuilding them.

    previous_row[i] is the row of current row i in `previous`, or -1 for a new row. Old rows keep
    their topics; a new row joins the deepest topic most common among its already placed neighbours
    (rows placed this way count for the rows after them), or, with no placed neighbour at all, the
    deepest topic whose centroid is nearest on the map; its broader topics follow from the hierarchy.
    Deleted rows drop out, topics left empty disappear; sizes, centroids and representatives are
    updated (a topic whose representative row was deleted takes the member nearest its mean
    direction in `vectors`, as build_topics picks it, or without vectors the one nearest its 2-D
    centroid); labels are kept.
    """
    xy = _check_inputs(graph, xy, texts, vectors)
    previous_row = np.asarray(previous_row, dtype=np.int64)
    if len(previous_row) != len(xy):
        raise ValueError("previous_row needs one entry per current row")
    n_depths = previous.n_depths
    by_id = previous._by_id()
    deepest = np.full(len(xy), -1, dtype=np.int64)
    old = previous_row >= 0
    deepest[old] = previous.assignments[previous_row[old], n_depths - 1]
    neighbours = graph.neighbour_indices
    pending = np.nonzero(deepest < 0)[0]
    while len(pending):
        placed_any = False
        still = []
        for row in pending:
            votes = deepest[neighbours[row][neighbours[row] >= 0]]
            votes = votes[votes >= 0]
            if len(votes):
                values, tally = np.unique(votes, return_counts=True)
                # Ties go to the topic of the nearest placed neighbour.
                top = values[tally == tally.max()]
                deepest[row] = next(v for v in votes if v in top)
                placed_any = True
            else:
                still.append(row)
        pending = np.asarray(still, dtype=np.int64)
        if not placed_any:
            break
    if len(pending):
        deep_topics = [t for t in previous.topics if t.depth == n_depths]
        centres = np.array([[t.centroid_x, t.centroid_y] for t in deep_topics])
        nearest = cKDTree(centres).query(xy[pending])[1]
        deepest[pending] = [deep_topics[i].topic_id for i in np.atleast_1d(nearest)]
    assignments = np.zeros((len(xy), n_depths), dtype=np.int32)
    assignments[:, n_depths - 1] = deepest
    for depth_index in range(n_depths - 2, -1, -1):
        child = assignments[:, depth_index + 1]
        parent_of = {topic_id: by_id[topic_id].parent for topic_id in np.unique(child)}
        assignments[:, depth_index] = [parent_of[c] for c in child] if len(child) else []
    topics: list[Topic] = []
    unit_vectors = None  # scaled only when a representative has to be replaced
    new_row_of_old = np.full(len(previous.assignments), -1, dtype=np.int64)
    new_row_of_old[previous_row[old]] = np.nonzero(old)[0]
    for topic in previous.topics:
        column = assignments[:, topic.depth - 1]
        members = np.nonzero(column == topic.topic_id)[0]
        if not len(members):
            continue
        centre = xy[members].mean(axis=0)
        representative = int(new_row_of_old[topic.representative_row])
        if representative < 0 or column[representative] != topic.topic_id:
            if vectors is not None and unit_vectors is None:
                unit_vectors = _unit_rows(vectors)
            representative = _representative(members, xy, unit_vectors)
        topics.append(
            replace(
                topic,
                size=int(len(members)),
                centroid_x=float(centre[0]),
                centroid_y=float(centre[1]),
                representative_row=representative,
            )
        )
    return TopicModel(assignments, topics)
