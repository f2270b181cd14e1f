"""`IndexOutputs`: the one owner of an index's outputs (where they live, reading, writing, versions).

Layout, below a base that is a local folder (default: ATLAS_HOME) or any fsspec URI
(`$ATLAS_OUTPUTS_URI`, e.g. `s3://bucket/atlas`; unset, the store's own `$ATLAS_STORE_URI`):

    datasets/<org>/<slug>/indices/<index_id>/<stage>.parquet             unpartitioned stages
    datasets/<org>/<slug>/indices/<index_id>/<stage>/<batch_id>.parquet   per-batch stages (embeddings)

The IO manager, the pipeline, status, the client accessors and the map read model all go through
this module, so none of them builds a path or reads a file its own way. Small structured side data
(topic metadata, parameters) rides in the Parquet file's key-value metadata, so one file is one
atomic unit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from atlas_assets.config import outputs_uri
from resources.atomic import atomic_writer
from resources.parquet_vectors import decode_vector_columns, encode_vector_columns
from resources.write_errors import object_write_error

SIDE_DATA_KEY = b"atlas.side_data"
EMBEDDINGS = "embeddings"
# The stages a map is drawn from; their files' stamps make the map's version.
MAP_STAGES = ("neighbour_graph", "projection", "topics", "duplicates")


@dataclass(frozen=True)
class StageOutput:
    """A stage's table plus small JSON side data (parameters, topic metadata) stored with it."""

    table: pa.Table
    side_data: dict[str, Any] = field(default_factory=dict)


def outputs_base(uri: str | None = None) -> UPath:
    """The base every index output lives under: `uri`, else $ATLAS_OUTPUTS_URI, else the store's
    root ($ATLAS_STORE_URI, else ATLAS_HOME; see `atlas_assets.config.outputs_uri`)."""
    return UPath(uri or outputs_uri())


def is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def write_output(path: UPath, output: StageOutput) -> None:
    """Write a stage output so readers see the old file or the new one, never a half.

    Local files go through the one atomic-write helper (temp file, fsync, rename, fsync the folder).
    Remote ones are made whole in memory first and then uploaded in one call: an object store shows
    an object only once its PUT (or, past 100 MB on S3, its CompleteMultipartUpload) has succeeded.
    Never a buffered `path.open("wb")`: its `__exit__` closes the file, which uploads whatever was
    written so far when the writing failed half way, a truncated object under the final key.
    """
    table = encode_vector_columns(output.table)
    if output.side_data:
        metadata = {**(table.schema.metadata or {}), SIDE_DATA_KEY: json.dumps(output.side_data).encode()}
        table = table.replace_schema_metadata(metadata)
    if is_local(path):
        with atomic_writer(Path(path.path)) as handle:
            pq.write_table(table, handle, compression="zstd")
        return
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # a no-op on object stores; real folders elsewhere
        path.fs.pipe_file(path.path, data.to_pybytes())
    except Exception as error:  # noqa: BLE001 - each fsspec backend raises its own kinds (OSError, botocore, aiohttp)
        raise object_write_error(
            str(path), data.size, error, "the previous output there, if any, is unchanged",
            "retry (dataset.update_indices() or re-execute the run)",
        ) from None


def read_output(path: UPath, columns: list[str] | None = None) -> StageOutput:
    """A stage output as written: the table (side data taken out of its schema) and the side data.

    Arrow only ever gets memory it owns: a local file by its OS path, a remote one as its bytes copied
    into an Arrow buffer. Never a Python file object: Arrow then wraps every chunk it reads in a
    Python-owned buffer, and its scan is torn down on an Arrow pool thread *after* read_table has
    returned; if that thread has to take the GIL to drop such a buffer while the interpreter is
    finalising, CPython ends the thread with pthread_exit inside a C++ destructor and libstdc++
    aborts the whole process ("terminate called without an active exception", exit 134) after the
    program has finished (docs/reliability.md, "Exit status").
    """
    # Pages streamed through a 1 MiB buffer, not a whole column chunk read ahead (about the size of
    # the column again at the peak).
    read = {"columns": columns, "buffer_size": 1 << 20, "pre_buffer": False}
    if is_local(path):
        table = pq.read_table(path.path, **read)
    else:
        with path.open("rb") as handle:
            sink = pa.BufferOutputStream()
            sink.write(handle.read())
        table = pq.read_table(pa.BufferReader(sink.getvalue()), **read)
    table = decode_vector_columns(table)
    metadata = dict(table.schema.metadata or {})
    raw = metadata.pop(SIDE_DATA_KEY, None)
    return StageOutput(table.replace_schema_metadata(metadata or None), json.loads(raw) if raw else {})


# Object stores tell a rewrite by one of these (S3: LastModified and ETag; memory://: created).
_REMOTE_STAMP_KEYS = ("ETag", "LastModified", "mtime", "created")


def file_stamp(path: UPath) -> tuple | None:
    """(size, modification stamp) of a file, None when it does not exist."""
    try:
        if is_local(path):
            info = os.stat(path.path)
            return info.st_size, info.st_mtime_ns
        path.fs.invalidate_cache(path.path)  # see embedded_batches: ask the store, not a cached listing
        details = path.fs.info(path.path)
    except (FileNotFoundError, OSError):
        return None
    return details.get("size"), tuple(str(details.get(key)) for key in _REMOTE_STAMP_KEYS)


class IndexOutputs:
    """Every output of one index: `read`, `write`, which batches are embedded, and a version stamp."""

    def __init__(self, organisation: str, slug: str, index_id: str, base: str | UPath | None = None) -> None:
        self.organisation = organisation
        self.slug = slug
        self.index_id = index_id
        self.base = base if isinstance(base, UPath) else outputs_base(base)

    def __repr__(self) -> str:
        return f"IndexOutputs({self.folder})"

    @property
    def relative_dir(self) -> str:
        """The folder relative to the base (the IO manager's `atlas/output_dir` metadata)."""
        return f"datasets/{self.organisation}/{self.slug}/indices/{self.index_id}"

    @property
    def folder(self) -> UPath:
        return self.base.joinpath(*self.relative_dir.split("/"))

    def path(self, stage: str, batch_id: str | None = None) -> UPath:
        if batch_id is None:
            return self.folder / f"{stage}.parquet"
        return self.folder / stage / f"{batch_id}.parquet"

    def exists(self, stage: str, batch_id: str | None = None) -> bool:
        return self.path(stage, batch_id).exists()

    def read(self, stage: str, columns: list[str] | None = None, batch_id: str | None = None) -> StageOutput | None:
        """The stage's last output, None when it was never built (or was switched off)."""
        path = self.path(stage, batch_id)
        try:
            return read_output(path, columns)
        except FileNotFoundError:
            return None

    def write(self, stage: str, output: StageOutput, batch_id: str | None = None) -> None:
        write_output(self.path(stage, batch_id), output)

    def missing_batches(self, batch_ids: Iterable[str]) -> list[str]:
        """The batches (in the order given) whose embeddings are not written yet."""
        embedded = set(self.embedded_batches())
        return [batch_id for batch_id in batch_ids if batch_id not in embedded]

    def embedded_batches(self) -> list[str]:
        """Every batch whose embeddings are written (one listing of the folder)."""
        folder = self.folder / EMBEDDINGS
        # fsspec keeps every listing of an object store for the life of the process; a long-lived one
        # (atlas serve, the daemon's code server) would never see batches another process embedded
        folder.fs.invalidate_cache(folder.path)
        try:
            names = [path.name for path in folder.iterdir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(name[: -len(".parquet")] for name in names if name.endswith(".parquet") and not name.startswith("."))

    def read_embeddings(self, batch_ids: Iterable[str], columns: list[str] | None = None) -> dict[str, StageOutput]:
        """The embeddings of the given batches that are written, by batch id."""
        found = {}
        for batch_id in batch_ids:
            output = self.read(EMBEDDINGS, columns, batch_id)
            if output is not None:
                found[batch_id] = output
        return found

    def version(self, stages: Iterable[str] = MAP_STAGES) -> tuple:
        """A stamp that changes whenever one of these outputs is rewritten (size and time of each file)."""
        return tuple((stage, file_stamp(self.path(stage))) for stage in stages)

    def delete(self) -> None:
        """Remove every output of the index (used when its dataset is deleted)."""
        folder = self.folder
        if folder.exists():
            folder.fs.rm(folder.path, recursive=True)

