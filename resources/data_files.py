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


def read_data_file(path: Path) -> pa.Table:
    """The file as an Arrow table; an unreadable file is an InvalidDataError naming the file and why."""
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise InvalidDataError(
            f"{path.name}: unsupported file type {path.suffix!r}; use .csv, .parquet or .jsonl"
        )
    try:
        if kind == "csv":
            # Ids and codes keep their leading zeros: let the dataset schema decide the types later.
            return pa_csv.read_csv(path)
        if kind == "parquet":
            return pq.read_table(path)
        return pa_json.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as error:
        raise InvalidDataError(f"{path.name}: cannot be read as {kind}: {error}") from None
