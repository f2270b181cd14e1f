"""Where the asset outputs of an index live, and how one is written and read atomically.

Layout, below a base that is a local folder (default: ATLAS_HOME) or any fsspec URI:

    datasets/<org>/<slug>/indices/<index_id>/<stage>.parquet            unpartitioned stages
    datasets/<org>/<slug>/indices/<index_id>/<stage>/<batch_id>.parquet  per-batch stages

The IO manager and the client accessors both go through this module, so they cannot disagree on
a path. Small structured side data (topic metadata, parameters) rides in the Parquet file's
key-value metadata, so one file is one atomic unit.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from atlas_assets.config import atlas_home

OUTPUTS_URI_ENV = "ATLAS_OUTPUTS_URI"
SIDE_DATA_KEY = b"atlas.side_data"


def outputs_base(uri: str | None = None) -> UPath:
    """The base every index output lives under: `uri`, else $ATLAS_OUTPUTS_URI, else ATLAS_HOME."""
    chosen = uri or os.environ.get(OUTPUTS_URI_ENV) or str(atlas_home())
    return UPath(chosen)


def index_output_dir(organisation: str, slug: str, index_id: str) -> str:
    """The relative folder of one index's outputs (relative to `outputs_base`)."""
    return f"datasets/{organisation}/{slug}/indices/{index_id}"


def stage_path(base: UPath, relative_dir: str, stage: str, partition: str | None = None) -> UPath:
    folder = base.joinpath(*relative_dir.split("/"))
    if partition is None:
        return folder / f"{stage}.parquet"
    return folder / stage / f"{partition}.parquet"


def write_table(path: UPath, table: pa.Table, side_data: dict[str, Any] | None = None) -> None:
    """Write `table` (and optional JSON side data) so readers see the old file or the new one."""
    if side_data is not None:
        existing = table.schema.metadata or {}
        table = table.replace_schema_metadata(
            {**existing, SIDE_DATA_KEY: json.dumps(side_data).encode()}
        )
    if path.protocol in ("", "file", "local"):
        local = Path(path.path)
        local.parent.mkdir(parents=True, exist_ok=True)
        temporary = local.with_name(f".{local.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as handle:
                pq.write_table(table, handle, compression="zstd")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, local)
        finally:
            temporary.unlink(missing_ok=True)
    else:
        # An object store PUT is atomic: readers see the old object or the new one.
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            pq.write_table(table, handle, compression="zstd")


def read_table(path: UPath, columns: list[str] | None = None) -> pa.Table:
    with path.open("rb") as handle:
        return pq.read_table(handle, columns=columns)


def read_side_data(path: UPath) -> dict[str, Any]:
    with path.open("rb") as handle:
        metadata = pq.read_schema(handle).metadata or {}
    raw = metadata.get(SIDE_DATA_KEY)
    return json.loads(raw) if raw else {}


def strip_side_data(table: pa.Table) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    metadata.pop(SIDE_DATA_KEY, None)
    return table.replace_schema_metadata(metadata or None)
