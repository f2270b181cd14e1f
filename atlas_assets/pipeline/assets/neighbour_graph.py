"""`neighbour_graph`: the k nearest neighbours of every live row (deleted rows excluded), over all
batches; the map, the topics and the duplicates are all read off it.

Updated in place when the previous graph has the same k and metric (`knn.extend_graph` decides
between an update and a rebuild by how much changed), built afresh otherwise.
"""

from collections.abc import MutableMapping

import dagster as dg
import numpy as np
import pyarrow as pa

from atlas_assets.compute import knn, layout, quality
from atlas_assets.compute.arrays import matrix_to_arrow, positions_of
from atlas_assets.pipeline.assets.common import (
    FOLLOW_UPSTREAM,
    QUALITY_SAMPLE,
    ROW_ID,
    DatasetStore,
    StageOutput,
    Timer,
    free_memory_of_earlier_steps,
    graph_from_output,
    index_args,
    live_row_ids,
    live_vectors,
    rows_embedded_so_far,
)
from atlas_assets.pipeline.spec import IndexSpec
from resources.kernel_cache import enable_pynndescent_kernel_cache

MIN_GRAPH_K = 15
METRIC = "cosine"


def neighbour_graph_asset(spec: IndexSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.key("neighbour_graph"),
        ins={"embeddings": dg.AssetIn(key=spec.key("embeddings"))},
        deps=[spec.names.deletions],  # a deletion makes the graph (and all below it) stale
        kinds={"pynndescent"},
        description="k nearest neighbours of every live row (deleted rows excluded), shared by every later stage.",
        automation_condition=FOLLOW_UPSTREAM,
        **index_args(spec),
    )
    def neighbour_graph(
        context: dg.AssetExecutionContext,
        store: dg.ResourceParam[DatasetStore],
        embeddings: dict[str, StageOutput],
    ):
        free_memory_of_earlier_steps()
        output, metadata = build_neighbour_graph(store, spec, embeddings, spec.outputs.read("neighbour_graph"))
        return dg.Output(output, metadata={"dagster/row_count": metadata.pop("rows"), **metadata})

    return neighbour_graph


def graph_k(spec: IndexSpec, n_rows: int) -> int:
    """Enough neighbours for the layout's n_neighbors, and never fewer than MIN_GRAPH_K."""
    params = layout.resolve_layout_params(spec.layout_options, n_rows)
    return max(MIN_GRAPH_K, int(params.n_neighbors))


def build_neighbour_graph(
    store: DatasetStore,
    spec: IndexSpec,
    embeddings: MutableMapping[str, StageOutput],
    previous: StageOutput | None,
) -> tuple[StageOutput, dict]:
    """The graph (`embeddings` is emptied as the vectors are gathered: see live_vectors)."""
    timer = Timer()
    row_ids = rows_embedded_so_far(embeddings, live_row_ids(store, spec))
    vectors = live_vectors(embeddings, row_ids, consume=True)  # the search holds the matrix alone
    k = min(graph_k(spec, len(row_ids)), max(len(row_ids) - 1, 1))
    return graph_output(vectors, row_ids, k, previous, timer)


def graph_output(
    vectors: np.ndarray, row_ids: np.ndarray, k: int, previous: StageOutput | None = None, timer: Timer | None = None
) -> tuple[StageOutput, dict]:
    """The stage's work on loaded vectors (one per row of `row_ids`): the graph, its table and its
    metadata (benchmarks.graph_stage times this against pynndescent alone)."""
    timer = timer or Timer()
    approximate = knn.uses_nndescent(len(row_ids), k)
    if approximate:  # importing pynndescent costs ~3 s warm, ~50 s cold: only when it runs
        enable_pynndescent_kernel_cache()
    if previous is not None and previous.side_data.get("k") == k and previous.side_data.get("metric") == METRIC:
        previous_ids, previous_graph = graph_from_output(previous)
        graph = knn.extend_graph(vectors, previous_graph, positions_of(previous_ids, row_ids))
        mode = "incremental"
    else:
        graph = knn.build_graph(vectors, k=k, metric=METRIC, progress=True)
        mode = "full"
    table = pa.table(
        {
            ROW_ID: pa.array(row_ids, pa.int64()),
            "neighbour_indices": matrix_to_arrow(graph.neighbour_indices.astype(np.int64)),
            "neighbour_distances": matrix_to_arrow(graph.neighbour_distances.astype(np.float32)),
        }
    )
    side = {"k": k, "metric": METRIC, "mode": mode}
    finite = graph.neighbour_distances[np.isfinite(graph.neighbour_distances)]
    metadata = {
        "rows": len(row_ids),
        "k": k,
        "metric": METRIC,
        "mode": mode,
        "dimensions": int(vectors.shape[1]),
        "mean_neighbour_distance": float(finite.mean()) if finite.size else 0.0,
    }
    # An exact graph's recall is 1 by construction: measuring it would only repeat the search.
    recall = quality.graph_recall(graph, vectors, sample=QUALITY_SAMPLE) if approximate else 1.0
    metadata[f"recall_at_{k}_sample"] = round(recall, 4)
    metadata["seconds"] = timer.seconds
    return StageOutput(table, side), metadata
