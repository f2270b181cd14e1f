"""The `nomic.data_inference` import path: the option models of `create_index` under both clients'
names (`NomicProjectOptions` of nomic 3.1.3, `ProjectionOptions` of the newest 3.x), and nomic's
schema helper `convert_pyarrow_schema_for_atlas` (the Arrow types an upload is stored as)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from atlas_assets.client.options import (
    NomicDuplicatesOptions,
    NomicEmbedOptions,
    NomicProjectOptions,
    NomicTopicOptions,
    ProjectionOptions,
)
from atlas_assets.errors import InvalidDataError

__all__ = [
    "NomicDuplicatesOptions",
    "NomicEmbedOptions",
    "NomicProjectOptions",
    "NomicTopicOptions",
    "ProjectionOptions",
    "convert_pyarrow_schema_for_atlas",
    "from_list",
    "permitted_types",
]

permitted_types = {
    "integer": pa.int32(),
    "float": pa.float32(),
    "date": pa.timestamp("ms"),
    "string": pa.string(),
    "categorical": pa.string(),
}


def from_list(values: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    return pa.Table.from_pylist(values, schema=schema)


def convert_pyarrow_schema_for_atlas(schema: pa.Schema) -> pa.Schema:
    """The schema an upload with this schema is checked against, as nomic converts it: integers ->
    int32, floats -> float32, dates -> timestamp[ms], strings and categoricals -> string; `_embeddings`
    and `_blob_hash` kept; bool, list and struct fields and other `_` names refused."""
    types: dict[str, pa.DataType] = {}
    kept: dict[str, pa.DataType] = {}
    for field in schema:
        kind = field.type
        if field.name.startswith("_"):
            if field.name not in ("_embeddings", "_blob_hash"):
                raise InvalidDataError(f"Underscore fields are reserved for Atlas internal use: {field.name}")
            kept[field.name] = kind
        elif pa.types.is_boolean(kind) or pa.types.is_list(kind) or pa.types.is_struct(kind):
            raise InvalidDataError(f"{kind} fields are not supported: {field.name}; convert it to text or numbers")
        elif pa.types.is_dictionary(kind):
            types[field.name] = permitted_types["categorical"]
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            types[field.name] = permitted_types["string"]
        elif pa.types.is_integer(kind):
            types[field.name] = permitted_types["integer"]
        elif pa.types.is_floating(kind):
            types[field.name] = permitted_types["float"]
        elif pa.types.is_temporal(kind):
            types[field.name] = permitted_types["date"]
        else:
            raise InvalidDataError(f"Unknown type: {field.name} {kind}")
    return pa.schema({**types, **kept})
