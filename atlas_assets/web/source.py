"""What the map server needs from a map, served from the map read model (`atlas_assets.maps`).

The server never touches the store, the outputs or the pipeline: it asks a `MapSource` for point
columns, topic labels, one datum's details, search results, tags and image bytes. Rows are the
positions of points in `points()`; the browser only ever speaks rows, the source translates them to
datum ids. `ModelMapSource` implements the protocol over a `MapModel`; `FrameMapSource` makes one
from ready tables (tests, benchmarks, maps built elsewhere). Pipeline-built maps are found by
`atlas_assets.web.discovery`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from atlas_assets.maps.frames import MapTables, model_from_tables
from atlas_assets.maps.model import DUPLICATE_CLASSES, MapModel
from atlas_assets.web.map_types import (
    MAX_MEANING_K,
    MAX_TEXT_MATCHES,
    NO_TOPIC,
    FieldColumn,
    FieldInfo,
    ImageLoader,
    MapPoints,
    MapSource,
    RowSearch,
    SearchResult,
    TagsLike,
    TopicInfo,
    VectorSearch,
)
from atlas_assets.web.map_view import MapView

__all__ = [
    "DUPLICATE_CLASSES",
    "FieldColumn",
    "FieldInfo",
    "FrameMapSource",
    "MapPoints",
    "MapSource",
    "MapTables",
    "ModelMapSource",
    "NO_TOPIC",
    "SearchResult",
    "TopicInfo",
]


class ModelMapSource:
    """A `MapSource` over one `MapModel`; the model is obtained (and replaced when stale) by `load`."""

    def __init__(
        self,
        key: str,
        title: str,
        load: Callable[[], MapModel],
        *,
        is_public: bool = True,
        token: str | Callable[[], str | None] | None = None,
        modality: str = "text",
        tags: TagsLike | None = None,
        row_search: RowSearch | None = None,
        image_loader: ImageLoader | None = None,
    ) -> None:
        self.key = key
        self.title = title
        self.modality = modality
        self._load = load
        self._is_public = is_public
        self._token = token
        self._tags = tags
        self._row_search = row_search
        self._image_loader = image_loader
        self._lock = threading.RLock()
        self._view: MapView | None = None

    def _current(self) -> MapView:
        """The view of the model, built once (a source is replaced, not updated, when its map changes)."""
        with self._lock:
            if self._view is None:
                self._view = MapView(self._load())
            return self._view

    @property
    def model(self) -> MapModel:
        return self._current().model

    def version(self) -> tuple[Any, ...]:
        return self.model.version

    @property
    def is_public(self) -> bool:
        return bool(self._is_public)

    def access_token(self) -> str | None:
        """The token a request for a private map must carry (None: public map)."""
        if self.is_public:
            return None
        token = self._token() if callable(self._token) else self._token
        return token or None

    def points(self) -> MapPoints:
        return self._current().points

    def topics(self) -> list[TopicInfo]:
        return self._current().topics

    def fields(self) -> list[FieldInfo]:
        return self._current().fields()

    def field_column(self, name: str) -> FieldColumn:
        """The column `name` for every row; KeyError for a field the map does not have."""
        return self._current().field_column(name)

    def table(self) -> Any:
        """The dataset's fields of every row (pandas, the id field left out), None without fields."""
        return self._current().data

    def datum(self, row: int) -> dict[str, Any]:
        details = self._current().datum(row)
        details["has_image"] = self.modality == "image" and self._image_loader is not None
        return details

    def rows_of_ids(self, ids: Sequence[Any]) -> np.ndarray:
        """Rows of the given datum ids (ids not on the map are dropped)."""
        rows = self.model.rows_of(ids)
        return rows[rows >= 0]

    def search(self, query: str | np.ndarray, mode: str = "meaning", k: int = 100) -> SearchResult:
        """Rows matching `query`: `text` = substring of the text fields, `meaning` = nearest vectors."""
        view = self._current()
        if mode == "text":
            return view.search_text(str(query), limit=max(1, min(int(k), MAX_TEXT_MATCHES)))
        if mode != "meaning":
            raise ValueError(f"unknown search mode {mode!r}; use 'text' or 'meaning'")
        if self._row_search is None:
            raise LookupError("this map has no vector search")
        k = max(1, min(int(k), MAX_MEANING_K, len(view.model)))
        queries: Any = [query] if isinstance(query, str) else np.atleast_2d(query)
        rows, distances = self._row_search(queries, k)
        rows, scores = np.asarray(rows[0], dtype=np.int64), np.asarray(distances[0], dtype=np.float32)
        keep = rows >= 0
        return SearchResult(rows=rows[keep], scores=scores[keep], mode="meaning")

    # tags --------------------------------------------------------------------------------------
    def _require_tags(self) -> TagsLike:
        if self._tags is None:
            raise LookupError("this map has no tag store")
        return self._tags

    def tag_counts(self) -> dict[str, int]:
        if self._tags is None:
            return {}
        counts = getattr(self._tags, "counts", None)
        if callable(counts):
            return dict(counts())
        return {name: len(self._tags.get_datums_in_tag(name)) for name in self._tags.get_tags()}

    def tag_rows(self, tag: str) -> np.ndarray:
        return np.sort(self.rows_of_ids(self._require_tags().get_datums_in_tag(tag)))

    def _ids_of_rows(self, rows: np.ndarray) -> list[str]:
        ids = self.model.ids
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(ids)):
            raise IndexError("row out of range")
        return [str(value) for value in ids[np.unique(rows)]] if rows.size else []

    def tag_rows_add(self, rows: np.ndarray, tag: str) -> int:
        ids = self._ids_of_rows(rows)
        result = self._require_tags().add(ids, tag)
        return int(result) if isinstance(result, (int, np.integer)) else len(ids)

    def tag_rows_remove(self, rows: np.ndarray, tag: str) -> int:
        ids = self._ids_of_rows(rows)
        result = self._require_tags().remove(ids, tag)
        return int(result) if isinstance(result, (int, np.integer)) else len(ids)

    def image(self, row: int) -> tuple[bytes, str] | None:
        view = self._current()
        if self._image_loader is None or not 0 <= row < len(view.model):
            return None
        data = view.data
        record = {} if data is None else data.iloc[row].to_dict()
        return self._image_loader(str(view.model.ids[row]), record)


class FrameMapSource(ModelMapSource):
    """A map given as ready tables (tests, benchmarks, maps computed outside the pipeline).

    `vector_search(queries, k)` answers as `map.embeddings.vector_search` does (datum ids per query).
    """

    def __init__(
        self, key: str, title: str, tables: MapTables, *, vector_search: VectorSearch | None = None, **options: Any
    ) -> None:
        self.tables = tables
        model = model_from_tables(key, title, tables, modality=options.get("modality", "text"))
        row_search = _rows_from_ids(model, vector_search) if vector_search is not None else None
        super().__init__(key, title, lambda: model, row_search=row_search, **options)


def _rows_from_ids(model: MapModel, vector_search: VectorSearch) -> RowSearch:
    def search(queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        found_ids, distances = vector_search(queries, k)
        rows = [model.rows_of(list(ids)) for ids in found_ids]
        return np.asarray(rows, dtype=np.int64), np.asarray(distances, dtype=np.float32)

    return search
