"""`raw_data`: the rows of one upload batch as committed by the store (one partition per batch).

Shared by every index of the dataset: each index's `embeddings` of a batch reads this partition.
Its metadata (kept in the Dagster instance, shown to anyone who opens the Dagster UI) is the row
count and the columns; a public dataset's also shows its first rows, a private one's never does.
"""

import dagster as dg
import pyarrow as pa

from atlas_assets.pipeline.assets.common import DatasetStore, dataset_args
from atlas_assets.pipeline.naming import DatasetNames
from resources.storage.records import DatasetRecord

PREVIEW_ROWS = 5
PREVIEW_CHARACTERS = 120


def raw_data_asset(record: DatasetRecord, batches: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    organisation, slug = record.organisation, record.slug
    names = DatasetNames(organisation, slug)

    @dg.asset(
        key=names.raw_data,
        partitions_def=batches,
        kinds={"parquet"},
        description=f"Rows of {organisation}/{slug} as uploaded, one partition per add_data call.",
        **dataset_args(names),
    )
    def raw_data(context: dg.AssetExecutionContext, store: dg.ResourceParam[DatasetStore]) -> dg.MaterializeResult:
        batch = store.read_batch(organisation, slug, context.partition_key)
        return dg.MaterializeResult(metadata=batch_metadata(batch, with_preview=record.is_public))

    return raw_data


def batch_metadata(batch: pa.Table, *, with_preview: bool = True) -> dict:
    """Row count, the user's columns and their types, and (with_preview: public datasets only) the
    first rows (internal columns hidden)."""
    metadata = {
        "dagster/row_count": batch.num_rows,
        "columns": dg.MetadataValue.json(
            {field.name: str(field.type) for field in batch.schema if not field.name.startswith("_")}
        ),
    }
    if with_preview:
        preview = batch.slice(0, PREVIEW_ROWS).drop_columns([c for c in batch.column_names if c.startswith("_")])
        preview_rows = [{k: str(v)[:PREVIEW_CHARACTERS] for k, v in row.items()} for row in preview.to_pylist()]
        metadata["preview"] = dg.MetadataValue.json(preview_rows)
    return metadata
