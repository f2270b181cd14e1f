"""The store as a Dagster resource: a thin wrapper that hands the assets the plain storage engine.

Assets and sensors declare `store: dg.ResourceParam[DatasetStore]` and get a `DatasetStore`. The
code location uses `store_resource` (its `root` is configurable in the Dagster UI's launchpad);
in-process runs may pass a `DatasetStore` directly. (Dagster 1.13 exports no public Pythonic
resource whose value is another object, so this is a function resource.)
"""

from __future__ import annotations

import dagster as dg

from resources.storage import DatasetStore


@dg.resource(
    config_schema={
        "root": dg.Field(
            str, default_value="", description="store folder or URI (s3://...); empty: ATLAS_STORE_URI, else ATLAS_HOME"
        )
    },
    description="The dataset store (batches, records, blobs, tombstones) under ATLAS_STORE_URI, ATLAS_HOME or `root`.",
)
def store_resource(context: dg.InitResourceContext) -> DatasetStore:
    return DatasetStore(context.resource_config["root"] or None)
