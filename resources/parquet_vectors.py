"""How vector columns (Arrow fixed_size_list of numbers: embeddings, neighbour lists) are stored in
Parquet: as fixed-size binary, one value of `width * item size` bytes per row, put back on reading.

Why: Parquet has no fixed-size list. A fixed_size_list column is written as a nested list, and
reading one back decodes a repetition and a definition level for every number and builds list
offsets before the cast to fixed-size lists. Measured on 50,000 x 384 float32 embeddings (73 MiB):
reading the nested column took 0.18 s and peaked at +411 MiB resident; the binary column takes
0.04-0.09 s and +79 MiB, the matrix itself. Every map stage reads the embeddings, so that
transient was part of every stage's peak.

The schema metadata key `atlas.vector_columns` names the columns stored this way with their value
type and width; a file without it (written before this encoding) is read as it is. Columns with
nulls at either level are left nested (a binary value has no place for a null inside a vector).
"""

from __future__ import annotations

import json

import pyarrow as pa

VECTOR_COLUMNS_KEY = b"atlas.vector_columns"


def _encodable(column: pa.ChunkedArray) -> bool:
    kind = column.type
    if not pa.types.is_fixed_size_list(kind):
        return False
    value_type = kind.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        return False
    return column.null_count == 0 and all(chunk.flatten().null_count == 0 for chunk in column.chunks)


def _to_binary(chunk: pa.FixedSizeListArray) -> pa.FixedSizeBinaryArray:
    width = chunk.type.list_size
    item_bytes = chunk.type.value_type.bit_width // 8
    values = chunk.flatten()  # the chunk's own rows, its slice offset applied
    if values.offset % width:  # a slice that does not start on a row of the buffer: one copy
        values = pa.concat_arrays([values])
    data = values.buffers()[1]
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width * item_bytes), len(chunk), [None, data], offset=values.offset // width
    )


def _to_lists(chunk: pa.FixedSizeBinaryArray, value_type: pa.DataType, width: int) -> pa.FixedSizeListArray:
    data = chunk.buffers()[1]
    values = pa.Array.from_buffers(value_type, len(chunk) * width, [None, data], offset=chunk.offset * width)
    return pa.FixedSizeListArray.from_arrays(values, width)


def encode_vector_columns(table: pa.Table) -> pa.Table:
    """The table with each null-free numeric fixed_size_list column as fixed-size binary (no copy)."""
    encoded: dict[str, list] = {}
    for position, name in enumerate(table.column_names):
        column = table.column(position)
        if not _encodable(column):
            continue
        binary = pa.chunked_array([_to_binary(chunk) for chunk in column.chunks],
                                  type=pa.binary(column.type.list_size * column.type.value_type.bit_width // 8))
        table = table.set_column(position, pa.field(name, binary.type, nullable=False), binary)
        encoded[name] = [str(column.type.value_type), column.type.list_size]
    if not encoded:
        return table
    metadata = {**(table.schema.metadata or {}), VECTOR_COLUMNS_KEY: json.dumps(encoded).encode()}
    return table.replace_schema_metadata(metadata)


def decode_vector_columns(table: pa.Table) -> pa.Table:
    """The inverse of `encode_vector_columns` for the columns present (no copy); the key is dropped."""
    metadata = dict(table.schema.metadata or {})
    raw = metadata.pop(VECTOR_COLUMNS_KEY, None)
    if raw is None:
        return table
    for name, (type_name, width) in json.loads(raw).items():
        if name not in table.column_names:
            continue
        position = table.column_names.index(name)
        value_type = pa.type_for_alias(type_name)
        lists = pa.chunked_array([_to_lists(chunk, value_type, width) for chunk in table.column(position).chunks],
                                 type=pa.list_(value_type, width))
        table = table.set_column(position, pa.field(name, lists.type), lists)
    return table.replace_schema_metadata(metadata or None)
