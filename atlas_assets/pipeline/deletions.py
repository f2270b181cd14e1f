"""Deleted rows, in Dagster's terms: each dataset has a `deletions` asset (external: the store writes
it, `delete_data` reports it), upstream of every index's neighbour graph. A deletion is a new
materialisation of it, so the graph and everything below show as stale in the UI, and the automation
sensor (AutomationCondition.eager) rebuilds them, exactly as it does for new batches.
"""

from __future__ import annotations

import dagster as dg

from atlas_assets.pipeline.assets.common import dataset_args
from atlas_assets.pipeline.naming import DatasetNames
from resources.storage.records import DatasetRecord

LATEST_DELETION_KEY = "latest_deletion_id"


def deletions_asset(record: DatasetRecord) -> dg.AssetsDefinition:
    names = DatasetNames(record.organisation, record.slug)
    spec = dg.AssetSpec(
        names.deletions,
        description=f"Rows deleted from {record.identifier} (delete_data); the maps drop them on their next build.",
        kinds={"parquet"},
        **dataset_args(names),
    )
    return dg.AssetsDefinition(specs=[spec])  # no compute of its own: delete_data reports it


def report_deletions(instance: dg.DagsterInstance, record: DatasetRecord) -> bool:
    """Report the dataset's deletions as a materialisation of its `deletions` asset, unless the
    latest one reported already is its latest deletion. Returns whether it reported.

    Called by delete_data (so the UI and the automation see the deletion at once) and before every
    in-process build (so a dataset that never deleted a row has the asset materialised too: an eager
    asset waits for upstream assets that were never materialised)."""
    names = DatasetNames(record.organisation, record.slug)
    latest = record.deletions[-1].deletion_id if record.deletions else "none"
    event = instance.get_latest_materialization_event(names.deletions)
    reported = event.asset_materialization.metadata.get(LATEST_DELETION_KEY) if event and event.asset_materialization else None
    if reported is not None and reported.value == latest:
        return False
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            names.deletions,
            description=f"{len(record.deletions)} delete_data call(s) so far",
            metadata={
                LATEST_DELETION_KEY: latest,
                "rows_deleted": record.total_deleted,
                "live_rows": record.total_datums,
            },
        )
    )
    return True
