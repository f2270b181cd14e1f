"""The neighbour graph shared by layout, topics, duplicates and search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Metric = Literal["cosine", "euclidean"]


@dataclass(frozen=True)
class NeighbourGraph:
    """k nearest neighbours of every row, nearest first, the row itself excluded.

    neighbour_indices: (n, k) int64 row numbers into the same row order as the vectors.
    neighbour_distances: (n, k) float32; cosine distance (1 - cosine similarity) for metric
    "cosine", euclidean distance otherwise. Rows with fewer than k other rows pad with -1 / inf.
    """

    neighbour_indices: np.ndarray
    neighbour_distances: np.ndarray
    metric: Metric

    def __post_init__(self) -> None:
        if self.neighbour_indices.shape != self.neighbour_distances.shape:
            raise ValueError("neighbour_indices and neighbour_distances must have the same shape")
        if self.neighbour_indices.ndim != 2:
            raise ValueError("a neighbour graph is a 2-D (rows, k) array")

    @property
    def n_rows(self) -> int:
        return int(self.neighbour_indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.neighbour_indices.shape[1])
