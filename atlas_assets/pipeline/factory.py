"""The asset family of a dataset: `raw_data` per batch, and per index `embeddings` (per batch),
`neighbour_graph`, `projection`, `topics` and `duplicates` (over all batches).

`build_dataset_definitions(record)` is called for every dataset in the store's registry when the code
location loads (see `atlas_assets.definitions`) and by the runner for in-process runs. Each stage is
defined in its own module of `atlas_assets.pipeline.assets`; an index gets the stages its spec enables.
"""

from collections.abc import Callable

import dagster as dg

from atlas_assets.pipeline.assets.duplicates import duplicates_asset
from atlas_assets.pipeline.assets.embeddings import embeddings_asset
from atlas_assets.pipeline.assets.neighbour_graph import neighbour_graph_asset
from atlas_assets.pipeline.assets.projection import projection_asset
from atlas_assets.pipeline.assets.raw_data import raw_data_asset
from atlas_assets.pipeline.assets.topics import topics_asset
from atlas_assets.pipeline.naming import DatasetNames
from atlas_assets.pipeline.spec import IndexSpec
from resources.storage.records import DatasetRecord

StageBuilder = Callable[[IndexSpec, dg.DynamicPartitionsDefinition], dg.AssetsDefinition]

STAGE_ASSETS: dict[str, StageBuilder] = {
    "embeddings": embeddings_asset,
    "neighbour_graph": lambda spec, batches: neighbour_graph_asset(spec),
    "projection": lambda spec, batches: projection_asset(spec),
    "topics": lambda spec, batches: topics_asset(spec),
    "duplicates": lambda spec, batches: duplicates_asset(spec),
}


def batches_partitions(record: DatasetRecord) -> dg.DynamicPartitionsDefinition:
    """The dataset's partitions: one key per upload batch, shared by raw_data and every embeddings."""
    return dg.DynamicPartitionsDefinition(name=DatasetNames(record.organisation, record.slug).partitions)


def build_dataset_definitions(record: DatasetRecord) -> dg.Definitions:
    """Every asset (with its checks) of one dataset and all of its indices."""
    batches = batches_partitions(record)
    assets = [raw_data_asset(record, batches)]
    for index in record.indices:
        spec = IndexSpec.of(record, index)
        assets.extend(STAGE_ASSETS[stage](spec, batches) for stage in spec.enabled_stages)
    return dg.Definitions(assets=assets)
