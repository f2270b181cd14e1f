"""The asset family of a dataset: `raw_data` per batch, `deletions` (external: reported by
delete_data), and per index `embeddings` (per batch), `neighbour_graph`, `projection`, `topics` and
`duplicates` (over all batches).

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
from atlas_assets.pipeline.assets.static_table import static_table_asset
from atlas_assets.pipeline.assets.topics import topics_asset
from atlas_assets.pipeline.deletions import deletions_asset
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
    """Every asset (with its checks) of one dataset and all of its indices, and the dataset's two
    jobs, so every run (from Python, the CLI, a sensor or the UI) is named by its dataset and can be
    re-executed from the UI: `<org>__<slug>__embed_batch` (one batch's raw_data and embeddings) and
    `<org>__<slug>__build_maps` (graph, map, topics and duplicates of every index)."""
    names = DatasetNames(record.organisation, record.slug)
    batches = batches_partitions(record)
    assets = [raw_data_asset(record, batches), deletions_asset(record)]
    for index in record.indices:
        spec = IndexSpec.of(record, index)
        if spec.fits_static_table:  # upstream of its embeddings: one fitted token table per index
            assets.append(static_table_asset(spec))
        assets.extend(STAGE_ASSETS[stage](spec, batches) for stage in spec.enabled_stages)
    executable = [asset for asset in assets if asset.is_executable]
    per_batch = [asset.key for asset in executable if asset.partitions_def is not None]
    over_all = [asset.key for asset in executable if asset.partitions_def is None]
    jobs = [
        dg.define_asset_job(
            names.embed_job, selection=dg.AssetSelection.assets(*per_batch),
            tags=dataset_tags(record), description=f"Reads and embeds one upload batch of {record.identifier}.",
        )
    ]
    if over_all:
        jobs.append(
            dg.define_asset_job(
                names.build_job, selection=dg.AssetSelection.assets(*over_all), tags=dataset_tags(record),
                description=f"Builds the maps of {record.identifier}: graph, layout, topics, duplicates.",
            )
        )
    return dg.Definitions(assets=assets, jobs=jobs)


DATASET_TAG = "atlas/dataset"
"""Run tag naming the dataset (`org/slug`): the Runs page filters on it."""
TRIGGER_TAG = "atlas/trigger"
"""Run tag saying what started a run: create_index, update_indices, cli, inbox, automation, schedule."""


def dataset_tags(record: DatasetRecord) -> dict[str, str]:
    return {DATASET_TAG: record.identifier}
