"""The map read model: everything a map shows, as arrays keyed by row, built once per map version.

A row is one live datum on the map (deleted rows left out), in the order of the neighbour graph
(`_row_id` order at build time). Each row has its `_row_id`, its user id, its place (x, y), its topic
at every depth, its duplicate class and cluster; the dataset's other fields and the embeddings are
loaded on first use. The Atlas accessors (`map.embeddings.projected`, `map.topics.df`, ...) and the
web map both read this one model, so neither scans the store or the outputs on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from atlas_assets.compute import search as search_compute

DUPLICATE_CLASSES = ("singleton", "retention candidate", "deletion candidate")
NO_TOPIC = -1


@dataclass(frozen=True)
class Topic:
    """One topic at one depth. `parent` and the rows' topic arrays index `MapModel.topics`."""

    topic_id: Any  # as the topics output names it (an int for pipeline maps)
    depth: int
    label: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    parent: int | None = None
    size_built: int = 0  # rows when the topic model was built (the live count is `MapModel.topic_size`)
    centroid: tuple[float, float] | None = None


@dataclass
class MapModel:
    """One map, read once. Arrays are aligned by row; `topic_rows[d - 1][row]` indexes `topics`."""

    key: str  # "<org>/<slug>/<index id>"
    title: str
    id_field: str
    row_ids: np.ndarray  # int64 `_row_id` of each row
    ids: np.ndarray  # object: the user id of each row (as stored: str or int)
    x: np.ndarray | None  # float32, None when the map has no layout
    y: np.ndarray | None
    topics: list[Topic] = field(default_factory=list)
    topic_rows: list[np.ndarray] = field(default_factory=list)  # int32 per depth, NO_TOPIC when none
    duplicate_class: np.ndarray | None = None  # uint8 index into DUPLICATE_CLASSES, None: not built
    cluster_id: np.ndarray | None = None  # int64, -1 for singletons
    text_field: str | None = None
    modality: str = "text"
    embedding_model: str | None = None
    version: tuple = ()
    blob_refs: np.ndarray | None = None  # object: each row's image blob reference (image maps)
    load_fields: Callable[[], pd.DataFrame] | None = None  # the user fields of every row, in row order
    load_vectors: Callable[[], np.ndarray] | None = None  # the embedding of every row, in row order

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._fields: pd.DataFrame | None = None
        self._vectors: np.ndarray | None = None
        self._row_of_id: dict[str, int] | None = None

    def __len__(self) -> int:
        return int(self.row_ids.shape[0])

    @property
    def depths(self) -> int:
        return len(self.topic_rows)

    # ------------------------------------------------------------------------------ loaded on use

    def fields(self) -> pd.DataFrame | None:
        """The dataset's user fields (the id field included) for every row, loaded once."""
        if self.load_fields is None:
            return None
        with self._lock:
            if self._fields is None:
                self._fields = self.load_fields()
            return self._fields

    def vectors(self) -> np.ndarray:
        """The embedding of every row (float32), loaded once."""
        if self.load_vectors is None:
            raise LookupError("this map has no embeddings to search")
        with self._lock:
            if self._vectors is None:
                self._vectors = self.load_vectors()
            return self._vectors

    def rows_of(self, ids: Sequence[Any]) -> np.ndarray:
        """The row of each id (compared as text), -1 where an id is not on the map."""
        with self._lock:
            if self._row_of_id is None:
                self._row_of_id = {str(value): row for row, value in enumerate(self.ids.tolist())}
            lookup = self._row_of_id
        return np.array([lookup.get(str(value), -1) for value in ids], dtype=np.int64)

    # ------------------------------------------------------------------------------ topics

    def topics_at(self, depth: int) -> list[int]:
        """Indices (into `topics`) of the topics of one depth."""
        return [position for position, topic in enumerate(self.topics) if topic.depth == depth]

    def topic_size(self) -> np.ndarray:
        """Live rows per topic (aligned with `topics`)."""
        sizes = np.zeros(len(self.topics), dtype=np.int64)
        for rows in self.topic_rows:
            assigned = rows[rows != NO_TOPIC]
            sizes += np.bincount(assigned, minlength=len(self.topics))
        return sizes

    def topic_labels(self, depth: int) -> np.ndarray:
        """The label of each row's topic at `depth` (None where it has none)."""
        labels = np.array([topic.label for topic in self.topics] + [None], dtype=object)
        rows = self.topic_rows[depth - 1]
        return labels[np.where(rows == NO_TOPIC, len(self.topics), rows)]

    # ------------------------------------------------------------------------------ search

    def nearest(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows nearest each query vector (cosine), nearest first, with their distances."""
        vectors = self.vectors()
        return search_compute.search_vectors(vectors, query_vectors, k=k)

    def nearest_to_rows(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows nearest each given row (the row itself left out)."""
        vectors = self.vectors()
        return search_compute.search_ids(vectors, rows, k=k)
