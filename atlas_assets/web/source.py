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
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from atlas_assets.maps.frames import MapTables, model_from_tables
from atlas_assets.maps.model import DUPLICATE_CLASSES, NO_TOPIC as MODEL_NO_TOPIC, MapModel

NO_TOPIC = np.uint16(65535)
MAX_CATEGORIES = 20
MISSING_CATEGORY = "(missing)"
OTHER_CATEGORY = "(other)"
EXCERPT_CHARS = 600
MAX_MEANING_K = 1000  # AtlasProjection.embeddings.vector_search caps k there
MAX_TEXT_MATCHES = 200_000

FieldKind = Literal["categorical", "numeric", "text"]

__all__ = ["DUPLICATE_CLASSES", "FrameMapSource", "MapSource", "MapTables", "ModelMapSource", "NO_TOPIC"]


@dataclass(frozen=True)
class MapPoints:
    """Every point of a map as columns: what the browser draws.

    topic_codes[d - 1][row] is the code of the row's topic at depth d (an index into the topics of
    that depth, see `TopicInfo.code`), `NO_TOPIC` when it has none. duplicate_class holds the index
    into `DUPLICATE_CLASSES`.
    """

    x: np.ndarray  # float32
    y: np.ndarray  # float32
    topic_codes: list[np.ndarray]  # uint16 per depth
    duplicate_class: np.ndarray  # uint8

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class TopicInfo:
    """One topic at one depth, placed on the map where its points are."""

    depth: int
    code: int
    topic_id: str
    label: str
    description: str
    keywords: list[str]
    size: int
    x: float
    y: float
    parent_code: int | None


@dataclass(frozen=True)
class FieldInfo:
    """A column the viewer can colour by (categorical, numeric) or only show (text)."""

    name: str
    kind: FieldKind


@dataclass(frozen=True)
class FieldColumn:
    """Values of one field for every row, in the form the browser colours by.

    categorical: `codes` (uint16) index `categories`; numeric: `values` (float32, NaN = missing).
    """

    name: str
    kind: FieldKind
    codes: np.ndarray | None = None
    categories: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    values: np.ndarray | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class SearchResult:
    """Rows matching a search, best first, with a score per row (distance or 0 for text matches)."""

    rows: np.ndarray  # int64
    scores: np.ndarray  # float32
    mode: str


@runtime_checkable
class MapSource(Protocol):
    """Everything the map server reads from (and writes to) one map."""

    key: str  # "<org>/<slug>/<index>", the map's address on the server
    title: str
    modality: str

    @property
    def is_public(self) -> bool: ...

    def access_token(self) -> str | None: ...

    def points(self) -> MapPoints: ...

    def topics(self) -> list[TopicInfo]: ...

    def fields(self) -> list[FieldInfo]: ...

    def field_column(self, name: str) -> FieldColumn: ...

    def datum(self, row: int) -> dict[str, Any]: ...

    def search(self, query: str | np.ndarray, mode: str = "meaning", k: int = 100) -> SearchResult: ...

    def tag_counts(self) -> dict[str, int]: ...

    def tag_rows(self, tag: str) -> np.ndarray: ...

    def tag_rows_add(self, rows: np.ndarray, tag: str) -> int: ...

    def tag_rows_remove(self, rows: np.ndarray, tag: str) -> int: ...

    def image(self, row: int) -> tuple[bytes, str] | None: ...


class TagsLike(Protocol):
    """A `resources.tags.TagStore` (or anything with its methods)."""

    def add(self, ids: Any, tag: str) -> Any: ...

    def remove(self, ids: Any, tag: str) -> Any: ...

    def get_tags(self) -> list[str]: ...

    def get_datums_in_tag(self, tag: str) -> list[Any]: ...


# (queries, k) -> (row numbers per query, distances per query), nearest first
RowSearch = Callable[[Any, int], tuple[np.ndarray, np.ndarray]]
# (queries, k) -> (datum ids per query, distances per query): the shape of map.embeddings.vector_search
VectorSearch = Callable[[Any, int], tuple[Sequence[Sequence[Any]], Sequence[Sequence[float]]]]
ImageLoader = Callable[[Any, dict[str, Any]], "tuple[bytes, str] | None"]


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
        self._view: _MapView | None = None

    def _current(self) -> _MapView:
        """The view of the model, built once (a source is replaced, not updated, when its map changes)."""
        with self._lock:
            if self._view is None:
                self._view = _MapView(self._load())
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


class _MapView:
    """What the browser is sent, derived from a `MapModel` once: topic codes by size, field columns."""

    def __init__(self, model: MapModel) -> None:
        self.model = model
        self._lock = threading.Lock()
        n = len(model)
        self.data = _without(model.fields(), model.id_field)
        topic_codes, self.topics = _topic_infos(model)
        duplicate_class = model.duplicate_class if model.duplicate_class is not None else np.zeros(n, np.uint8)
        x = model.x if model.x is not None else np.full(n, np.nan, np.float32)
        y = model.y if model.y is not None else np.full(n, np.nan, np.float32)
        self.points = MapPoints(x=x, y=y, topic_codes=topic_codes, duplicate_class=duplicate_class)
        self._fields: list[FieldInfo] | None = None
        self._columns: dict[str, FieldColumn] = {}

    def fields(self) -> list[FieldInfo]:
        with self._lock:
            if self._fields is None:
                self._fields = _classify_fields(len(self.points.topic_codes), self.data)
            return self._fields

    def field_column(self, name: str) -> FieldColumn:
        known = {info.name: info for info in self.fields()}
        if name not in known:
            raise KeyError(name)
        with self._lock:
            if name not in self._columns:
                self._columns[name] = self._make_column(known[name])
            return self._columns[name]

    def _make_column(self, info: FieldInfo) -> FieldColumn:
        points = self.points
        if info.name.startswith("topic_depth_"):
            depth = int(info.name.rsplit("_", 1)[1])
            at_depth = [topic for topic in self.topics if topic.depth == depth]
            return FieldColumn(
                info.name, "categorical", codes=points.topic_codes[depth - 1],
                categories=[topic.label for topic in at_depth], counts=[topic.size for topic in at_depth],
            )
        if info.name == "duplicate_class":
            counts = np.bincount(points.duplicate_class, minlength=3)
            return FieldColumn(
                info.name, "categorical", codes=points.duplicate_class.astype(np.uint16),
                categories=list(DUPLICATE_CLASSES), counts=[int(c) for c in counts],
            )
        assert self.data is not None
        return _field_column(info, self.data[info.name])

    def datum(self, row: int) -> dict[str, Any]:
        """Details of one row for the hover card: id, fields (long text cut), topics, duplicates."""
        model = self.model
        if not 0 <= row < len(model):
            raise IndexError(row)
        fields = {} if self.data is None else {str(k): _json_value(v) for k, v in self.data.iloc[row].items()}
        labels = [model.topics[rows[row]].label for rows in model.topic_rows if rows[row] != MODEL_NO_TOPIC]
        cluster = None if model.cluster_id is None else _json_value(model.cluster_id[row])
        return {
            "row": int(row),
            "id": str(model.ids[row]),
            "text_field": model.text_field,
            "fields": fields,
            "topics": labels,
            "duplicate_class": DUPLICATE_CLASSES[int(self.points.duplicate_class[row])],
            "duplicate_cluster": cluster,
        }

    def search_text(self, text: str, limit: int) -> SearchResult:
        needle = text.strip()
        data = self.data
        if not needle or data is None:
            return SearchResult(np.zeros(0, np.int64), np.zeros(0, np.float32), "text")
        text_field = self.model.text_field
        if text_field and text_field in data.columns:
            columns = [text_field]
        else:
            columns = [i.name for i in self.fields() if i.kind in ("text", "categorical") and i.name in data.columns]
        hit = np.zeros(len(self.model), dtype=bool)
        for name in columns:
            values = data[name]
            if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
                continue
            hit |= values.astype(str).str.contains(needle, case=False, regex=False, na=False).to_numpy()
        rows = np.flatnonzero(hit)[:limit].astype(np.int64)
        return SearchResult(rows=rows, scores=np.zeros(len(rows), np.float32), mode="text")


def _without(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
    if frame is None:
        return None
    return frame.drop(columns=[column], errors="ignore").reset_index(drop=True)


def _topic_infos(model: MapModel) -> tuple[list[np.ndarray], list[TopicInfo]]:
    """Per depth, each row's topic code (the biggest topic gets code 0, the first colour) and the
    topics with their label positions and their parents' codes (the parents the topics output names)."""
    sizes = model.topic_size()
    code_of: dict[int, int] = {}
    codes_per_depth: list[np.ndarray] = []
    infos: list[TopicInfo] = []
    for depth, rows in enumerate(model.topic_rows, start=1):
        present = [position for position in model.topics_at(depth) if sizes[position] > 0]
        present.sort(key=lambda position: -sizes[position])  # stable: ties keep the model's order
        lookup = np.full(len(model.topics) + 1, NO_TOPIC, dtype=np.uint16)
        for code, position in enumerate(present):
            lookup[position] = code
            code_of[position] = code
        codes_per_depth.append(lookup[np.where(rows == MODEL_NO_TOPIC, len(model.topics), rows)])
        for code, position in enumerate(present):
            topic = model.topics[position]
            x, y = topic.centroid or _mean_position(model, rows == position)
            infos.append(
                TopicInfo(
                    depth=depth, code=code, topic_id=str(topic.topic_id), label=topic.label,
                    description=topic.description, keywords=list(topic.keywords[:10]), size=int(sizes[position]),
                    x=float(x), y=float(y), parent_code=code_of.get(topic.parent) if topic.parent is not None else None,
                )
            )
    return codes_per_depth, infos


def _mean_position(model: MapModel, members: np.ndarray) -> tuple[float, float]:
    if model.x is None or model.y is None:
        return 0.0, 0.0
    return float(np.nanmean(model.x[members])), float(np.nanmean(model.y[members]))


def _classify_fields(depths: int, data: pd.DataFrame | None) -> list[FieldInfo]:
    result = [FieldInfo(name=f"topic_depth_{depth}", kind="categorical") for depth in range(1, depths + 1)]
    result.append(FieldInfo(name="duplicate_class", kind="categorical"))
    if data is None:
        return result
    for name in data.columns:
        column = data[name]
        if pd.api.types.is_bool_dtype(column):
            kind: FieldKind = "categorical"
        elif pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
            kind = "numeric"
        else:
            sample = column.iloc[: min(len(column), 200_000)]
            distinct = sample.astype(str).nunique(dropna=True)
            kind = "categorical" if distinct <= max(50, int(0.05 * len(sample))) else "text"
            if distinct > 5000:
                kind = "text"
        result.append(FieldInfo(name=str(name), kind=kind))
    return result


def _field_column(info: FieldInfo, column: pd.Series) -> FieldColumn:
    if info.kind == "numeric":
        if pd.api.types.is_datetime64_any_dtype(column):
            values = (column.astype("int64") / 1e6).where(column.notna())  # ms since epoch
        else:
            values = pd.to_numeric(column, errors="coerce")
        array = values.to_numpy(dtype=np.float32, na_value=np.nan)
        finite = array[np.isfinite(array)]
        return FieldColumn(
            info.name, "numeric", values=array,
            minimum=float(finite.min()) if finite.size else None,
            maximum=float(finite.max()) if finite.size else None,
        )
    as_text = column.astype(object).where(column.notna(), MISSING_CATEGORY).astype(str)
    counts = as_text.value_counts()
    top = list(counts.index[:MAX_CATEGORIES])
    top_counts = [int(c) for c in counts.iloc[:MAX_CATEGORIES]]
    codes_lookup = {value: code for code, value in enumerate(top)}
    codes = as_text.map(codes_lookup).fillna(len(top)).to_numpy(dtype=np.uint16)
    if len(counts) > len(top):
        top.append(OTHER_CATEGORY)
        top_counts.append(int(counts.iloc[MAX_CATEGORIES:].sum()))
    return FieldColumn(info.name, "categorical", codes=codes, categories=top, counts=top_counts)


def _json_value(value: Any) -> Any:
    """A table cell as something `json.dumps` accepts (long text cut to an excerpt)."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if value is pd.NaT or (not isinstance(value, (list, dict, str, bytes)) and pd.isna(value)):
        return None
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and len(value) > EXCERPT_CHARS:
        return value[:EXCERPT_CHARS].rstrip() + "…"
    if isinstance(value, (str, int, float)):
        return value
    return str(value)
