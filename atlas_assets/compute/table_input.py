"""Whatever a user hands to `add_data` (pandas, polars, pyarrow, a list of dicts) as plain Arrow
tables: pandas' `__index_level_N__` columns and all schema metadata dropped, no type rules applied yet
(compute/tables.py applies them). Large inputs convert a slice at a time (`iter_arrow_chunks`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from atlas_assets.errors import InvalidDataError, shown

_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")


def is_table_like(data: Any) -> bool:
    """True for the inputs add_data takes: pyarrow Table/RecordBatch, pandas, polars, list of dicts."""
    if isinstance(data, list):
        return not (data and isinstance(data[0], pa.Table))  # a list of Tables is a list of chunks
    return isinstance(data, (pa.Table, pa.RecordBatch)) or _is_pandas(data) or _is_polars(data)


def count_rows(data: Any) -> int:
    """Rows of any supported input without converting it."""
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return data.num_rows
    if isinstance(data, list):
        return len(data)
    if hasattr(data, "shape") and hasattr(data, "columns"):  # pandas and polars frames
        return int(data.shape[0])
    raise InvalidDataError(_unsupported(data))


def _unsupported(data: Any) -> str:
    return (
        f"add_data got a {type(data).__module__}.{type(data).__name__}; pass a pandas DataFrame, a "
        "polars DataFrame, a pyarrow Table or a list of dicts"
    )


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "iloc")


def _is_polars(data: Any) -> bool:
    return type(data).__module__.startswith("polars") and hasattr(data, "to_arrow")


_SAMPLE_ROWS = 1000


def _pandas_schema(frame: Any) -> pa.Schema | None:
    """One Arrow schema for every chunk of a DataFrame, without converting the whole frame.

    Typed columns get their type from the dtype (read off the first rows); object columns from
    their first non-null values, so a column that is null in the first chunk still gets its type.
    (`pa.Schema.from_pandas(frame)` would convert every object column in full: the whole upload.)
    """
    try:
        head = pa.Schema.from_pandas(frame.iloc[:_SAMPLE_ROWS], preserve_index=False)
        fields = []
        for field, name in zip(head, frame.columns, strict=True):
            column = frame[name]
            if column.dtype == object:
                values = column.dropna()
                if len(values):
                    field = field.with_type(pa.array(values.iloc[:_SAMPLE_ROWS], from_pandas=True).type)
            fields.append(field)
        return pa.schema(fields)
    except Exception:  # noqa: BLE001 - the chunk conversion then names the offending column
        return None


def _from_pandas(frame: Any, schema: pa.Schema | None = None) -> pa.Table:
    names = [str(name) for name in frame.columns] if len(frame.columns) else []
    if any(not isinstance(name, str) for name in frame.columns):
        raise InvalidDataError(
            f"column names must be strings, got {shown([n for n in frame.columns if not isinstance(n, str)])}; "
            "rename them (df.columns = df.columns.astype(str))"
        )
    try:
        return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError) as error:
        for name in names:  # find the column that cannot be converted, to name it
            try:
                pa.Table.from_pandas(frame[[name]], preserve_index=False)
            except Exception as column_error:  # noqa: BLE001 - re-raised with the column named
                raise InvalidDataError(
                    f"column {name!r} cannot be converted to Arrow ({column_error}); give it one type "
                    "per column (e.g. df[col].astype(str))"
                ) from None
        raise InvalidDataError(f"the DataFrame cannot be converted to Arrow: {error}") from None


def _dict_layout(rows: list[Any]) -> dict[str, pa.DataType | None]:
    """Every key of the whole list (in order of appearance) with the Arrow type of its first non-null
    value, so each chunk has every column, typed as in the whole upload (None: null everywhere)."""
    layout: dict[str, pa.DataType | None] = {}
    for row in rows:
        if not isinstance(row, dict):
            return layout  # _from_dicts names the bad row
        for key, value in row.items():
            if layout.get(key) is None and value is not None:
                try:
                    layout[key] = pa.array([value]).type
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                    layout[key] = None  # _from_dicts reports it
            else:
                layout.setdefault(key, None)
    return layout


def _from_dicts(
    rows: list[Any], layout: dict[str, pa.DataType | None] | None = None, offset: int = 0
) -> pa.Table:
    names: dict[str, None] = dict.fromkeys(layout or {})
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidDataError(
                f"row {number + offset} of the list is a {type(row).__name__}, not a dict; pass a list of dicts "
                "(one per datum, field name -> value)"
            )
        for key in row:
            if not isinstance(key, str):
                raise InvalidDataError(f"row {number + offset} has a non-string field name {key!r}; use strings")
            if not is_utf8(key):
                raise InvalidDataError(
                    f"row {number + offset} has a field name that is not valid Unicode ({key!r}: a lone "
                    "surrogate); fix the name's encoding"
                )
            names.setdefault(key, None)
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        hinted = (layout or {}).get(name)
        if hinted is not None and all(value is None for value in values):
            columns[name] = pa.nulls(len(values), hinted)
            continue
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as error:
            raise InvalidDataError(
                f"field {name!r} cannot be converted ({error}); give every row the same type, integers "
                "within 64 bits"
            ) from None
    if not columns:  # keep the row count of a table without columns
        return pa.table({"_": pa.nulls(len(rows))}).drop_columns(["_"])
    return pa.table(columns)


def is_utf8(text: str) -> bool:
    """False for strings Arrow cannot store (lone surrogates, e.g. from bytes decoded with surrogateescape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(table: pa.Table) -> pa.Table:
    """Drop pandas index columns and all schema / field metadata."""
    keep = [i for i, name in enumerate(table.column_names) if not _PANDAS_INDEX.match(name)]
    table = table.select(keep)
    fields = [pa.field(f.name, f.type, nullable=True) for f in table.schema]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields))


def to_arrow(data: Any) -> pa.Table:
    """One supported input as a plain `pa.Table` (no type rules applied yet)."""
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, list):
        table = _from_dicts(data)
    elif _is_pandas(data):
        table = _from_pandas(data)
    elif _is_polars(data):
        table = data.to_arrow()
    else:
        raise InvalidDataError(_unsupported(data))
    return _plain(table)


def iter_arrow_chunks(data: Any, chunk_rows: int) -> Iterator[pa.Table]:
    """`to_arrow` of consecutive row slices, so a large input is converted a piece at a time."""
    total = count_rows(data)
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        table = to_arrow(data)
        for start in range(0, max(total, 1), chunk_rows):
            yield table.slice(start, chunk_rows)
        return
    if _is_pandas(data):
        schema = _pandas_schema(data) if total > chunk_rows else None
        for start in range(0, max(total, 1), chunk_rows):
            yield _plain(_from_pandas(data.iloc[start : start + chunk_rows], schema))
        return
    if isinstance(data, list):
        layout = _dict_layout(data) if total > chunk_rows else None
        for start in range(0, max(total, 1), chunk_rows):
            yield _plain(_from_dicts(data[start : start + chunk_rows], layout, start))
        return
    for start in range(0, max(total, 1), chunk_rows):
        yield to_arrow(data.slice(start, chunk_rows))
