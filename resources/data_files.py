"""Reading data files users drop in the inbox or pass to `atlas ingest`: CSV, Parquet, JSON Lines."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from atlas_assets.errors import InvalidDataError

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def is_data_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in READERS and not path.name.startswith(".")


def _text_columns(schema: pa.Schema | None) -> dict[str, pa.DataType]:
    """Fields frozen as text stay text in a CSV (ids like "007" must not become integers)."""
    if schema is None:
        return {}
    return {
        field.name: pa.string()
        for field in schema
        if pa.types.is_string(field.type)
        or pa.types.is_large_string(field.type)
        or pa.types.is_dictionary(field.type)
    }


def read_data_file(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    """The file as an Arrow table; an unreadable file is an InvalidDataError naming the file and why.

    `schema` (the dataset's frozen one, when it exists) keeps text columns of a CSV as text.
    """
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise InvalidDataError(
            f"{path.name}: unsupported file type {path.suffix!r}; use .csv, .parquet or .jsonl"
        )
    try:
        if kind == "csv":
            options = pa_csv.ConvertOptions(column_types=_text_columns(schema))
            return pa_csv.read_csv(path, convert_options=options)
        if kind == "parquet":
            return pq.read_table(path)
        return pa_json.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as error:
        raise InvalidDataError(f"{path.name}: cannot be read as {kind}: {error}") from None
