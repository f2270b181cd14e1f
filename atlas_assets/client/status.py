"""What a dataset holds and what of it its maps do not show yet.

The store's record says what was committed (batches, deletions, indices); the index outputs say what
the pipeline has written. Comparing the two tells `atlas status` (and `atlas demo`, before deciding
whether to update) what is stale, without asking Dagster: the files are the truth the maps read.

- a batch is *not embedded* for an index when its `embeddings/<batch>.parquet` is missing;
- rows are *not in the map* when they are live but absent from the neighbour graph (the graph is the
  row set every later stage works on), and *deletions are not applied* when the graph still holds
  rows that were deleted since;
- a stage is *missing* when its output file does not exist (never built, or switched off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atlas_assets.compute.tables import ROW_ID
from atlas_assets.config import map_link
from atlas_assets.pipeline.spec import IndexSpec
from resources.storage.records import DatasetRecord, IndexRecord
from resources.storage import DatasetStore


@dataclass(frozen=True)
class IndexStatus:
    """Freshness of one index (map) against the dataset's committed state."""

    index_id: str
    name: str
    indexed_field: str | None
    modality: str
    embedding_model: str | None
    map_link: str
    stages_enabled: list[str]
    stages_missing: list[str]
    batches_not_embedded: list[str]
    rows_in_map: int
    rows_not_in_map: int
    deleted_rows_still_in_map: int

    @property
    def is_stale(self) -> bool:
        """True when update_indices would change something."""
        return bool(
            self.stages_missing or self.batches_not_embedded or self.rows_not_in_map or self.deleted_rows_still_in_map
        )

    def problems(self) -> list[str]:
        """What is out of date, in words (empty when the map is current)."""
        found = []
        if self.batches_not_embedded:
            found.append(f"{len(self.batches_not_embedded)} batch(es) not embedded")
        if self.rows_not_in_map:
            found.append(f"{self.rows_not_in_map} row(s) not in the map")
        if self.deleted_rows_still_in_map:
            found.append(f"{self.deleted_rows_still_in_map} deletion(s) not applied")
        if self.stages_missing:
            found.append("not built: " + ", ".join(self.stages_missing))
        return found


@dataclass(frozen=True)
class DatasetStatus:
    identifier: str
    modality: str | None
    rows: int
    rows_deleted: int
    batches: int
    fields: list[str]
    indices: list[IndexStatus] = field(default_factory=list)

    @property
    def is_stale(self) -> bool:
        return any(index.is_stale for index in self.indices)


def index_status(record: DatasetRecord, index: IndexRecord, live: np.ndarray) -> IndexStatus:
    """Compare one index's outputs with the committed batches and the live rows (sorted `_row_id`s)."""
    spec = IndexSpec.of(record, index)
    enabled, outputs = list(spec.enabled_stages), spec.outputs
    not_embedded = outputs.missing_batches(batch.batch_id for batch in record.batches)
    missing = [stage for stage in enabled if stage != "embeddings" and not outputs.exists(stage)]
    graph = outputs.read("neighbour_graph", columns=[ROW_ID])
    in_graph = np.sort(graph.table[ROW_ID].to_numpy()) if graph is not None else np.array([], dtype=np.int64)
    rows_not_in_map = int((~np.isin(live, in_graph, assume_unique=True)).sum())
    deleted_in_map = int((~np.isin(in_graph, live, assume_unique=True)).sum())
    return IndexStatus(
        index_id=index.id,
        name=index.name,
        indexed_field=index.indexed_field,
        modality=index.modality,
        embedding_model=index.embedding_model,
        map_link=map_link(record.organisation, record.slug, index.id),
        stages_enabled=enabled,
        stages_missing=missing,
        batches_not_embedded=not_embedded,
        rows_in_map=int(len(in_graph) - deleted_in_map),
        rows_not_in_map=rows_not_in_map,
        deleted_rows_still_in_map=deleted_in_map,
    )


def dataset_status(store: DatasetStore, organisation: str, slug: str) -> DatasetStatus:
    """Rows, batches, and the freshness of every index of one dataset."""
    record = store.read_record(organisation, slug)
    live = np.array([], dtype=np.int64)
    if record.batches:
        live = np.sort(store.read_rows(organisation, slug, columns=[ROW_ID])[ROW_ID].to_numpy())
    schema = record.schema
    return DatasetStatus(
        identifier=record.identifier,
        modality=record.modality,
        rows=record.total_datums,
        rows_deleted=record.total_deleted,
        batches=len(record.batches),
        fields=[name for name in (schema.names if schema is not None else []) if not name.startswith("_")],
        indices=[index_status(record, index, live) for index in record.indices],
    )


def all_statuses(store: DatasetStore | None = None) -> list[DatasetStatus]:
    """The status of every dataset in the store."""
    store = store or DatasetStore()
    return [dataset_status(store, record.organisation, record.slug) for record in store.list_datasets()]


def format_status(status: DatasetStatus, detailed: bool = True) -> str:
    """Human-readable lines for `atlas status`."""
    lines = [
        f"{status.identifier}: {status.rows:,} rows ({status.modality or 'no data yet'}), "
        f"{status.batches} batch(es), {status.rows_deleted:,} deleted, {len(status.indices)} map(s)"
    ]
    if detailed and status.fields:
        lines.append(f"  fields: {', '.join(status.fields)}")
    for index in status.indices:
        problems = index.problems()
        state = "up to date" if not problems else "STALE: " + "; ".join(problems)
        source = index.indexed_field or index.modality
        lines.append(f"  map {index.name!r} on {source} ({index.rows_in_map:,} rows): {state}")
        if detailed:
            lines.append(f"    {index.map_link}")
    if status.is_stale:
        lines.append(f"  fix: atlas update {status.identifier}")
    return "\n".join(lines)
