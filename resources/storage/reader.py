"""Reading a store: records, batches, tombstones and live rows. Readers take no lock: they open
only the files that the record they read names, and every such file is complete once named."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from atlas_assets.compute import tables
from atlas_assets.errors import DatasetNotFoundError, InvalidDataError, UnknownIdsError
from resources.storage.layout import RECORD_FILE, StoreLayout
from resources.storage.records import DatasetRecord


class StoreReader(StoreLayout):
    """The reading half of `DatasetStore`."""

    def find_dataset(self, organisation: str, slug: str) -> DatasetRecord | None:
        key = self.record_key(organisation, slug)
        try:
            data = self.files.read_bytes(key)
        except FileNotFoundError:
            return None
        return DatasetRecord.model_validate_json(data.decode("utf-8"))

    def read_record(self, organisation: str, slug: str) -> DatasetRecord:
        record = self.find_dataset(organisation, slug)
        if record is None:
            raise DatasetNotFoundError(
                f"dataset {organisation}/{slug} does not exist under {self.datasets_root}"
                f"{self.did_you_mean(organisation, slug)}; create it with "
                f"AtlasDataset('{organisation}/{slug}', unique_id_field=...)"
            )
        return record

    def did_you_mean(self, organisation: str, slug: str) -> str:
        """' (did you mean acme/news?)' when a dataset's name is close to this one, else ''."""
        known = [record.identifier for record in self.list_datasets()]
        wanted = f"{organisation}/{slug}"
        close = difflib.get_close_matches(wanted.lower(), [name.lower() for name in known], n=3, cutoff=0.6)
        close += [name for name in known if name.split("/")[-1].lower() == slug.lower() and name.lower() not in close]
        matches = [name for name in known if name.lower() in close]
        return f" (did you mean {' or '.join(matches)}?)" if matches else ""

    def list_datasets(self) -> list[DatasetRecord]:
        records = []
        files = self.files
        names = [
            (organisation, slug)
            for organisation in files.list_folders("datasets")
            if not organisation.startswith(".")
            for slug in files.list_folders(f"datasets/{organisation}")
            if not slug.startswith(".")
        ]
        for organisation, slug in sorted(names):
            try:
                data = files.read_bytes(f"datasets/{organisation}/{slug}/{RECORD_FILE}")
            except FileNotFoundError:  # no record (yet, or deleted since the listing): not a dataset
                continue
            records.append(DatasetRecord.model_validate_json(data.decode("utf-8")))
        return records

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        for record in self.list_datasets():
            if record.id == dataset_id:
                return record
        raise DatasetNotFoundError(
            f"no dataset has id {dataset_id!r} under {self.datasets_root}; list them with "
            "DatasetStore().list_datasets()"
        )

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
        return pq.read_table(self.files.parquet_source(self.batch_key(organisation, slug, batch_id)), columns=_list(columns))

    def read_blob(self, organisation: str, slug: str, blob_ref: str) -> bytes:
        """The stored bytes of a `_blob` reference (`<sha256>.<ext>`)."""
        return self.files.read_bytes(self.blob_key(organisation, slug, blob_ref))

    def blob_images(self, organisation: str, slug: str, blob_refs: Sequence[str]) -> Sequence[Any]:
        """What an image embedder reads for these blobs: their paths in a local store, else a
        sequence that reads each object's bytes when it is taken (one slice of images in memory)."""
        if self.is_local:
            return [self.blob_path(organisation, slug, ref) for ref in blob_refs]
        return _BlobBytes(self, organisation, slug, list(blob_refs))

    def deleted_row_ids(self, organisation: str, slug: str) -> pa.Array:
        """`_row_id`s of every deleted row (int64, sorted)."""
        return self._tombstones(self.read_record(organisation, slug), tables.ROW_ID)

    def deleted_ids(self, organisation: str, slug: str) -> pa.Array:
        """User ids (the unique_id_field values) of every deleted row."""
        record = self.read_record(organisation, slug)
        return self._tombstones(record, record.unique_id_field)

    def _tombstones(self, record: DatasetRecord, column: str | None) -> pa.Array:
        files = self.files
        parts = [
            pq.read_table(
                files.parquet_source(self.deletion_key(record.organisation, record.slug, deletion.deletion_id)),
                columns=[column],
            ).column(0)
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
        return self.scan(record, columns)

    def scan(
        self, record: DatasetRecord, columns: Sequence[str] | None, where: Any = None
    ) -> pa.Table:
        wanted = _list(columns)
        read_columns = None if wanted is None else list(dict.fromkeys([tables.ROW_ID, *wanted]))
        deleted = self._tombstones(record, tables.ROW_ID)
        files = self.files
        parts = []
        for batch in record.batches:
            part = pq.read_table(
                files.parquet_source(self.batch_key(record.organisation, record.slug, batch.batch_id)),
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
        return self.scan(record, [record.unique_id_field]).column(0)

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
        files = self.files
        parts = []
        for batch in record.batches:
            source = files.parquet_source(self.batch_key(record.organisation, record.slug, batch.batch_id))
            with pq.ParquetFile(source) as parquet:
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

def _unknown_message(record: DatasetRecord, unknown: list[Any], id_type: pa.DataType) -> str:
    shown = ", ".join(repr(value) for value in unknown[:10]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
    return (
        f"dataset {record.identifier} has no live datum with {record.unique_id_field} = {shown} "
        f"(ids are {id_type}); check the ids (deleted ids are gone)"
    )



class _BlobBytes(Sequence):
    """Blob bytes read from the store one slice at a time (image embedders take `images[a:b]`)."""

    def __init__(self, reader: StoreReader, organisation: str, slug: str, refs: list[str]) -> None:
        self.reader, self.organisation, self.slug, self.refs = reader, organisation, slug, refs

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self.reader.read_blob(self.organisation, self.slug, ref) for ref in self.refs[item]]
        return self.reader.read_blob(self.organisation, self.slug, self.refs[item])


def _list(columns: Sequence[str] | None) -> list[str] | None:
    return None if columns is None else list(columns)
