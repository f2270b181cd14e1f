"""`projection`: the 2-D map position of every live row, laid out from the neighbour graph.

On an update old rows keep their places and only new rows are placed among their neighbours
(`layout.update_layout`), unless the map changed too much (STABLE_UPDATE_MAX_CHANGE) or a rebuild is
asked for (run config `rebuild: true`, see RebuildConfig). The UI gets a thumbnail of the map
(coloured by the last depth-1 topics) and a link to the interactive map page.

Check `every_live_row_placed` (blocking): every live row has a finite position.
"""

from collections.abc import MutableMapping
from dataclasses import asdict

import dagster as dg
import numpy as np
import pyarrow as pa

from atlas_assets.compute import layout
from atlas_assets.compute.arrays import positions_of
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.config import map_link
from atlas_assets.pipeline.assets.common import (
    FOLLOW_UPSTREAM,
    QUALITY_SAMPLE,
    ROW_ID,
    DatasetStore,
    RebuildConfig,
    StageOutput,
    Timer,
    free_memory_of_earlier_steps,
    graph_from_output,
    index_args,
    live_row_ids,
    live_vectors,
    plain,
)
from atlas_assets.pipeline.pictures import map_thumbnail, png_markdown
from atlas_assets.pipeline.spec import IndexSpec
from resources.kernel_cache import enable_layout_kernel_cache

CHECK = "every_live_row_placed"
# Above this share of changed rows (new + deleted, as in knn.extend_graph) the map is laid out
# afresh: holding old points still would distort a map that changed this much.
STABLE_UPDATE_MAX_CHANGE = 0.2


def projection_asset(spec: IndexSpec) -> dg.AssetsDefinition:
    link = map_link(spec.organisation, spec.slug, spec.index.id)

    @dg.asset(
        key=spec.key("projection"),
        ins={
            "neighbour_graph": dg.AssetIn(key=spec.key("neighbour_graph")),
            "embeddings": dg.AssetIn(key=spec.key("embeddings")),
        },
        kinds={"numba"},
        description="2-D map position of every live row (old rows keep their places on updates).",
        check_specs=[dg.AssetCheckSpec(CHECK, asset=spec.key("projection"), blocking=True)],
        automation_condition=FOLLOW_UPSTREAM,
        **index_args(spec),
    )
    def projection(
        context: dg.AssetExecutionContext,
        config: RebuildConfig,
        store: dg.ResourceParam[DatasetStore],
        neighbour_graph: StageOutput,
        embeddings: dict[str, StageOutput],
    ):
        free_memory_of_earlier_steps()
        previous = spec.outputs.read("projection")
        output, metadata = build_projection(spec, neighbour_graph, embeddings, previous, config.rebuild)
        row_ids = output.table[ROW_ID].to_numpy()
        xy = np.column_stack([output.table["x"].to_numpy(), output.table["y"].to_numpy()])
        topics = spec.outputs.read("topics", columns=[ROW_ID, "topic_id_depth_1"])
        codes = _depth_one_codes(topics, row_ids) if topics else None
        # Rows added or deleted while this run worked are the next update's business: the check
        # covers the live rows committed before the graph's newest row.
        live_ids = live_row_ids(store, spec)
        if len(row_ids):
            live_ids = live_ids[live_ids <= row_ids.max()]
        yield dg.Output(
            output,
            metadata={
                "dagster/row_count": metadata.pop("rows"),
                **metadata,
                "map": dg.MetadataValue.md(png_markdown(map_thumbnail(xy, codes), "map thumbnail")),
                "map_link": dg.MetadataValue.url(link),
            },
        )
        placed = int(np.isin(live_ids, row_ids[np.isfinite(xy).all(axis=1)]).sum())
        yield dg.AssetCheckResult(
            check_name=CHECK,
            passed=placed == len(live_ids),
            metadata={"live_rows": len(live_ids), "placed_rows": placed},
        )

    return projection


def build_projection(
    spec: IndexSpec,
    graph_output: StageOutput,
    embeddings: MutableMapping[str, StageOutput],
    previous: StageOutput | None,
    rebuild: bool,
) -> tuple[StageOutput, dict]:
    """The map (`embeddings` is emptied as the vectors are gathered: see live_vectors)."""
    timer = Timer()
    enable_layout_kernel_cache()  # the layout's kernels only: pynndescent is the graph stage's
    row_ids, graph = graph_from_output(graph_output)
    params = layout.resolve_layout_params(spec.layout_options, len(row_ids))
    mode = "full"
    if previous is not None and not rebuild:
        positions = positions_of(previous.table[ROW_ID].to_numpy(), row_ids)
        kept = positions >= 0
        changed = (len(row_ids) - kept.sum()) + (previous.table.num_rows - kept.sum())
        if kept.any() and changed <= STABLE_UPDATE_MAX_CHANGE * len(row_ids):
            old_xy = np.column_stack([previous.table["x"].to_numpy(), previous.table["y"].to_numpy()])
            initial = np.full((len(row_ids), 2), np.nan, dtype=np.float32)
            initial[kept] = old_xy[positions[kept]]
            with _blas_single_threaded():
                xy = layout.update_layout(graph, initial, params)
            mode = "stable update"
            extent = float(np.ptp(initial[kept], axis=0).max()) or 1.0
            moved = float(np.linalg.norm(xy[kept] - initial[kept], axis=1).mean()) / extent
    if mode == "full":
        # The vectors set the starting map (their principal axes), or, when the start comes from the
        # graph, place its separate pieces by their centroids. The embedding tables are taken out of
        # the input as they are copied, and the matrix is dropped once it has given the start: the
        # SGD, most of the stage's time, holds neither (2 GB at 1M x 256).
        vectors = live_vectors(embeddings, row_ids, consume=True)
        with _blas_single_threaded():
            start = layout.vector_start(vectors, params, 0, graph.metric == "cosine")
            if start is not None:
                vectors = None
            xy = layout.compute_layout(graph, params, progress=True, vectors=vectors, start=start)
    table = pa.table(
        {ROW_ID: pa.array(row_ids, pa.int64()), "x": pa.array(xy[:, 0], pa.float32()), "y": pa.array(xy[:, 1], pa.float32())}
    )
    metadata = {
        "rows": len(row_ids),
        "mode": mode,
        "np_at_15_sample": round(map_preservation(graph, xy), 4),
        "n_neighbors": int(params.n_neighbors),
        "n_epochs": int(params.n_epochs),
        "min_dist": float(params.min_dist),
        "spread": float(params.spread),
        "seconds": timer.seconds,
    }
    if mode == "stable update":
        metadata["old_points_mean_shift_of_extent"] = round(moved, 5)
    return StageOutput(table, {"mode": mode, "params": {k: plain(v) for k, v in asdict(params).items()}}), metadata


def _blas_single_threaded():
    """BLAS on one thread for the layout: its BLAS work is small (a 384 x 384 eigh for the PCA start,
    thin products), where OpenBLAS's spinning threads only fight numba's and other processes for
    the cores: the eigh took 5.4 s instead of 0.03 s in a create_index under load 8 on 2 cores."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def map_preservation(graph: NeighbourGraph, xy: np.ndarray, k: int = 15, seed: int = 0) -> float:
    """NP@k with the graph standing in for the exact neighbours: share of each sampled row's
    graph neighbours that are also among its k nearest points on the map."""
    from scipy.spatial import cKDTree

    k = min(k, graph.k, len(xy) - 1)
    if k < 1:
        return 1.0
    rows = np.random.default_rng(seed).choice(len(xy), size=min(QUALITY_SAMPLE, len(xy)), replace=False)
    _, on_map = cKDTree(xy).query(xy[rows], k=k + 1)
    shares = [
        np.intersect1d(graph.neighbour_indices[row, :k], found[found != row][:k]).size / k
        for row, found in zip(rows, on_map)
    ]
    return float(np.mean(shares))


def _depth_one_codes(topics: StageOutput, row_ids: np.ndarray) -> np.ndarray:
    """Each row's depth-1 topic in the last topics output (-1 for rows new since), for the thumbnail."""
    positions = positions_of(topics.table[ROW_ID].to_numpy(), row_ids)
    topic_ids = topics.table["topic_id_depth_1"].to_numpy()
    return np.where(positions >= 0, topic_ids[np.maximum(positions, 0)], -1)
