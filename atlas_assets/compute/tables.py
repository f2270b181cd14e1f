"""Turn whatever a user hands to `add_data` into Arrow tables that obey the Atlas rules.

Pure functions on Arrow and numpy (no files, no Dagster):

- `to_arrow` / `iter_arrow_chunks`: pandas, polars, pyarrow or a list of dicts -> `pa.Table`
  (pandas' `__index_level_N__` columns and all schema metadata dropped);
- `check_field_names`: `_`-prefixed names are reserved, names unique ignoring case;
- `infer_schema` / `conform`: the Atlas type rules (string and dictionary kept, integers -> int32,
  floats -> float32, dates and timestamps -> timestamp[ms]; bool, list, struct, binary rejected) and
  the frozen schema of later uploads (missing field: error; extra field: dropped, reported);
- `check_ids`: no nulls, strings at most 36 characters, unique within the upload;
- `check_embeddings` / `embedding_array`: finite 2-D float vectors of a fixed width.

Every rule violation raises an `InvalidDataError` subclass naming the field, the rows and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from atlas_assets.errors import (
    DuplicateIdError,
    InvalidDataError,
    InvalidEmbeddingsError,
    SchemaMismatchError,
)

RESERVED_PREFIX = "_"
ROW_ID = "_row_id"  # int64, consecutive per dataset, assigned by the store
EMBEDDING = "_embedding"  # fixed_size_list<float32>[dim]: the user's vectors
BLOB = "_blob"  # "<sha256>.<ext>": the image in blobs/
GENERATED_ID_FIELD = "id_"  # the id field of datasets created without unique_id_field (as in nomic)
MAX_ID_LENGTH = 36
TIMESTAMP = pa.timestamp("ms")
DICTIONARY = pa.dictionary(pa.int32(), pa.string())

_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")
_SHOW = 5  # how many offending rows / ids a message names


def _shown(values: Sequence[Any]) -> str:
    head = ", ".join(repr(value) for value in list(values)[:_SHOW])
    return head + (f" ... ({len(values)} in all)" if len(values) > _SHOW else "")


# ---------------------------------------------------------------------------------------- input


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
            f"column names must be strings, got {_shown([n for n in frame.columns if not isinstance(n, str)])}; "
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
            if not _is_utf8(key):
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


def _is_utf8(text: str) -> bool:
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


# ---------------------------------------------------------------------------------------- names


def check_field_names(names: Iterable[str]) -> None:
    """Reserved `_` names and names equal ignoring case are errors (Atlas rules)."""
    names = list(names)
    empty = [name for name in names if not name or not name.strip()]
    if empty:
        raise InvalidDataError("a column has an empty name; give every column a name")
    unencodable = [name for name in names if not _is_utf8(name)]
    if unencodable:
        raise InvalidDataError(
            f"field names must be valid Unicode text: {_shown(unencodable)} holds a lone surrogate; fix its encoding"
        )
    reserved = [name for name in names if name.startswith(RESERVED_PREFIX)]
    if reserved:
        raise InvalidDataError(
            f"field names starting with '_' are reserved for Atlas: {_shown(reserved)}; rename them "
            "(e.g. df.rename(columns={'_x': 'x'}))"
        )
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other is not name:
            raise InvalidDataError(
                f"field names must be unique ignoring case: {other!r} and {name!r}; rename one of them"
            )


# ---------------------------------------------------------------------------------------- types


def _kind(data_type: pa.DataType) -> str:
    """The Atlas family of an Arrow type: string, integer, float, temporal, or what is rejected."""
    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_dictionary(data_type):
        return "string" if _kind(data_type.value_type) == "string" else _kind(data_type.value_type)
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or _is_string_view(data_type):
        return "string"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_integer(data_type):
        return "integer"
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "float"
    if pa.types.is_timestamp(data_type) or pa.types.is_date(data_type):
        return "temporal"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
        return "list"
    if pa.types.is_struct(data_type) or pa.types.is_map(data_type):
        return "struct"
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type) or pa.types.is_fixed_size_binary(data_type):
        return "binary"
    return str(data_type)


def _is_string_view(data_type: pa.DataType) -> bool:
    return str(data_type) == "string_view"


_REJECTED_FIX = {
    "bool": "convert it to int (0/1) or to strings",
    "list": "join it into a string, or pass vectors through add_data(embeddings=...)",
    "struct": "flatten it into one column per part",
    "binary": "decode it to strings, or pass images through add_data(blobs=...)",
}


def atlas_type(name: str, data_type: pa.DataType, is_id: bool = False) -> pa.DataType:
    """The type a column of `data_type` is stored as (the Atlas mapping), or InvalidDataError."""
    kind = _kind(data_type)
    if is_id:
        if kind == "string" or kind == "null":
            return pa.string()
        if kind == "integer":
            return pa.int64()  # ids keep full width: a silently overflowing id would merge rows
        hint = (
            " (pandas turns an integer column with missing values into floats: every datum needs an id)"
            if kind == "float"
            else ""
        )
        raise InvalidDataError(
            f"unique id field {name!r} has type {data_type}; ids must be strings (at most "
            f"{MAX_ID_LENGTH} characters) or integers. Convert it, e.g. df[{name!r}].astype(str){hint}"
        )
    if kind in ("string", "null"):
        return DICTIONARY if pa.types.is_dictionary(data_type) else pa.string()
    if kind == "integer":
        return pa.int32()
    if kind == "float":
        return pa.float32()
    if kind == "temporal":
        tz = getattr(data_type, "tz", None)
        return pa.timestamp("ms", tz=tz) if tz else TIMESTAMP
    fix = _REJECTED_FIX.get(kind, "convert it to a string, integer, float or timestamp column")
    raise InvalidDataError(f"field {name!r} has type {data_type}, which Atlas does not accept; {fix}")


def infer_schema(table: pa.Table, id_field: str | None) -> pa.Schema:
    """The frozen schema of a first upload: every column mapped by the Atlas rules.

    All offending columns are reported in one error. An all-null column becomes a string field.
    """
    problems: list[str] = []
    fields: list[pa.Field] = []
    for field in table.schema:
        try:
            fields.append(pa.field(field.name, atlas_type(field.name, field.type, field.name == id_field)))
        except InvalidDataError as error:
            problems.append(str(error))
    if problems:
        raise InvalidDataError("; ".join(problems))
    return pa.schema(fields)


def _cast_column(name: str, column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    source = column.type
    if source == target:
        return column
    source_kind, target_kind = _kind(source), _kind(target)
    numeric = {"integer", "float"}
    compatible = (
        source_kind == "null"
        or source_kind == target_kind
        or (source_kind in numeric and target_kind in numeric)
    )
    if not compatible:
        raise SchemaMismatchError(
            f"field {name!r} was frozen as {target} at the first upload but this upload has {source}; "
            f"convert the column to {target_kind} values"
        )
    try:
        if pa.types.is_dictionary(source) and not pa.types.is_dictionary(target):
            column = column.cast(source.value_type)
        if pa.types.is_dictionary(target) and not pa.types.is_dictionary(column.type):
            return column.cast(pa.string()).dictionary_encode().cast(target)
        if target_kind == "temporal":
            # truncation to milliseconds is the rule, not an error
            return pc.cast(column, target, safe=False)
        return pc.cast(column, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        hint = (
            "values do not fit in 32-bit integers; store them as strings or floats"
            if target == pa.int32()
            else "check its values"
        )
        raise SchemaMismatchError(f"field {name!r} cannot be stored as {target}: {error}; {hint}") from None


def conform(table: pa.Table, schema: pa.Schema) -> tuple[pa.Table, list[str]]:
    """Cast `table` to the frozen `schema` (its field order). Returns it and the dropped extra fields.

    A frozen field missing from `table` is a SchemaMismatchError (all of them named at once).
    """
    names = set(table.column_names)
    missing = [field.name for field in schema if field.name not in names]
    if missing:
        hints = []
        lowered = {name.lower(): name for name in table.column_names}
        for name in missing:
            if name.lower() in lowered:
                hints.append(f"{lowered[name.lower()]!r} differs from {name!r} only in case")
        raise SchemaMismatchError(
            f"this upload lacks field(s) {_shown(missing)} of the dataset's schema (frozen at the first "
            f"upload: {', '.join(schema.names)}); add them (null values are allowed)"
            + (f" ({'; '.join(hints)})" if hints else "")
        )
    extra = [name for name in table.column_names if name not in set(schema.names)]
    columns = [_cast_column(field.name, table.column(field.name), field.type) for field in schema]
    return pa.Table.from_arrays(columns, schema=schema), extra


def prepare_first_upload(table: pa.Table, id_field: str | None) -> tuple[pa.Table, pa.Schema]:
    """Infer the schema of a dataset's first upload and cast the table to it."""
    schema = infer_schema(table, id_field)
    converted, _ = conform(table, schema)
    return converted, schema


# ---------------------------------------------------------------------------------------- ids


def check_ids(ids: pa.ChunkedArray | pa.Array, id_field: str, row_offset: int = 0) -> None:
    """No nulls, strings at most 36 characters. (Uniqueness: `find_duplicates`.)"""
    if ids.null_count:
        rows = np.flatnonzero(pc.is_null(ids).to_numpy(zero_copy_only=False)) + row_offset
        raise InvalidDataError(
            f"unique id field {id_field!r} is null in row(s) {_shown(rows.tolist())}; every datum needs an id"
        )
    if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
        too_long = pc.greater(pc.utf8_length(ids), MAX_ID_LENGTH).to_numpy(zero_copy_only=False)
        if too_long.any():
            rows = np.flatnonzero(too_long)
            values = pc.take(ids, pa.array(rows[:_SHOW])).to_pylist()
            raise InvalidDataError(
                f"unique id field {id_field!r} has ids longer than {MAX_ID_LENGTH} characters in row(s) "
                f"{_shown((rows + row_offset).tolist())} (e.g. {values[0]!r}); shorten them (a hash or "
                "a counter works)"
            )


def find_duplicates(ids: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Ids occurring more than once in `ids` (at most a few, for the message)."""
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))
    return repeated.field("values").to_pylist()[: _SHOW + 1] if len(repeated) else []


def raise_duplicates(duplicates: list[Any], id_field: str, where: str) -> None:
    if duplicates:
        raise DuplicateIdError(
            f"unique id field {id_field!r} has ids {where}: {_shown(duplicates)}; ids must be unique "
            "across the whole dataset. Nothing was written; remove or rename those rows and retry"
        )


# ---------------------------------------------------------------------------------------- vectors


def check_embeddings(embeddings: Any, dim: int | None) -> np.ndarray:
    """A finite 2-D float32 matrix of width `dim` (any width when dim is None), or an error."""
    try:
        matrix = np.asarray(embeddings)
    except (ValueError, TypeError) as error:
        raise InvalidEmbeddingsError(f"embeddings cannot be read as an array ({error}); pass a 2-D numpy array") from None
    if matrix.ndim != 2:
        raise InvalidEmbeddingsError(
            f"embeddings must be 2-D (one row per datum), got shape {matrix.shape}; reshape, e.g. "
            "np.stack(vectors)"
        )
    if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
        raise InvalidEmbeddingsError(f"embeddings must be numbers, got dtype {matrix.dtype}; pass a float array")
    if matrix.shape[1] == 0:
        raise InvalidEmbeddingsError("embeddings have width 0; each vector needs at least one dimension")
    if dim is not None and matrix.shape[1] != dim:
        raise InvalidEmbeddingsError(
            f"embeddings have width {matrix.shape[1]} but this dataset's vectors have width {dim} (fixed "
            "by its first upload); use the same embedding model for every upload"
        )
    with np.errstate(over="ignore"):  # overflow becomes Inf, reported below with its rows
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        raise InvalidEmbeddingsError(
            f"embeddings contain NaN or Inf (after conversion to float32) in row(s) {_shown(rows.tolist())}; "
            "remove or fix those rows"
        )
    return matrix


def embedding_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """Rows of a float32 matrix as one fixed_size_list<float32>[dim] Arrow array (zero-copy)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def embedding_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The inverse of `embedding_array`: an (n, dim) float32 matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
