"""Turn whatever a user hands to `add_data` into Arrow tables that obey the Atlas rules.

Pure functions on Arrow and numpy (no files, no Dagster):

- `to_arrow` / `iter_arrow_chunks` (compute/table_input.py): pandas, polars, pyarrow or a list of dicts -> `pa.Table`
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

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The input conversions live in compute/table_input.py; they are named here too, beside the rules.
from atlas_assets.compute.table_input import count_rows as count_rows
from atlas_assets.compute.table_input import is_table_like as is_table_like
from atlas_assets.compute.table_input import is_utf8
from atlas_assets.compute.table_input import iter_arrow_chunks as iter_arrow_chunks
from atlas_assets.compute.table_input import to_arrow as to_arrow
from atlas_assets.errors import (
    SHOWN_IN_MESSAGES,
    DuplicateIdError,
    InvalidDataError,
    InvalidEmbeddingsError,
    SchemaMismatchError,
    shown,
)

RESERVED_PREFIX = "_"
ROW_ID = "_row_id"  # int64, consecutive per dataset, assigned by the store
EMBEDDING = "_embedding"  # fixed_size_list<float32>[dim]: the user's vectors
BLOB = "_blob"  # "<sha256>.<ext>": the image in blobs/
GENERATED_ID_FIELD = "id_"  # the id field of datasets created without unique_id_field (as in nomic)
MAX_ID_LENGTH = 36
TIMESTAMP = pa.timestamp("ms")
DICTIONARY = pa.dictionary(pa.int32(), pa.string())


# ---------------------------------------------------------------------------------------- names


def check_field_names(names: Iterable[str]) -> None:
    """Reserved `_` names and names equal ignoring case are errors (Atlas rules)."""
    names = list(names)
    empty = [name for name in names if not name or not name.strip()]
    if empty:
        raise InvalidDataError("a column has an empty name; give every column a name")
    unencodable = [name for name in names if not is_utf8(name)]
    if unencodable:
        raise InvalidDataError(
            f"field names must be valid Unicode text: {shown(unencodable)} holds a lone surrogate; fix its encoding"
        )
    reserved = [name for name in names if name.startswith(RESERVED_PREFIX)]
    if reserved:
        raise InvalidDataError(
            f"field names starting with '_' are reserved for Atlas: {shown(reserved)}; rename them "
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
            f"this upload lacks field(s) {shown(missing)} of the dataset's schema (frozen at the first "
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
            f"unique id field {id_field!r} is null in row(s) {shown(rows.tolist())}; every datum needs an id"
        )
    if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
        too_long = pc.greater(pc.utf8_length(ids), MAX_ID_LENGTH).to_numpy(zero_copy_only=False)
        if too_long.any():
            rows = np.flatnonzero(too_long)
            values = pc.take(ids, pa.array(rows[:SHOWN_IN_MESSAGES])).to_pylist()
            raise InvalidDataError(
                f"unique id field {id_field!r} has ids longer than {MAX_ID_LENGTH} characters in row(s) "
                f"{shown((rows + row_offset).tolist())} (e.g. {values[0]!r}); shorten them (a hash or "
                "a counter works)"
            )


def find_duplicates(ids: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Ids occurring more than once in `ids` (at most a few, for the message)."""
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))
    return repeated.field("values").to_pylist()[: SHOWN_IN_MESSAGES + 1] if len(repeated) else []


def raise_duplicates(duplicates: list[Any], id_field: str, where: str) -> None:
    if duplicates:
        raise DuplicateIdError(
            f"unique id field {id_field!r} has ids {where}: {shown(duplicates)}; ids must be unique "
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
            f"embeddings contain NaN or Inf (after conversion to float32) in row(s) {shown(rows.tolist())}; "
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
