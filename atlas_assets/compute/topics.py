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
5. Names (compute/topic_names.py, one pass per depth): keywords by class-based TF-IDF against the
   topic's siblings (compute/keywords.py); when the model that embedded the rows is given
   (embed_phrases), the name is made of the candidate phrases closest in meaning to the topic and
   not to its context, picked for diversity, never its parent's name nor a sibling's lead words
   (compute/topic_phrases.py); otherwise of the first keywords. Without texts, "Topic 3
   (north-west)" from the topic's number and its position on the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from atlas_assets.compute.arrays import unit_rows
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.compute.topic_graphs import (
    community_weights,
    connected_pieces,
    embedding_graph,
    fold_small,
    layout_cells,
    map_graph,
)
from atlas_assets.compute.topic_merges import Leaves, bottom_up, top_down
from atlas_assets.compute.topic_model import (
    Topic,
    TopicModel,
    TopicParams,
    depth_rule,
    topic_counts,
)
from atlas_assets.compute.topic_names import central_member, name_topics
from atlas_assets.compute.topic_phrases import PhraseEmbedder

__all__ = [
    "Topic",
    "TopicModel",
    "TopicParams",
    "assign_new_rows",
    "build_topics",
    "cluster_rows",
    "depth_rule",
    "topic_counts",
]

_MAX_COMMUNITIES = 3_000
LEAVES_PER_TOPIC = 2


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
    embed_phrases: PhraseEmbedder | None = None,
) -> TopicModel:
    """The topic hierarchy of a map (module docstring). texts None: topics named by position;
    embed_phrases (the model that made `vectors`): names from phrases re-ranked by meaning."""
    xy = _check_inputs(graph, xy, texts, vectors)
    n_rows = len(xy)
    if n_rows == 0:
        return TopicModel(np.zeros((0, depth_rule(0)), dtype=np.int32), [])
    levels = cluster_rows(graph, xy, topic_counts(n_rows, depth_rule(n_rows)), options, seed)
    assignments, parents = _renumber(levels)
    vectors = None if vectors is None else np.asarray(vectors)
    topics = name_topics(assignments, parents, xy, texts, vectors, embed_phrases)
    return TopicModel(assignments, topics)


def cluster_rows(
    graph: NeighbourGraph, xy: np.ndarray, counts: list[int], options: TopicParams, seed: int = 0
) -> list[np.ndarray]:
    """A nested topic label per row at every depth (steps 1-4 of the module docstring), about
    counts[d] topics at depth d+1."""
    n_rows = len(xy)
    if n_rows < 3:
        return [np.zeros(n_rows, dtype=np.int64) for _ in counts]
    similar = embedding_graph(graph)
    # "fast" topics are regions of the map: leaves, merges and moves follow which rows touch on it.
    map_weights = map_graph(xy) if options.cluster_method == "fast" else None
    touching = similar if map_weights is None else map_weights
    wanted = min(n_rows, max(LEAVES_PER_TOPIC * counts[-1], 2), _MAX_COMMUNITIES)
    membership = connected_pieces(touching, layout_cells(xy, wanted, seed))
    min_size = max(2, min(10, n_rows // (counts[-1] * 4)))
    membership = fold_small(membership, touching, xy, min_size, limit=_MAX_COMMUNITIES)
    n_leaves = int(membership.max()) + 1
    leaf_sizes = np.bincount(membership, minlength=n_leaves)
    leaf_centroids = np.zeros((n_leaves, 2))
    np.add.at(leaf_centroids, membership, xy)
    leaf_centroids /= np.maximum(leaf_sizes, 1)[:, None]
    leaves = Leaves(
        community_weights(similar, membership, n_leaves), leaf_centroids, leaf_sizes,
        None if map_weights is None else community_weights(map_weights, membership, n_leaves),
    )
    leaf_levels = (top_down if options.enforce_topic_hierarchy else bottom_up)(leaves, counts)
    levels = [leaf_level[membership] for leaf_level in leaf_levels]
    return _refine(similar, levels, within=map_weights)


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
                unit_vectors = unit_rows(vectors)
            representative = central_member(members, xy, unit_vectors)
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
