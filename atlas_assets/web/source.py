"""What the map server needs from a map, and the adapters that provide it.

The server never touches the store or the pipeline directly: it asks a `MapSource` for point
columns, topic labels, one datum's details, search results, tags and image bytes. Rows are the
positions of points in `points()`; the browser only ever speaks rows, the source translates them to
datum ids. `TableMapSource` implements the whole protocol from plain pandas tables (the shapes of the
`AtlasProjection` accessors); `FrameMapSource` takes those tables directly (tests, benchmarks, maps
built elsewhere) and `ProjectionMapSource` reads them lazily from an `AtlasProjection`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

NO_TOPIC = np.uint16(65535)
MAX_CATEGORIES = 20
MISSING_CATEGORY = "(missing)"
OTHER_CATEGORY = "(other)"
EXCERPT_CHARS = 600
MAX_MEANING_K = 1000  # AtlasProjection.embeddings.vector_search caps k there
MAX_TEXT_MATCHES = 200_000

DUPLICATE_CLASSES = ("singleton", "retention candidate", "deletion candidate")

FieldKind = Literal["categorical", "numeric", "text"]


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
    """The `map.tags` accessor (or a `resources.tags.TagStore`)."""

    def add(self, ids: Any, tag: str) -> Any: ...

    def remove(self, ids: Any, tag: str) -> Any: ...

    def get_tags(self) -> list[str]: ...

    def get_datums_in_tag(self, tag: str) -> list[Any]: ...


VectorSearch = Callable[[Any, int], tuple[Sequence[Sequence[Any]], Sequence[Sequence[float]]]]
ImageLoader = Callable[[Any, dict[str, Any]], "tuple[bytes, str] | None"]


@dataclass
class MapTables:
    """The accessor tables of one map, as `AtlasProjection` returns them.

    projected: id, x, y (defines the rows). data: the id field + the dataset's fields. topics: id +
    topic_depth_1..N labels. topic_metadata: topic_id, depth, topic_short_description, ... and
    optionally centroid_x, centroid_y, size, parent. duplicates: id, duplicate_class, cluster_id.
    """

    projected: pd.DataFrame
    data: pd.DataFrame | None = None
    id_field: str = "id"
    topics: pd.DataFrame | None = None
    topic_metadata: pd.DataFrame | None = None
    duplicates: pd.DataFrame | None = None
    text_field: str | None = None


def _aligned(frame: pd.DataFrame | None, id_column: str, ids: pd.Index) -> pd.DataFrame | None:
    """`frame` reordered to `ids` (rows missing from the frame become NaN)."""
    if frame is None or id_column not in frame.columns:
        return None
    keyed = frame.drop_duplicates(subset=id_column).set_index(id_column)
    keyed.index = keyed.index.astype(str)
    return keyed.reindex(ids)


class TableMapSource:
    """A `MapSource` computed from `MapTables`; subclasses say where the tables come from."""

    def __init__(
        self,
        key: str,
        title: str,
        *,
        is_public: bool = True,
        token: str | Callable[[], str | None] | None = None,
        modality: str = "text",
        tags: TagsLike | None = None,
        vector_search: VectorSearch | None = None,
        image_loader: ImageLoader | None = None,
    ) -> None:
        self.key = key
        self.title = title
        self.modality = modality
        self._is_public = is_public
        self._token = token
        self._tags = tags
        self._vector_search = vector_search
        self._image_loader = image_loader
        self._lock = threading.RLock()
        self._built = False

    # tables ------------------------------------------------------------------------------------
    def load_tables(self) -> MapTables:
        """The accessor tables; called once, on first use."""
        raise NotImplementedError

    def _ensure(self) -> None:
        if self._built:
            return
        with self._lock:
            if not self._built:
                self._build(self.load_tables())
                self._built = True

    def _build(self, tables: MapTables) -> None:
        projected = tables.projected
        self._ids = pd.Index(projected["id"].astype(str).to_numpy(), dtype=object)
        x = projected["x"].to_numpy(dtype=np.float32)
        y = projected["y"].to_numpy(dtype=np.float32)
        self._id_field = tables.id_field
        self._data = _aligned(tables.data, tables.id_field, self._ids)
        self._text_field = tables.text_field
        topic_codes, self._topics = self._build_topics(tables, x, y)
        duplicates = _aligned(tables.duplicates, "id", self._ids)
        duplicate_class = np.zeros(len(self._ids), dtype=np.uint8)
        if duplicates is not None and "duplicate_class" in duplicates.columns:
            classes = duplicates["duplicate_class"].astype(object).to_numpy()
            for code, name in enumerate(DUPLICATE_CLASSES):
                duplicate_class[classes == name] = code
            self._cluster = duplicates["cluster_id"] if "cluster_id" in duplicates.columns else None
        else:
            self._cluster = None
        self._points = MapPoints(x=x, y=y, topic_codes=topic_codes, duplicate_class=duplicate_class)
        self._fields: list[FieldInfo] | None = None
        self._columns: dict[str, FieldColumn] = {}

    def _build_topics(
        self, tables: MapTables, x: np.ndarray, y: np.ndarray
    ) -> tuple[list[np.ndarray], list[TopicInfo]]:
        n = len(self._ids)
        topics = _aligned(tables.topics, "id", self._ids)
        if topics is None:
            return [], []
        depth_columns = sorted(
            (c for c in topics.columns if str(c).startswith("topic_depth_")),
            key=lambda c: int(str(c).rsplit("_", 1)[1]),
        )
        metadata = tables.topic_metadata
        codes_per_depth: list[np.ndarray] = []
        infos: list[TopicInfo] = []
        label_to_code_per_depth: list[dict[str, int]] = []
        for depth_index, column in enumerate(depth_columns):
            depth = depth_index + 1
            labels = topics[column].astype(object).where(topics[column].notna(), None).to_numpy()
            meta_rows: dict[str, dict[str, Any]] = {}
            if metadata is not None and "depth" in metadata.columns:
                for record in metadata[metadata["depth"] == depth].to_dict("records"):
                    label = str(record.get("topic_short_description", record.get("topic_id")))
                    meta_rows.setdefault(label, record)
            codes_series, uniques = pd.factorize(pd.Series(labels, dtype=object), sort=False)
            counts = np.bincount(codes_series[codes_series >= 0], minlength=len(uniques))
            order = np.argsort(-counts, kind="stable")  # biggest topic gets code 0 (first colour)
            remap = np.empty(len(uniques), dtype=np.int64)
            remap[order] = np.arange(len(uniques))
            codes = np.full(n, NO_TOPIC, dtype=np.uint16)
            valid = codes_series >= 0
            codes[valid] = remap[codes_series[valid]].astype(np.uint16)
            codes_per_depth.append(codes)
            sum_x = np.bincount(codes[valid], weights=x[valid], minlength=len(uniques))
            sum_y = np.bincount(codes[valid], weights=y[valid], minlength=len(uniques))
            label_to_code: dict[str, int] = {}
            parent_of_code = self._parent_codes(codes, codes_per_depth, depth, len(uniques))
            for code, unique_index in enumerate(order):
                label = str(uniques[unique_index])
                label_to_code[label] = code
                size = int(counts[unique_index])
                record = meta_rows.get(label, {})
                cx = record.get("centroid_x")
                cy = record.get("centroid_y")
                if cx is None or cy is None or not np.isfinite(cx) or not np.isfinite(cy):
                    cx, cy = sum_x[code] / max(size, 1), sum_y[code] / max(size, 1)
                keywords = record.get("keywords", [])
                if isinstance(keywords, str):
                    keywords = [k.strip() for k in keywords.split(",") if k.strip()]
                infos.append(
                    TopicInfo(
                        depth=depth,
                        code=code,
                        topic_id=str(record.get("topic_id", f"{depth}:{code}")),
                        label=label,
                        description=str(record.get("topic_description", "") or ""),
                        keywords=[str(k) for k in list(keywords)[:10]],
                        size=size,
                        x=float(cx),
                        y=float(cy),
                        parent_code=parent_of_code.get(code),
                    )
                )
            label_to_code_per_depth.append(label_to_code)
        return codes_per_depth, infos

    @staticmethod
    def _parent_codes(
        codes: np.ndarray, codes_per_depth: list[np.ndarray], depth: int, count: int
    ) -> dict[int, int]:
        """Parent of each topic: the depth-1-above topic holding most of its rows."""
        if depth == 1:
            return {}
        parent_codes = codes_per_depth[depth - 2]
        valid = (codes != NO_TOPIC) & (parent_codes != NO_TOPIC)
        if not valid.any():
            return {}
        pairs = pd.DataFrame({"child": codes[valid], "parent": parent_codes[valid]})
        best = pairs.groupby("child")["parent"].agg(lambda s: int(s.value_counts().index[0]))
        return {int(child): int(parent) for child, parent in best.items()}

    # protocol ----------------------------------------------------------------------------------
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
        self._ensure()
        return self._points

    def topics(self) -> list[TopicInfo]:
        self._ensure()
        return self._topics

    def row_ids(self) -> pd.Index:
        """Datum id (as a string) of each row."""
        self._ensure()
        return self._ids

    def fields(self) -> list[FieldInfo]:
        self._ensure()
        with self._lock:
            if self._fields is None:
                self._fields = self._classify_fields()
            return self._fields

    def _classify_fields(self) -> list[FieldInfo]:
        result: list[FieldInfo] = []
        for depth in range(1, len(self._points.topic_codes) + 1):
            result.append(FieldInfo(name=f"topic_depth_{depth}", kind="categorical"))
        result.append(FieldInfo(name="duplicate_class", kind="categorical"))
        if self._data is None:
            return result
        for name in self._data.columns:
            column = self._data[name]
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

    def field_column(self, name: str) -> FieldColumn:
        """The column `name` for every row; KeyError for a field the map does not have."""
        known = {info.name: info for info in self.fields()}
        if name not in known:
            raise KeyError(name)
        with self._lock:
            if name not in self._columns:
                self._columns[name] = self._make_column(known[name])
            return self._columns[name]

    def _make_column(self, info: FieldInfo) -> FieldColumn:
        points = self._points
        if info.name.startswith("topic_depth_"):
            depth = int(info.name.rsplit("_", 1)[1])
            names = [t.label for t in self._topics if t.depth == depth]
            counts = [t.size for t in self._topics if t.depth == depth]
            return FieldColumn(
                info.name, "categorical", codes=points.topic_codes[depth - 1],
                categories=names, counts=counts,
            )
        if info.name == "duplicate_class":
            counts = np.bincount(points.duplicate_class, minlength=3)
            return FieldColumn(
                info.name, "categorical", codes=points.duplicate_class.astype(np.uint16),
                categories=list(DUPLICATE_CLASSES), counts=[int(c) for c in counts],
            )
        assert self._data is not None
        column = self._data[info.name]
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

    def datum(self, row: int) -> dict[str, Any]:
        """Details of one row for the hover card: id, fields (long text cut), topics, duplicates."""
        self._ensure()
        if not 0 <= row < len(self._ids):
            raise IndexError(row)
        fields: dict[str, Any] = {}
        if self._data is not None:
            for name, value in self._data.iloc[row].items():
                fields[str(name)] = _json_value(value)
        topics = [
            self._topic_label(depth, int(codes[row]))
            for depth, codes in enumerate(self._points.topic_codes, start=1)
        ]
        cluster = None
        if self._cluster is not None:
            cluster = _json_value(self._cluster.iloc[row])
        return {
            "row": int(row),
            "id": self._ids[row],
            "text_field": self._text_field,
            "fields": fields,
            "topics": [t for t in topics if t is not None],
            "duplicate_class": DUPLICATE_CLASSES[int(self._points.duplicate_class[row])],
            "duplicate_cluster": cluster,
            "has_image": self.modality == "image" and self._image_loader is not None,
        }

    def _topic_label(self, depth: int, code: int) -> str | None:
        if code == int(NO_TOPIC):
            return None
        for topic in self._topics:
            if topic.depth == depth and topic.code == code:
                return topic.label
        return None

    def rows_of_ids(self, ids: Sequence[Any]) -> np.ndarray:
        """Rows of the given datum ids (ids not on the map are dropped)."""
        self._ensure()
        rows = self._ids.get_indexer(pd.Index([str(i) for i in ids], dtype=object))
        return rows[rows >= 0].astype(np.int64)

    def search(self, query: str | np.ndarray, mode: str = "meaning", k: int = 100) -> SearchResult:
        """Rows matching `query`: `text` = substring of the text fields, `meaning` = nearest vectors."""
        self._ensure()
        if mode == "text":
            return self._search_text(str(query), limit=max(1, min(int(k), MAX_TEXT_MATCHES)))
        k = max(1, min(int(k), MAX_MEANING_K))
        if mode != "meaning":
            raise ValueError(f"unknown search mode {mode!r}; use 'text' or 'meaning'")
        if self._vector_search is None:
            raise LookupError("this map has no vector search")
        queries: Any = [query] if isinstance(query, str) else np.atleast_2d(query)
        neighbours, distances = self._vector_search(queries, k)
        ids = list(neighbours[0])
        scores = np.asarray(distances[0], dtype=np.float32)
        rows = self._ids.get_indexer(pd.Index([str(i) for i in ids], dtype=object))
        keep = rows >= 0
        return SearchResult(rows=rows[keep].astype(np.int64), scores=scores[keep], mode="meaning")

    def _search_text(self, text: str, limit: int) -> SearchResult:
        needle = text.strip()
        if not needle or self._data is None:
            return SearchResult(np.zeros(0, np.int64), np.zeros(0, np.float32), "text")
        if self._text_field and self._text_field in self._data.columns:
            columns = [self._text_field]
        else:
            columns = [i.name for i in self.fields() if i.kind in ("text", "categorical")
                       and self._data is not None and i.name in self._data.columns]
        hit = np.zeros(len(self._ids), dtype=bool)
        for name in columns:
            values = self._data[name]
            if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
                continue
            hit |= values.astype(str).str.contains(needle, case=False, regex=False, na=False).to_numpy()
        rows = np.flatnonzero(hit)[:limit].astype(np.int64)
        return SearchResult(rows=rows, scores=np.zeros(len(rows), np.float32), mode="text")

    # tags --------------------------------------------------------------------------------------
    def _require_tags(self) -> TagsLike:
        if self._tags is None:
            raise LookupError("this map has no tag store")
        return self._tags

    def tag_counts(self) -> dict[str, int]:
        if self._tags is None:
            return {}
        counts_method = getattr(self._tags, "counts", None)
        if callable(counts_method):
            return dict(counts_method())
        return {name: len(self._tags.get_datums_in_tag(name)) for name in self._tags.get_tags()}

    def tag_rows(self, tag: str) -> np.ndarray:
        return self.rows_of_ids(self._require_tags().get_datums_in_tag(tag))

    def _ids_of_rows(self, rows: np.ndarray) -> list[str]:
        self._ensure()
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self._ids)):
            raise IndexError("row out of range")
        return list(self._ids[np.unique(rows)]) if rows.size else []

    def tag_rows_add(self, rows: np.ndarray, tag: str) -> int:
        ids = self._ids_of_rows(rows)
        result = self._require_tags().add(ids, tag)
        return int(result) if isinstance(result, (int, np.integer)) else len(ids)

    def tag_rows_remove(self, rows: np.ndarray, tag: str) -> int:
        ids = self._ids_of_rows(rows)
        result = self._require_tags().remove(ids, tag)
        return int(result) if isinstance(result, (int, np.integer)) else len(ids)

    def image(self, row: int) -> tuple[bytes, str] | None:
        self._ensure()
        if self._image_loader is None or not 0 <= row < len(self._ids):
            return None
        record = {} if self._data is None else self._data.iloc[row].to_dict()
        return self._image_loader(self._ids[row], record)


def _json_value(value: Any) -> Any:
    """A table cell as something `json.dumps` accepts (long text cut to an excerpt)."""
    if value is None:
        return None
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (np.floating,)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, (np.integer,)):
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


class FrameMapSource(TableMapSource):
    """A map given as ready tables (tests, benchmarks, maps computed outside the pipeline)."""

    def __init__(self, key: str, title: str, tables: MapTables, **options: Any) -> None:
        super().__init__(key, title, **options)
        self._tables = tables

    def version(self) -> tuple[Any, ...]:
        """Fixed: the tables of this source never change (a new build is a new source)."""
        return ("frame", id(self._tables))

    def load_tables(self) -> MapTables:
        return self._tables


class ProjectionMapSource(TableMapSource):
    """A map read from an `AtlasProjection` through its Atlas accessors, on first use.

    The key is `<org>/<slug>/<index id>`, the path of `AtlasProjection.map_link`. `version()` tells
    when the pipeline rewrote the map's outputs, so a registry can replace a stale source.
    """

    def __init__(self, projection: Any, *, token: str | Callable[[], str | None] | None = None) -> None:
        dataset = projection.dataset
        key = f"{dataset.organisation}/{dataset.slug}/{projection.atlas_index_id}"
        if token is None:
            token = lambda: _dataset_token(dataset)  # noqa: E731 - read lazily, only when private
        super().__init__(
            key,
            title=f"{dataset.identifier} · {projection.name}",
            is_public=bool(getattr(dataset, "is_public", True)),
            token=token,
            modality=str(getattr(dataset, "modality", "text") or "text"),
            tags=projection.tags,
            vector_search=lambda queries, k: projection.embeddings.vector_search(queries=queries, k=int(k)),
            image_loader=_image_loader(dataset),
        )
        self.projection = projection

    def version(self) -> tuple[Any, ...]:
        """Changes whenever the map's outputs or the dataset's rows change."""
        return projection_version(self.projection)

    def load_tables(self) -> MapTables:
        projection = self.projection
        dataset = projection.dataset
        id_field = str(getattr(dataset, "id_field", None) or "id")

        def keyed(getter: Callable[[], pd.DataFrame], required: bool = False) -> pd.DataFrame | None:
            """An accessor table with its id column named `id` (None when not built yet)."""
            try:
                frame = getter()
            except Exception:  # noqa: BLE001 - a map without topics/duplicates still shows
                if required:
                    raise
                return None
            if id_field != "id" and id_field in frame.columns:
                frame = frame.drop(columns=["id"], errors="ignore").rename(columns={id_field: "id"})
            return frame

        projected = keyed(lambda: projection.embeddings.projected, required=True)
        assert projected is not None
        try:
            data = projection.data.df  # keeps its own id field name (a user field may be called id)
        except Exception:  # noqa: BLE001
            data = None
        return MapTables(
            projected=projected,
            data=data,
            id_field=id_field,
            topics=keyed(lambda: projection.topics.df),
            topic_metadata=keyed(lambda: projection.topics.metadata),
            duplicates=keyed(lambda: projection.duplicates.df),
            text_field=_indexed_field(projection),
        )


def projection_version(projection: Any) -> tuple[Any, ...]:
    """A fingerprint of a projection's outputs (file times and sizes) and of its dataset's rows."""
    parts: list[Any] = []
    try:
        record = projection.dataset._record()
        parts += [len(record.batches), len(record.deletions)]
    except Exception:  # noqa: BLE001 - a vanished dataset simply has no version
        return ("missing",)
    try:
        from resources.index_outputs import outputs_base, stage_path

        for stage in ("projection", "topics", "duplicates"):
            path = stage_path(outputs_base(), projection._spec.output_dir, stage)
            try:
                stat = path.stat()
                parts.append((stage, getattr(stat, "st_mtime", None), getattr(stat, "st_size", None)))
            except (FileNotFoundError, OSError):
                parts.append((stage, None))
    except Exception:  # noqa: BLE001 - unknown layout: fall back to the record alone
        pass
    return tuple(parts)


def _indexed_field(projection: Any) -> str | None:
    try:
        index_record = projection._index
    except Exception:  # noqa: BLE001 - not an AtlasProjection of this package
        index_record = None
    for owner in (projection, index_record):
        for attribute in ("indexed_field", "topic_label_field"):
            value = getattr(owner, attribute, None) if owner is not None else None
            if isinstance(value, str) and value:
                return value
    return None


def _dataset_token(dataset: Any) -> str | None:
    """The dataset's access token: its own when it has one, else the web token store's."""
    own = getattr(dataset, "access_token", None)
    if callable(own):
        own = own()
    if isinstance(own, str) and own:
        return own
    from atlas_assets.web.auth import dataset_token

    return dataset_token(str(dataset.id))


def _image_loader(dataset: Any) -> ImageLoader | None:
    """Reads an image datum's bytes from the dataset store (`_blob` reference -> blob file)."""
    getter = getattr(dataset, "get_blob", None)
    store = getattr(dataset, "store", None)
    if not callable(getter) and store is not None and hasattr(store, "blob_path"):

        def getter(datum_id: Any) -> bytes | None:
            table = store.find_rows(dataset.organisation, dataset.slug, [datum_id], columns=["_blob"])
            reference = table.column(0)[0].as_py() if table.num_rows else None
            return store.blob_path(dataset.organisation, dataset.slug, reference).read_bytes() if reference else None

    if not callable(getter):
        return None

    def load(datum_id: Any, record: dict[str, Any]) -> tuple[bytes, str] | None:
        blob = getter(datum_id)
        if blob is None:
            return None
        if isinstance(blob, tuple):
            return blob
        if hasattr(blob, "read_bytes"):
            blob = blob.read_bytes()
        return bytes(blob), _sniff_image_type(bytes(blob))

    return load


def _sniff_image_type(blob: bytes) -> str:
    if blob.startswith(b"\x89PNG"):
        return "image/png"
    if blob.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if blob.startswith(b"GIF8"):
        return "image/gif"
    if blob[:4] == b"RIFF" and blob[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
