"""Steps 1-2 of topic building (compute/topics.py): the weighted graphs to cluster, and the leaves,
small compact regions of the map every topic is made of."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from atlas_assets.compute.graph import NeighbourGraph

LAYOUT_NEIGHBOURS = 15


def layout_neighbours(xy: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n_rows = len(xy)
    k = min(k, n_rows - 1)
    distances, indices = cKDTree(xy).query(xy, k=k + 1, workers=-1)
    return indices[:, 1:].astype(np.int64), distances[:, 1:].astype(np.float64)


def symmetric_weights(indices: np.ndarray, distances: np.ndarray) -> sparse.csr_matrix:
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


def map_graph(xy: np.ndarray) -> sparse.csr_matrix:
    """Which rows touch on the 2-D map: the weighted graph of their nearest layout neighbours."""
    return symmetric_weights(*layout_neighbours(xy, LAYOUT_NEIGHBOURS))


def embedding_graph(graph: NeighbourGraph) -> sparse.csr_matrix:
    """How alike rows are: the weighted shared neighbour graph in embedding space."""
    return symmetric_weights(graph.neighbour_indices, graph.neighbour_distances.astype(np.float64))


# ---------------------------------------------------------------------------------------------
# Step 2: many small communities (cells of the map)


def layout_cells(xy: np.ndarray, wanted: int, seed: int) -> np.ndarray:
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


def connected_pieces(weights: sparse.csr_matrix, cell: np.ndarray) -> np.ndarray:
    """Split every cell into its pieces connected within the cell, so each leaf is one region
    (a cell can straddle a gap between two islands of the map)."""
    from scipy.sparse.csgraph import connected_components

    inside = weights.tocoo()
    keep = cell[inside.row] == cell[inside.col]
    within = sparse.csr_matrix((inside.data[keep], (inside.row[keep], inside.col[keep])), shape=weights.shape)
    return connected_components(within, directed=False)[1].astype(np.int64)


def community_weights(weights: sparse.csr_matrix, membership: np.ndarray, n_communities: int) -> np.ndarray:
    n_rows = weights.shape[0]
    member = sparse.csr_matrix(
        (np.ones(n_rows), (membership, np.arange(n_rows))), shape=(n_communities, n_rows)
    )
    return np.asarray((member @ weights @ member.T).todense(), dtype=np.float64)


def fold_small(
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
        between = community_weights(weights, membership, n_comm)
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
