"""What the browser is sent of one map, derived once per map version from its `MapModel`: topic
codes by size, label positions, field columns classified as categorical, numeric or text, hover cards
and substring search."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from atlas_assets.maps.model import DUPLICATE_CLASSES, MapModel
from atlas_assets.maps.model import NO_TOPIC as MODEL_NO_TOPIC
from atlas_assets.web.map_types import (
    EXCERPT_CHARS,
    MAX_CATEGORIES,
    MISSING_CATEGORY,
    NO_TOPIC,
    OTHER_CATEGORY,
    FieldColumn,
    FieldInfo,
    FieldKind,
    MapPoints,
    SearchResult,
    TopicInfo,
)


class MapView:
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
            values = pd.Series(epoch_ms(column))  # ms since epoch, whatever the column's unit
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


def epoch_ms(column: pd.Series) -> np.ndarray:
    """A datetime column as float64 milliseconds since 1970-01-01 UTC (naive times read as UTC),
    NaN where missing, whatever its unit (Arrow's timestamp[ms] arrives as datetime64[ms])."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    values = column.to_numpy(dtype="datetime64[ms]")
    out = values.astype("int64").astype(np.float64)
    out[np.isnat(values)] = np.nan
    return out


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
