"""The dataset's fields as the charts and the table beside the map need them: which fields are dates,
date columns in exact milliseconds, rows sorted by a field, pages of rows as JSON, rows as CSV, and
topic counts in a time range with the rule of `map.topics.get_topic_density` (start <= t <= end).

Every function takes a `MapSource`; the dataset's table comes from `source.table()` (ModelMapSource
and FrameMapSource have it), sources without one answer `LookupError`.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from atlas_assets.maps.model import DUPLICATE_CLASSES
from atlas_assets.web.map_types import MapSource
from atlas_assets.web.map_view import _json_value, epoch_ms

TABLE_TEXT_CHARS = 300


def data_of(source: MapSource) -> pd.DataFrame:
    """The dataset's fields (no id field) in row order; LookupError when the source has none."""
    table = getattr(source, "table", None)
    frame = table() if callable(table) else None
    if frame is None:
        raise LookupError("this map has no dataset fields")
    return frame


def field_summaries(source: MapSource) -> list[dict[str, Any]]:
    """Every field with its kind and whether it is a date (`temporal`), in the order of `meta`."""
    try:
        frame: pd.DataFrame | None = data_of(source)
    except LookupError:
        frame = None
    out = []
    for info in source.fields():
        temporal = bool(frame is not None and info.name in frame.columns
                        and pd.api.types.is_datetime64_any_dtype(frame[info.name]))
        out.append({"name": info.name, "kind": info.kind, "temporal": temporal})
    return out


def time_values(source: MapSource, name: str) -> np.ndarray:
    """The date field `name` of every row as float64 ms since the epoch (KeyError: no such date)."""
    frame = data_of(source)
    if name not in frame.columns or not pd.api.types.is_datetime64_any_dtype(frame[name]):
        raise KeyError(name)
    return epoch_ms(frame[name])


def _topic_labels(source: MapSource, depth: int) -> np.ndarray:
    points = source.points()
    labels = np.array([t.label for t in source.topics() if t.depth == depth] + [None], dtype=object)
    codes = points.topic_codes[depth - 1].astype(np.int64)
    return labels[np.where(codes >= len(labels) - 1, len(labels) - 1, codes)]


def topic_density(
    source: MapSource, field: str, start_ms: float, end_ms: float, depth: int | None = None
) -> list[dict[str, Any]]:
    """Rows of each topic whose `field` is in [start, end] (the end included), largest first, over
    every depth (a label used at two depths sums both) or at `depth`: the answer of
    `map.topics.get_topic_density(field, start, end, topic_depth=depth)`, counted on the map's rows."""
    points = source.points()
    depths = range(1, len(points.topic_codes) + 1)
    if depth is not None:
        if depth not in depths:
            raise ValueError(f"depth must be from 1 to {len(points.topic_codes)}")
        depths = range(depth, depth + 1)
    times = time_values(source, field)
    inside = (times >= start_ms) & (times <= end_ms)
    counts: dict[str, int] = {}
    for d in depths:
        for topic, count in pd.Series(_topic_labels(source, d)[inside]).value_counts().items():
            counts[str(topic)] = counts.get(str(topic), 0) + int(count)
    return [{"topic": t, "count": c} for t, c in sorted(counts.items(), key=lambda item: -item[1])]


def sorted_rows(source: MapSource, rows: np.ndarray, sort: str | None, descending: bool) -> np.ndarray:
    """`rows` ordered by field `sort` (a dataset field, `id`, `topic_depth_<d>`, `duplicate_class`);
    missing values last either way; ties keep row order. No sort: row order (descending reverses)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not sort or sort == "row":
        ordered = np.sort(rows)
        return ordered[::-1] if descending else ordered
    values = _sort_key(source, sort, rows)
    frame = pd.DataFrame({"v": values, "row": rows})
    frame = frame.sort_values(["v", "row"], ascending=[not descending, True], na_position="last", kind="stable")
    return frame["row"].to_numpy(dtype=np.int64)


def _sort_key(source: MapSource, name: str, rows: np.ndarray) -> Any:
    if name == "id":
        ids = source.model.ids  # type: ignore[attr-defined]
        return pd.Series(ids[rows]).astype(str).to_numpy()
    if name.startswith("topic_depth_"):
        return _topic_labels(source, int(name.rsplit("_", 1)[1]))[rows]
    if name == "duplicate_class":
        return np.asarray(source.points().duplicate_class)[rows]
    frame = data_of(source)
    if name not in frame.columns:
        raise KeyError(name)
    column = frame[name].iloc[rows]
    if pd.api.types.is_datetime64_any_dtype(column):
        return epoch_ms(column)
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return column.astype(object).where(column.notna(), None).to_numpy()


def rows_table(source: MapSource, rows: np.ndarray, *, full_text: bool = False) -> pd.DataFrame:
    """The table of `rows`: row, id, the dataset's fields, topic labels per depth, duplicate class."""
    rows = np.asarray(rows, dtype=np.int64)
    points = source.points()
    model = getattr(source, "model", None)
    out = pd.DataFrame({"row": rows})
    if model is not None:
        out["id"] = pd.Series(model.ids[rows]).astype(str).to_numpy()
    try:
        frame = data_of(source).iloc[rows].reset_index(drop=True)
    except LookupError:
        frame = pd.DataFrame(index=range(len(rows)))
    for name in frame.columns:
        if name in ("row", "id"):
            out[f"field:{name}"] = frame[name].to_numpy()
        else:
            out[str(name)] = frame[name].to_numpy()
    for depth in range(1, len(points.topic_codes) + 1):
        out[f"topic_depth_{depth}"] = _topic_labels(source, depth)[rows]
    out["duplicate_class"] = np.asarray(DUPLICATE_CLASSES, dtype=object)[points.duplicate_class[rows]]
    if not full_text:
        for name in out.columns:
            if out[name].dtype == object:
                out[name] = out[name].map(_cut)
    return out


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TABLE_TEXT_CHARS:
        return value[:TABLE_TEXT_CHARS].rstrip() + "…"
    return value


def rows_json(source: MapSource, rows: np.ndarray) -> dict[str, Any]:
    """A page of the table as JSON: the column names and one list of cells per row."""
    table = rows_table(source, rows)
    records = [[_json_value(v) for v in record] for record in table.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in table.columns], "rows": records}


def rows_csv(source: MapSource, rows: np.ndarray) -> str:
    """Every field of `rows` (full text) as CSV with a header line."""
    table = rows_table(source, rows, full_text=True)
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    return buffer.getvalue()
