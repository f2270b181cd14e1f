"""What every stage of an index shares: the row key, loading the live rows and the embeddings,
reading a graph or a map back from a stage output, and the definition arguments of its assets.

Every stage keys its rows by `_row_id` (assigned by the store, increasing in upload order), and works
on the live rows (deletions applied) sorted by it. Incremental stages map the previous output onto
the current rows by `_row_id`: -1 (or NaN) marks a row that is new since.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import dagster as dg
import numpy as np
import pyarrow.compute as pc
from pydantic import Field

from atlas_assets.compute.arrays import arrow_to_matrix, positions_of, vectors_in_order
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.compute.tables import ROW_ID
from atlas_assets.errors import InvalidDataError
from atlas_assets.pipeline.naming import DatasetNames
from atlas_assets.pipeline.spec import IndexSpec
from resources.embedder import clear_embedder_cache
from resources.index_outputs import StageOutput
from resources.io_manager import OUTPUT_DIR_KEY
from resources.process_memory import release_freed_memory
from resources.storage import (
    DatasetStore,  # the one import of the store's class in the pipeline's assets
)

__all__ = [
    "FOLLOW_UPSTREAM",
    "ROW_ID",
    "DatasetStore",
    "RebuildConfig",
    "StageOutput",
    "Timer",
    "dataset_args",
    "graph_from_output",
    "index_args",
    "live_row_ids",
    "live_vectors",
    "plain",
    "rebuild_run_config",
    "rows_embedded_so_far",
    "xy_from_output",
]

# Rows sampled for the cheap quality figures shown in the Dagster UI.
QUALITY_SAMPLE = 500
# Every index stage runs when its inputs changed (the automation sensor evaluates this).
FOLLOW_UPSTREAM = dg.AutomationCondition.eager()


class RebuildConfig(dg.Config):
    """Run config of `projection` and `topics` (set by update_indices, the nightly schedule, or by
    hand in the launchpad)."""

    rebuild: bool = Field(
        default=False, description="Build afresh instead of updating (old rows otherwise keep their places / topics)."
    )


def rebuild_run_config(assets: list[dg.AssetsDefinition]) -> dict[str, Any]:
    """Run config asking each of these `projection` / `topics` assets to rebuild ({} for none)."""
    if not assets:
        return {}
    return {"ops": {asset.op.name: {"config": {"rebuild": True}} for asset in assets}}


class Timer:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)


# --- definition arguments ----------------------------------------------------------------------


def dataset_args(names: DatasetNames) -> dict[str, Any]:
    """Group and tags every asset of a dataset carries."""
    organisation, slug = names.prefix
    return {"group_name": names.group, "tags": {"atlas/organisation": organisation[:63], "atlas/dataset": slug[:63]}}


def index_args(spec: IndexSpec) -> dict[str, Any]:
    """`dataset_args` plus the metadata every asset of an index carries (where the IO manager writes)."""
    index = spec.index
    metadata = {OUTPUT_DIR_KEY: spec.outputs.relative_dir, "atlas/index_id": index.id, "atlas/index_name": index.name}
    return {**dataset_args(spec.names), "metadata": metadata}


# --- loading -----------------------------------------------------------------------------------


def live_row_ids(store: DatasetStore, spec: IndexSpec) -> np.ndarray:
    rows = store.read_rows(spec.organisation, spec.slug, columns=[ROW_ID])
    return np.sort(rows[ROW_ID].to_numpy())


def rows_embedded_so_far(embeddings: Mapping[str, StageOutput], row_ids: np.ndarray) -> np.ndarray:
    """Live rows up to the newest embedded one.

    Rows committed while a run works (add_data does not wait for indexing) come after every row of
    the batches this run embedded: they wait for the next update instead of failing the run. An
    older row without an embedding still fails loudly in `live_vectors`.
    """
    newest = [int(pc.max(output.table[ROW_ID]).as_py()) for output in embeddings.values() if output.table.num_rows]
    return row_ids[row_ids <= max(newest)] if newest else row_ids


def live_vectors(
    embeddings: Mapping[str, StageOutput] | MutableMapping[str, StageOutput], row_ids: np.ndarray, consume: bool = False
) -> np.ndarray:
    """The embedding of each live row, in `row_ids` order; fails loudly when one is missing.

    Filled table by table into one matrix (`vectors_in_order`): it holds the vectors twice (the
    tables the IO manager loaded, and the matrix), not three times.

    consume: take each batch out of `embeddings` once its rows are copied, so its Arrow table is
    freed then and not held beside the matrix for the rest of the stage (a stage's inputs are its
    own: the IO manager loads them for each step). At 1M x 256 that is 1 GB less through the
    graph search, the layout and the topics.
    """

    def tables():
        for key in list(embeddings):
            yield (embeddings.pop(key) if consume else embeddings[key]).table  # type: ignore[attr-defined]

    vectors, filled = vectors_in_order(tables(), row_ids, ROW_ID, "embedding")
    if vectors is None:
        raise InvalidDataError("the dataset has no rows to index; add data with add_data first")
    if consume:
        # pyarrow's pool keeps freed pages: reading 1M x 256 embeddings from Parquet allocates ~2.9 GB
        # at its peak and the process kept ~3.1 GB resident through the whole stage; released: 1.2 GB.
        release_freed_memory()
    if not filled.all():
        missing = row_ids[~filled][:5].tolist()
        raise InvalidDataError(f"rows {missing} have no embedding yet; run update_indices to embed new batches")
    return vectors


def free_memory_of_earlier_steps() -> None:
    """Called first by every map stage: what earlier steps of this process left goes back to the system.

    The embedding models (~175 MiB and their arena for the default): a map stage starts after every
    `embeddings` step of its run, and topic naming or a search that needs a model again rebuilds its
    session in 0.1-0.3 s. And the freed pages Arrow's pool and glibc keep
    (resources/process_memory.py). Together, on a 50,000-row map: 1,887 -> 1,170 MiB peak with the
    other changes of docs/scaling.md "Peak memory".
    """
    clear_embedder_cache()
    release_freed_memory()


def graph_from_output(output: StageOutput) -> tuple[np.ndarray, NeighbourGraph]:
    """The row ids and the graph of a `neighbour_graph` output."""
    table = output.table
    graph = NeighbourGraph(
        neighbour_indices=arrow_to_matrix(table["neighbour_indices"], np.int64),
        neighbour_distances=arrow_to_matrix(table["neighbour_distances"], np.float32),
        metric=output.side_data.get("metric", "cosine"),
    )
    return table[ROW_ID].to_numpy(), graph


def xy_from_output(output: StageOutput, row_ids: np.ndarray) -> np.ndarray:
    """The map position of each of `row_ids`, from a `projection` output."""
    positions = positions_of(output.table[ROW_ID].to_numpy(), row_ids)
    if (positions < 0).any():
        raise InvalidDataError("the projection does not cover every row; materialise projection again")
    xy = np.column_stack([output.table["x"].to_numpy(), output.table["y"].to_numpy()])
    return xy[positions].astype(np.float32)


def plain(value: object) -> object:
    """A JSON-ready value (numpy scalars become Python numbers)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
