"""Writing one upload as one batch: validated chunk by chunk into a temp Parquet file, then committed
by replacing `dataset.json` (the caller holds the dataset's writer lock).

Order: the batch streams into a local temp file; the blobs are written; the batch is renamed into
place (a local store) or uploaded whole (an object store); the record is replaced last."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from atlas_assets.compute import tables
from atlas_assets.errors import (
    InvalidDataError,
    InvalidEmbeddingsError,
    StoreWriteError,
)
from resources.storage.blobs import PreparedBlob, prepare_blob, store_blob
from resources.storage.files import StoreFiles
from resources.storage.layout import file_mode, new_batch_id
from resources.storage.records import (
    BatchRecord,
    DatasetRecord,
    Modality,
    serialize_schema,
    utc_now,
)

if TYPE_CHECKING:  # the store module imports this one
    from resources.storage.store import DatasetStore

TableInput = Any  # pa.Table, pandas, polars, list of dicts, an iterable of pa.Tables, or None


class BatchWriter:
    """One add_batch call: validates chunk by chunk into a temp Parquet file, then commits."""

    def __init__(
        self,
        store: DatasetStore,
        record: DatasetRecord,
        embeddings: np.ndarray | None,
        blobs: Sequence[Any] | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.store = store
        self.record = record
        self.progress = progress
        self.files = store.files
        if embeddings is not None and blobs is not None:
            raise InvalidDataError(
                "add_data got both embeddings and blobs; a dataset holds either your vectors or images"
            )
        modality: Modality = "image" if blobs is not None else "embedding" if embeddings is not None else "text"
        if record.modality is not None and record.modality != modality:
            given = {"image": "blobs", "embedding": "embeddings", "text": "neither embeddings nor blobs"}
            raise InvalidDataError(
                f"dataset {record.identifier} is a {record.modality} dataset (fixed by its first upload) but "
                f"this upload has {given[modality]}; upload {record.modality} data or use another dataset"
            )
        self.modality = modality
        self.matrix = tables.check_embeddings(embeddings, record.embedding_dim) if embeddings is not None else None
        self.blobs: list[PreparedBlob] | None = None
        if blobs is not None:
            self.blobs = [prepare_blob(blob, row) for row, blob in enumerate(blobs)]
        self.schema: pa.Schema | None = record.schema
        self.id_field: str = record.unique_id_field or tables.GENERATED_ID_FIELD
        self.rows = 0
        self.id_parts: list[pa.ChunkedArray] = []
        self.dropped: dict[str, None] = {}

    def write(self, table: TableInput) -> BatchRecord:
        record = self.record
        batch_id = new_batch_id(record.batches[-1].batch_id if record.batches else None)
        final = self.store.batch_key(record.organisation, record.slug, batch_id)
        files = self.files
        # a local temp file either way: next to the batch in a local store (renamed into place), in the
        # system's temp folder for an object store (uploaded whole, then removed)
        temp = files.temp_path(final)
        new_blob_files: list[str] = []
        renamed = False
        try:
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode(record.is_public))
            with os.fdopen(descriptor, "wb") as handle:
                writer: pq.ParquetWriter | None = None
                try:
                    for chunk in self._chunks(table):
                        physical = self._prepare_chunk(chunk)
                        if writer is None:
                            writer = pq.ParquetWriter(handle, physical.schema, compression="zstd")
                        writer.write_table(physical)
                        self.rows += physical.num_rows
                        if self.progress is not None:
                            self.progress(physical.num_rows)
                finally:
                    if writer is not None:
                        writer.close()
                self._check_totals()
                handle.flush()
                os.fsync(handle.fileno())
            self._check_ids_against_dataset()
            for blob in self._unique_blobs():
                key = self.store.blob_key(record.organisation, record.slug, blob.ref)
                if store_blob(files, key, blob, file_mode(record.is_public)):
                    new_blob_files.append(key)
            renamed = True  # (set first: an upload that fails may still have left the object)
            files.commit_file(temp, final)
            batch = BatchRecord(batch_id=batch_id, rows=self.rows, created=utc_now(), first_row_id=record.next_row_id)
            updated = record.model_copy(deep=True)
            updated.batches.append(batch)
            updated.next_row_id = record.next_row_id + self.rows
            updated.modality = self.modality
            if self.schema is not None and record.arrow_schema is None:
                updated.arrow_schema = serialize_schema(self.schema)
            if self.matrix is not None:
                updated.embedding_dim = int(self.matrix.shape[1])
            self.store.write_record(updated)
        except BaseException as error:
            temp.unlink(missing_ok=True)
            # best effort: what is left (the store refusing deletes too) is named by no record, so
            # readers never open it and the next writer's orphan clean-up removes it
            for key in [final] if renamed else []:
                _delete_quietly(files, key)
            for key in new_blob_files:
                _delete_quietly(files, key)
            if isinstance(error, OSError):
                raise StoreWriteError(
                    f"writing a batch of {record.identifier} failed ({error}); nothing was committed, the "
                    "dataset is as before"
                ) from error
            raise
        if self.dropped:
            warnings.warn(
                f"fields not in the schema of {record.identifier} were dropped: {', '.join(self.dropped)} "
                "(the schema is frozen at the first upload)",
                UserWarning,
                stacklevel=3,
            )
        return batch

    def _chunks(self, table: TableInput) -> Iterator[pa.Table]:
        if table is None:
            count = len(self.matrix) if self.matrix is not None else len(self.blobs or [])
            if not self.record.ids_generated:
                raise InvalidDataError(
                    f"data is required: dataset {self.record.identifier} takes its ids from field "
                    f"{self.id_field!r}; pass data with that column"
                )
            yield pa.table({"_": pa.nulls(count)}).drop_columns(["_"])
            return
        yield from table

    def _prepare_chunk(self, chunk: pa.Table) -> pa.Table:
        """Names, types, ids of one chunk; adds _row_id, _embedding / _blob for its rows."""
        record = self.record
        tables.check_field_names(chunk.column_names)
        first_row = record.next_row_id + self.rows
        row_ids = pa.array(np.arange(first_row, first_row + chunk.num_rows, dtype=np.int64))
        if record.ids_generated:
            if self.id_field in chunk.column_names:
                raise InvalidDataError(
                    f"field {self.id_field!r} holds the generated ids of {record.identifier} (created without "
                    "unique_id_field); rename that column, or create the dataset with "
                    f"unique_id_field={self.id_field!r} to give your own ids"
                )
            chunk = chunk.append_column(self.id_field, pc.cast(row_ids, pa.string()))
        elif self.id_field not in chunk.column_names:
            raise InvalidDataError(
                f"the data has no column {self.id_field!r}, the unique_id_field of {record.identifier}; "
                f"add it (got {', '.join(chunk.column_names) or 'no columns'})"
            )
        if self.schema is None:
            converted, self.schema = tables.prepare_first_upload(chunk, self.id_field)
        else:
            converted, extra = tables.conform(chunk, self.schema)
            self.dropped.update(dict.fromkeys(extra))
        ids = converted.column(self.id_field)
        if not record.ids_generated:
            tables.check_ids(ids, self.id_field, row_offset=self.rows)
            self.id_parts.append(ids)
        physical = converted.add_column(0, tables.ROW_ID, row_ids)
        end = self.rows + chunk.num_rows
        if self.matrix is not None:
            if end > len(self.matrix):
                raise _count_mismatch("embeddings", len(self.matrix), f"at least {end}")
            physical = physical.append_column(tables.EMBEDDING, tables.embedding_array(self.matrix[self.rows : end]))
        if self.blobs is not None:
            if end > len(self.blobs):
                raise _count_mismatch("blobs", len(self.blobs), f"at least {end}")
            refs = pa.array([blob.ref for blob in self.blobs[self.rows : end]], pa.string())
            physical = physical.append_column(tables.BLOB, refs)
        return physical

    def check_counts(self, rows: int) -> None:
        """One vector / blob per datum, and at least one datum."""
        if rows == 0:
            raise InvalidDataError("add_data got no rows; pass at least one datum")
        if self.matrix is not None and len(self.matrix) != rows:
            raise _count_mismatch("embeddings", len(self.matrix), rows)
        if self.blobs is not None and len(self.blobs) != rows:
            raise _count_mismatch("blobs", len(self.blobs), rows)

    def _check_totals(self) -> None:
        self.check_counts(self.rows)

    def _check_ids_against_dataset(self) -> None:
        if self.record.ids_generated or not self.id_parts:
            return
        ids = pa.chunked_array(self.id_parts)
        tables.raise_duplicates(tables.find_duplicates(ids), self.id_field, "repeated within this upload")
        if not self.record.batches:
            return
        # Batch by batch, only the stored rows whose id is among the new ones are read.
        new_ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        clash = self.store.scan(self.record, [self.id_field], where=pc.field(self.id_field).isin(new_ids))
        tables.raise_duplicates(
            clash.column(0).to_pylist()[:6], self.id_field, "that are already in the dataset"
        )

    def _unique_blobs(self) -> list[PreparedBlob]:
        return list({blob.ref: blob for blob in self.blobs or []}.values())


def _delete_quietly(files: StoreFiles, key: str) -> None:
    try:
        files.delete(key)
    except Exception:  # noqa: BLE001, S110 - the error being raised is the one that matters
        pass


def _count_mismatch(what: str, given: int, expected: int | str) -> InvalidDataError:
    error_type = InvalidEmbeddingsError if what == "embeddings" else InvalidDataError
    return error_type(f"{what} has {given} rows but the data has {expected}; give exactly one per datum")

