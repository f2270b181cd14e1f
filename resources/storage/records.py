"""What `dataset.json` holds: the committed state of one dataset.

The record is the single source of truth. A batch, tombstone or index exists only once the record
that names it has been written (atomically, replacing the old file); files on disk that no record
names are orphans of an interrupted write and are ignored by readers.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

Modality = Literal["text", "embedding", "image"]


def utc_now() -> datetime:
    """Timestamps in records are timezone-aware UTC."""
    return datetime.now(UTC)


class _Record(BaseModel):
    # extra="ignore" lets an older reader open a record written by a newer version.
    model_config = ConfigDict(extra="ignore")


class BatchRecord(_Record):
    """One committed `add_data` call: `batches/<batch_id>.parquet` with `rows` rows.

    Its rows carry the consecutive `_row_id`s first_row_id .. first_row_id + rows - 1.
    """

    batch_id: str
    rows: int
    created: datetime
    first_row_id: int


class DeletionRecord(_Record):
    """One committed `delete_data` call: `deletions/<deletion_id>.parquet` lists `rows` row ids."""

    deletion_id: str
    rows: int
    created: datetime


class IndexRecord(_Record):
    """An index (map) of the dataset. Written by the pipeline's create_index; the store round-trips it."""

    id: str
    name: str
    asset_name: str
    indexed_field: str | None = None
    modality: str
    embedding_model: str | None = None
    reuse_embeddings_from_index: str | None = None
    projection: dict | None = None
    topic_model: dict | None = None
    duplicate_detection: dict | None = None
    created: datetime


class DatasetRecord(_Record):
    """Identity, settings and committed contents of one dataset."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    organisation: str
    slug: str
    name: str
    description: str = ""
    unique_id_field: str | None = None
    # True when the user gave no unique_id_field: the store fills `unique_id_field` ("id_") itself.
    ids_generated: bool = False
    is_public: bool = True
    modality: Modality | None = None
    arrow_schema: str | None = None
    embedding_dim: int | None = None
    created_timestamp: datetime = Field(default_factory=utc_now)
    next_row_id: int = 0
    batches: list[BatchRecord] = Field(default_factory=list)
    deletions: list[DeletionRecord] = Field(default_factory=list)
    indices: list[IndexRecord] = Field(default_factory=list)
    # (no access token here: the one token store is $ATLAS_HOME/web/tokens.json, mode 0600; an
    # `access_token` left by an older version is dropped the next time the record is written)

    @property
    def identifier(self) -> str:
        """`org/slug`, the name users and asset keys use."""
        return f"{self.organisation}/{self.slug}"

    @property
    def total_rows(self) -> int:
        """Rows ever committed, deleted ones included."""
        return sum(batch.rows for batch in self.batches)

    @property
    def total_deleted(self) -> int:
        return sum(deletion.rows for deletion in self.deletions)

    @property
    def total_datums(self) -> int:
        """Live rows: committed minus deleted (a row is deleted at most once)."""
        return self.total_rows - self.total_deleted

    @property
    def schema(self) -> pa.Schema | None:
        """The user fields' Arrow schema frozen at the first upload (None before it)."""
        return deserialize_schema(self.arrow_schema) if self.arrow_schema else None

    def batch(self, batch_id: str) -> BatchRecord | None:
        return next((batch for batch in self.batches if batch.batch_id == batch_id), None)

    def index(self, index_id: str) -> IndexRecord | None:
        return next((index for index in self.indices if index.id == index_id), None)

    def find_index(self, id_or_name: str) -> IndexRecord | None:
        """The index with this id, else the one with this name (how users name a reused index)."""
        return self.index(id_or_name) or next((index for index in self.indices if index.name == id_or_name), None)


def serialize_schema(schema: pa.Schema) -> str:
    """Arrow IPC bytes, base64: exact (types, timezones, dictionary index widths) and JSON-safe."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def deserialize_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


# ---------------------------------------------------------------------------------------- naming

def normalise_slug(name: str) -> str:
    """Atlas slug rules: NFD, lower case, spaces and `_` -> `-`, drop chars outside [a-z0-9-],
    collapse runs of `-`. (Exactly those steps; nothing else is stripped.)"""
    text = unicodedata.normalize("NFD", name).lower()
    text = text.replace(" ", "-").replace("_", "-")
    text = re.sub(r"[^a-z0-9-]", "", text)
    return re.sub(r"-+", "-", text)
