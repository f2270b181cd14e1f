"""The on-disk dataset store: `$ATLAS_HOME/datasets/<org>/<slug>/`.

```
dataset.json                  the DatasetRecord (replaced atomically; the commit point of every change)
batches/<batch_id>.parquet    one file per add_data call: _row_id, the user fields, [_embedding | _blob]
blobs/<sha256>.<ext>          image bytes, content-addressed, stored once
deletions/<id>.parquet        tombstones: _row_id and the user id of deleted rows
indices/<index_id>/           index outputs (written by the pipeline's IO manager)
```

Order of every change, under the dataset's writer lock: write new files under temp names, rename them
to their final names, then replace `dataset.json`. A crash before that replace leaves files no record
names; readers never look at them (they list files through the record) and the next writer deletes
them. `DatasetStore` is a Dagster `ConfigurableResource` and equally a plain object:
`DatasetStore()` uses `$ATLAS_HOME`, `DatasetStore(root="/x")` another folder.
"""

from __future__ import annotations

import os
import re
import secrets
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from atlas_assets import config
from atlas_assets.compute import tables
from atlas_assets.errors import (
    DatasetNotFoundError,
    InvalidDataError,
    InvalidIdentifierError,
    StoreWriteError,
    UnknownIdsError,
)
from resources import locking
from resources.atomic import TEMP_PREFIX, fsync_dir, remove_tree_atomic, temp_path_for, write_bytes_atomic
from resources.blobs import PreparedBlob, prepare_blob, store_blob
from resources.records import (
    BatchRecord,
    DatasetRecord,
    DeletionRecord,
    Modality,
    normalise_slug,
    serialize_schema,
    utc_now,
)

RECORD_FILE = "dataset.json"
BATCHES = "batches"
BLOBS = "blobs"
DELETIONS = "deletions"
INDICES = "indices"
_BATCH_ID = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{6}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BLOB_REF = re.compile(r"^[0-9a-f]{64}\.[a-z]{3,4}$")
MAX_NAME_LENGTH = 128  # organisation, slug and index id: folder and lock names stay far below 255 bytes

TableInput = Any  # pa.Table, pandas, polars, list of dicts, an iterable of pa.Tables, or None
# Rows converted and validated at a time when add_batch is given a whole table.
CHUNK_ROWS = 50_000


def new_batch_id(after: str | None = None) -> str:
    """`YYYYmmddTHHMMSSffffff-xxxxxx` (UTC): sorts in upload order, a valid Dagster partition key.

    `after` is the previous id; the new one is made strictly greater even if the clock went back.
    """
    moment = datetime.now(UTC)
    if after and _BATCH_ID.match(after):
        previous = datetime.strptime(after[:21], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
        if moment <= previous:
            moment = previous + timedelta(microseconds=1)
    return f"{moment.strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(3)}"


def _check_name(value: str, what: str) -> str:
    if not value or not _SAFE_NAME.match(value):
        raise InvalidIdentifierError(
            f"{what} {value!r} is not usable; use letters, digits, '-', '_' or '.' (not starting with "
            "'.' or '-')"
        )
    if len(value) > MAX_NAME_LENGTH:
        # the name becomes a folder and a lock file name (255 bytes at most on common filesystems)
        raise InvalidIdentifierError(
            f"{what} {value[:20]}... is {len(value)} characters long; use at most {MAX_NAME_LENGTH}"
        )
    return value


class DatasetStore(dg.ConfigurableResource):
    """Datasets on a local folder: records, batches, blobs, tombstones, locks."""

    root: str = ""  # "" means config.atlas_home() (read at each call, so ATLAS_HOME changes apply)

    # ------------------------------------------------------------------------------ locations

    @property
    def home(self) -> Path:
        return Path(self.root).expanduser().absolute() if self.root else config.atlas_home()

    @property
    def datasets_root(self) -> Path:
        return self.home / "datasets"

    def dataset_dir(self, organisation: str, slug: str) -> Path:
        _check_name(organisation, "organisation")
        _check_name(slug, "dataset slug")
        return self.datasets_root / organisation / slug

    def _record_path(self, organisation: str, slug: str) -> Path:
        return self.dataset_dir(organisation, slug) / RECORD_FILE

    def batch_path(self, organisation: str, slug: str, batch_id: str) -> Path:
        return self.dataset_dir(organisation, slug) / BATCHES / f"{batch_id}.parquet"

    def blob_path(self, organisation: str, slug: str, blob_ref: str) -> Path:
        """The stored bytes of a `_blob` reference (`<sha256>.<ext>`)."""
        if not _BLOB_REF.match(blob_ref):
            raise InvalidDataError(f"{blob_ref!r} is not a blob reference (<sha256>.<ext>)")
        return self.dataset_dir(organisation, slug) / BLOBS / blob_ref

    def index_dir(self, organisation: str, slug: str, index_id: str) -> Path:
        """`indices/<index_id>/` of the dataset (not created here)."""
        return self.dataset_dir(organisation, slug) / INDICES / _check_name(index_id, "index id")

    def _lock_path(self, organisation: str, slug: str, kind: str) -> Path:
        _check_name(organisation, "organisation")
        _check_name(slug, "dataset slug")
        return self.home / "locks" / organisation / f"{slug}.{kind}.lock"

    # ------------------------------------------------------------------------------ locks

    @contextmanager
    def writer_lock(self, organisation: str, slug: str, timeout: float | None = None) -> Iterator[None]:
        """Serialises changes of one dataset across threads and processes (re-entrant per thread)."""
        with locking.hold(
            self._lock_path(organisation, slug, "writer"), timeout, "a write", f"{organisation}/{slug}"
        ):
            yield

    @contextmanager
    def indexing_lock(self, organisation: str, slug: str, timeout: float | None = None) -> Iterator[None]:
        """Held while the dataset's assets are materialised (taken before the writer lock, never after)."""
        with locking.hold(
            self._lock_path(organisation, slug, "indexing"), timeout, "indexing", f"{organisation}/{slug}"
        ):
            yield

    def is_locked(self, organisation: str, slug: str) -> bool:
        """True while anyone, in any process, holds the writer or the indexing lock."""
        return any(locking.is_held(path) for path in self._lock_paths(organisation, slug))

    def wait_until_unlocked(self, organisation: str, slug: str, timeout: float | None = None) -> None:
        """Block until neither lock is held (without taking them); DatasetLockedError after `timeout`."""
        locking.wait_until_free(self._lock_paths(organisation, slug), timeout, f"{organisation}/{slug}")

    def _lock_paths(self, organisation: str, slug: str) -> list[Path]:
        return [self._lock_path(organisation, slug, kind) for kind in ("writer", "indexing")]

    # ------------------------------------------------------------------------------ records

    def find_dataset(self, organisation: str, slug: str) -> DatasetRecord | None:
        path = self._record_path(organisation, slug)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return DatasetRecord.model_validate_json(text)

    def read_record(self, organisation: str, slug: str) -> DatasetRecord:
        record = self.find_dataset(organisation, slug)
        if record is None:
            raise DatasetNotFoundError(
                f"dataset {organisation}/{slug} does not exist under {self.datasets_root}; create it with "
                f"AtlasDataset('{organisation}/{slug}', unique_id_field=...)"
            )
        return record

    def list_datasets(self) -> list[DatasetRecord]:
        records = []
        if not self.datasets_root.is_dir():
            return records
        for path in sorted(self.datasets_root.glob(f"*/*/{RECORD_FILE}")):
            if path.parent.name.startswith(".") or path.parent.parent.name.startswith("."):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:  # deleted (renamed aside) since the listing: not a dataset any more
                continue
            records.append(DatasetRecord.model_validate_json(text))
        return records

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        for record in self.list_datasets():
            if record.id == dataset_id:
                return record
        raise DatasetNotFoundError(
            f"no dataset has id {dataset_id!r} under {self.datasets_root}; list them with "
            "DatasetStore().list_datasets()"
        )

    def _write_record(self, record: DatasetRecord) -> None:
        write_bytes_atomic(
            self._record_path(record.organisation, record.slug),
            record.model_dump_json(indent=2).encode("utf-8"),
        )

    def create_dataset(
        self,
        organisation: str,
        slug: str | None = None,
        *,
        name: str | None = None,
        description: str = "",
        unique_id_field: str | None = None,
        is_public: bool = True,
        exist_ok: bool = False,
    ) -> DatasetRecord:
        """Create `organisation/slug` (or `create_dataset("org/name")`); names are slug-normalised.

        unique_id_field None: the dataset's ids are generated by the store (field `id_`, the decimal
        row id as a string). With exist_ok the existing record is returned instead of an error.
        """
        if slug is None:
            if organisation.count("/") != 1:
                raise InvalidIdentifierError(f"{organisation!r} is not an 'org/name' identifier")
            organisation, slug = organisation.split("/")
        display_name = name if name is not None else slug
        organisation, slug = normalise_slug(organisation), normalise_slug(slug)
        _check_name(organisation, "organisation")
        _check_name(slug, "dataset slug")
        if unique_id_field is not None:
            tables.check_field_names([unique_id_field])
        with self.writer_lock(organisation, slug):
            existing = self.find_dataset(organisation, slug)
            if existing is not None:
                if exist_ok:
                    return existing
                raise InvalidIdentifierError(
                    f"dataset {organisation}/{slug} already exists; load it with "
                    f"AtlasDataset('{organisation}/{slug}') or choose another name"
                )
            record = DatasetRecord(
                organisation=organisation,
                slug=slug,
                name=display_name,
                description=description,
                unique_id_field=unique_id_field or tables.GENERATED_ID_FIELD,
                ids_generated=unique_id_field is None,
                is_public=is_public,
            )
            # Build the folder aside and rename it into place: it appears complete or not at all.
            final = self.dataset_dir(organisation, slug)
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = final.parent / f"{TEMP_PREFIX}new-{secrets.token_hex(6)}-{slug}"
            try:
                for sub in (BATCHES, BLOBS, DELETIONS, INDICES):
                    (staging / sub).mkdir(parents=True)
                write_bytes_atomic(staging / RECORD_FILE, record.model_dump_json(indent=2).encode("utf-8"))
                if final.exists():  # a folder without dataset.json: left by an interrupted delete
                    remove_tree_atomic(final, final.parent)
                os.replace(staging, final)
                fsync_dir(final.parent)
            except OSError as error:
                _remove_tree_quietly(staging)
                raise StoreWriteError(f"creating dataset {organisation}/{slug} failed ({error}); nothing was created") from error
            return record

    def update_record(
        self,
        organisation: str,
        slug: str,
        mutate: Callable[[DatasetRecord], DatasetRecord],
        timeout: float | None = None,
    ) -> DatasetRecord:
        """Read, change and replace dataset.json under the writer lock; returns the new record.

        `mutate` gets a private copy; it may not change id, organisation or slug.
        """
        with self.writer_lock(organisation, slug, timeout):
            current = self.read_record(organisation, slug)
            updated = mutate(current.model_copy(deep=True))
            if (updated.id, updated.organisation, updated.slug) != (current.id, current.organisation, current.slug):
                raise InvalidDataError("update_record may not change a dataset's id, organisation or slug")
            self._write_record(DatasetRecord.model_validate(updated.model_dump()))
            return updated

    def delete_dataset(self, organisation: str, slug: str, timeout: float | None = None) -> None:
        """Remove the dataset folder at once (rename aside, then delete); waits for indexing to end."""
        with self.indexing_lock(organisation, slug, timeout), self.writer_lock(organisation, slug, timeout):
            folder = self.dataset_dir(organisation, slug)
            if not (folder / RECORD_FILE).exists():
                raise DatasetNotFoundError(f"dataset {organisation}/{slug} does not exist; nothing to delete")
            remove_tree_atomic(folder, folder.parent)

    # ------------------------------------------------------------------------------ reading

    def batch_ids(self, organisation: str, slug: str) -> list[str]:
        """Committed batches in upload order."""
        return [batch.batch_id for batch in self.read_record(organisation, slug).batches]

    def read_batch(
        self, organisation: str, slug: str, batch_id: str, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """One committed batch as stored: `_row_id`, user fields, `_embedding`/`_blob`; deleted rows kept."""
        record = self.read_record(organisation, slug)
        if record.batch(batch_id) is None:
            raise InvalidDataError(
                f"dataset {record.identifier} has no committed batch {batch_id!r}; "
                f"batches: {', '.join(self.batch_ids(organisation, slug)) or 'none'}"
            )
        return pq.read_table(self.batch_path(organisation, slug, batch_id), columns=_list(columns))

    def deleted_row_ids(self, organisation: str, slug: str) -> pa.Array:
        """`_row_id`s of every deleted row (int64, sorted)."""
        return self._tombstones(self.read_record(organisation, slug), tables.ROW_ID)

    def deleted_ids(self, organisation: str, slug: str) -> pa.Array:
        """User ids (the unique_id_field values) of every deleted row."""
        record = self.read_record(organisation, slug)
        return self._tombstones(record, record.unique_id_field)

    def _tombstones(self, record: DatasetRecord, column: str | None) -> pa.Array:
        folder = self.dataset_dir(record.organisation, record.slug) / DELETIONS
        parts = [
            pq.read_table(folder / f"{deletion.deletion_id}.parquet", columns=[column]).column(0)
            for deletion in record.deletions
        ]
        if not parts:
            schema = record.schema
            kind = pa.int64() if column == tables.ROW_ID or schema is None else schema.field(column).type
            return pa.array([], kind)
        values = pa.chunked_array(parts).combine_chunks()
        return pc.take(values, pc.sort_indices(values))

    def read_rows(self, organisation: str, slug: str, columns: Sequence[str] | None = None) -> pa.Table:
        """Every live row (deletions applied) in upload order."""
        record = self.read_record(organisation, slug)
        return self._scan(record, columns)

    def _scan(
        self, record: DatasetRecord, columns: Sequence[str] | None, where: Any = None
    ) -> pa.Table:
        wanted = _list(columns)
        read_columns = None if wanted is None else list(dict.fromkeys([tables.ROW_ID, *wanted]))
        deleted = self._tombstones(record, tables.ROW_ID)
        parts = []
        for batch in record.batches:
            part = pq.read_table(
                self.batch_path(record.organisation, record.slug, batch.batch_id),
                columns=read_columns,
                filters=where,
            )
            if len(deleted):
                part = part.filter(pc.invert(pc.is_in(part.column(tables.ROW_ID), value_set=deleted)))
            parts.append(part)
        if not parts:
            return self._empty_table(record, wanted)
        table = pa.concat_tables(parts, promote_options="permissive")
        return table.select(wanted) if wanted is not None else table

    def _empty_table(self, record: DatasetRecord, columns: list[str] | None) -> pa.Table:
        schema = self.batch_schema(record)
        table = schema.empty_table()
        return table.select(columns) if columns is not None else table

    def batch_schema(self, record: DatasetRecord) -> pa.Schema:
        """The physical schema of the dataset's batch files."""
        fields = [pa.field(tables.ROW_ID, pa.int64())]
        if record.schema is not None:
            fields.extend(record.schema)
        elif record.unique_id_field:
            fields.append(pa.field(record.unique_id_field, pa.string()))
        if record.modality == "embedding" and record.embedding_dim:
            fields.append(pa.field(tables.EMBEDDING, pa.list_(pa.float32(), record.embedding_dim)))
        if record.modality == "image":
            fields.append(pa.field(tables.BLOB, pa.string()))
        return pa.schema(fields)

    def live_ids(self, organisation: str, slug: str) -> pa.ChunkedArray:
        """The unique_id_field values of every live row."""
        record = self.read_record(organisation, slug)
        return self._scan(record, [record.unique_id_field]).column(0)

    def find_rows(
        self, organisation: str, slug: str, ids: Sequence[Any], columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Live rows whose id is in `ids`, one per id in the order given; unknown ids -> UnknownIdsError."""
        record = self.read_record(organisation, slug)
        return self._find_rows(record, ids, columns)

    def _find_rows(self, record: DatasetRecord, ids: Sequence[Any], columns: Sequence[str] | None) -> pa.Table:
        id_field = record.unique_id_field
        requested = list(ids)
        if not requested:
            return self._empty_table(record, _list(columns))
        id_type = record.schema.field(id_field).type if record.schema is not None else pa.string()
        try:
            wanted = pc.cast(pa.array(requested), id_type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):  # ids Arrow cannot even hold
            raise UnknownIdsError(_unknown_message(record, requested, id_type)) from None
        if wanted.null_count:
            raise UnknownIdsError(_unknown_message(record, [None], id_type))
        wanted_columns = _list(columns)
        read = None if wanted_columns is None else list(dict.fromkeys([id_field, *wanted_columns]))
        found = self._rows_with_ids(record, pc.unique(wanted), read)
        positions = pc.index_in(wanted, value_set=found.column(id_field))
        missing = pc.is_null(positions).to_numpy(zero_copy_only=False)
        if missing.any():
            unknown = [requested[i] for i in np.flatnonzero(missing)]
            raise UnknownIdsError(_unknown_message(record, unknown, id_type))
        result = found.take(positions)
        return result.select(wanted_columns) if wanted_columns is not None else result

    def _rows_with_ids(self, record: DatasetRecord, wanted: pa.Array, columns: list[str] | None) -> pa.Table:
        """Live rows whose id is in `wanted`: reads the id column, then only the row groups holding hits.

        (A Parquet filter on the id cannot skip row groups, since ids are not sorted, and would
        decompress every column of every row.)
        """
        id_field = record.unique_id_field
        deleted = self._tombstones(record, tables.ROW_ID)
        parts = []
        for batch in record.batches:
            with pq.ParquetFile(self.batch_path(record.organisation, record.slug, batch.batch_id)) as parquet:
                keys = parquet.read(columns=[tables.ROW_ID, id_field])
                mask = pc.is_in(keys.column(id_field), value_set=wanted)
                if len(deleted):
                    mask = pc.and_(mask, pc.invert(pc.is_in(keys.column(tables.ROW_ID), value_set=deleted)))
                hits = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
                if hits.size == 0:
                    continue
                sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
                starts = np.concatenate([[0], np.cumsum(sizes)])
                group_of_hit = np.searchsorted(starts, hits, side="right") - 1
                groups = np.unique(group_of_hit)
                selected_starts = np.concatenate([[0], np.cumsum([sizes[g] for g in groups])])
                local = hits - starts[group_of_hit] + selected_starts[np.searchsorted(groups, group_of_hit)]
                table = parquet.read_row_groups(groups.tolist(), columns=columns)
                parts.append(table.take(pa.array(local)))
        if not parts:
            return self._empty_table(record, columns)
        return pa.concat_tables(parts, promote_options="permissive")

    # ------------------------------------------------------------------------------ writing

    def add_batch(
        self,
        organisation: str,
        slug: str,
        table: TableInput,
        embeddings: np.ndarray | None = None,
        blobs: Sequence[Any] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        lock_timeout: float | None = None,
        rows: int | None = None,
    ) -> BatchRecord:
        """Validate and commit one upload as one batch (all or nothing); returns its record.

        `table` is any add_data input (pa.Table, pandas, polars, list of dicts), or an iterable of
        pa.Tables (consecutive row chunks, so a large upload streams with bounded memory), or None for
        generated-id datasets given only embeddings/blobs.
        `progress(n)` is called after each chunk. `rows` (known for a pa.Table) lets the counts of
        embeddings and blobs be checked before any work. Rules: see `atlas_assets.compute.tables`.
        """
        if tables.is_table_like(table):
            rows = tables.count_rows(table)
            table = tables.iter_arrow_chunks(table, CHUNK_ROWS)
        with self.writer_lock(organisation, slug, lock_timeout):
            record = self.read_record(organisation, slug)
            self._clean_orphans(record)
            writer = _BatchWriter(self, record, embeddings, blobs, progress)
            if rows is not None:
                writer.check_counts(rows)
            return writer.write(table)

    def delete_ids(self, organisation: str, slug: str, ids: Sequence[Any], lock_timeout: float | None = None) -> int:
        """Tombstone the live rows with these user ids (all known, or nothing happens); returns how many."""
        with self.writer_lock(organisation, slug, lock_timeout):
            record = self.read_record(organisation, slug)
            self._clean_orphans(record)
            id_field = record.unique_id_field
            try:
                unique = list(dict.fromkeys(ids))
            except TypeError:
                unhashable = [value for value in ids if not isinstance(value, (str, int, float, type(None)))]
                raise UnknownIdsError(
                    f"ids must be single values of {id_field!r}, got {unhashable[:3]!r}; pass a flat list of ids"
                ) from None
            if not unique:
                return 0
            rows = self._find_rows(record, unique, [tables.ROW_ID, id_field])
            deletion_id = new_batch_id(record.deletions[-1].deletion_id if record.deletions else None)
            target = self.dataset_dir(organisation, slug) / DELETIONS / f"{deletion_id}.parquet"
            try:
                _write_parquet_atomic(target, rows)
                record.deletions.append(DeletionRecord(deletion_id=deletion_id, rows=rows.num_rows, created=utc_now()))
                self._write_record(record)
            except OSError as error:
                target.unlink(missing_ok=True)
                raise StoreWriteError(f"deleting rows of {record.identifier} failed ({error}); nothing was deleted") from error
            return rows.num_rows

    def _clean_orphans(self, record: DatasetRecord) -> None:
        """Delete files an interrupted writer left behind (the writer lock is held)."""
        folder = self.dataset_dir(record.organisation, record.slug)
        keep = {
            BATCHES: {f"{batch.batch_id}.parquet" for batch in record.batches},
            DELETIONS: {f"{deletion.deletion_id}.parquet" for deletion in record.deletions},
        }
        for sub, names in keep.items():
            for path in (folder / sub).glob("*"):
                if path.is_file() and path.name not in names:
                    path.unlink(missing_ok=True)
        for path in folder.glob(f"{TEMP_PREFIX}*"):
            if path.is_file():
                path.unlink(missing_ok=True)
        for path in (folder / BLOBS).glob(f"{TEMP_PREFIX}*"):
            path.unlink(missing_ok=True)


class _BatchWriter:
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
        self.folder = store.dataset_dir(record.organisation, record.slug)
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
        final = self.folder / BATCHES / f"{batch_id}.parquet"
        temp = temp_path_for(final)
        new_blob_files: list[Path] = []
        renamed = False
        try:
            with open(temp, "wb") as handle:
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
                if store_blob(self.folder / BLOBS, blob):
                    new_blob_files.append(self.folder / BLOBS / blob.ref)
            os.replace(temp, final)
            renamed = True
            fsync_dir(final.parent)
            batch = BatchRecord(batch_id=batch_id, rows=self.rows, created=utc_now(), first_row_id=record.next_row_id)
            updated = record.model_copy(deep=True)
            updated.batches.append(batch)
            updated.next_row_id = record.next_row_id + self.rows
            updated.modality = self.modality
            if self.schema is not None and record.arrow_schema is None:
                updated.arrow_schema = serialize_schema(self.schema)
            if self.matrix is not None:
                updated.embedding_dim = int(self.matrix.shape[1])
            self.store._write_record(updated)
        except BaseException as error:
            temp.unlink(missing_ok=True)
            if renamed:
                final.unlink(missing_ok=True)
            for path in new_blob_files:
                path.unlink(missing_ok=True)
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
        clash = self.store._scan(self.record, [self.id_field], where=pc.field(self.id_field).isin(new_ids))
        tables.raise_duplicates(
            clash.column(0).to_pylist()[:6], self.id_field, "that are already in the dataset"
        )

    def _unique_blobs(self) -> list[PreparedBlob]:
        return list({blob.ref: blob for blob in self.blobs or []}.values())


def _count_mismatch(what: str, given: int, expected: int | str) -> InvalidDataError:
    error_type = InvalidDataError
    if what == "embeddings":
        from atlas_assets.errors import InvalidEmbeddingsError

        error_type = InvalidEmbeddingsError
    return error_type(f"{what} has {given} rows but the data has {expected}; give exactly one per datum")


def _unknown_message(record: DatasetRecord, unknown: list[Any], id_type: pa.DataType) -> str:
    shown = ", ".join(repr(value) for value in unknown[:10]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
    return (
        f"dataset {record.identifier} has no live datum with {record.unique_id_field} = {shown} "
        f"(ids are {id_type}); check the ids (deleted ids are gone)"
    )


def _write_parquet_atomic(target: Path, table: pa.Table) -> None:
    temp = temp_path_for(target)
    try:
        with open(temp, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def _remove_tree_quietly(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _list(columns: Sequence[str] | None) -> list[str] | None:
    return None if columns is None else list(columns)
