"""The work of each asset: load inputs, call compute, shape outputs. No Dagster decorators here.

Every stage keys its rows by `_row_id` (assigned by the store, increasing in upload order), and works
on the live rows (deletions applied) sorted by it. Incremental stages map the previous output onto
the current rows by `_row_id`: -1 (or NaN) marks a row that is new since.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from atlas_assets.compute import duplicates as duplicates_compute
from atlas_assets.compute import knn, layout, quality, topics as topics_compute
from atlas_assets.compute.arrays import arrow_to_matrix, matrix_to_arrow, positions_of
from atlas_assets.compute.graph import NeighbourGraph
from atlas_assets.errors import InvalidDataError
from atlas_assets.pipeline.spec import IndexSpec
from resources.embedder import EmbedderResource
from resources.kernel_cache import enable_pynndescent_kernel_cache
from resources.io_manager import StageOutput
from resources.store import DatasetStore

ROW_ID = "_row_id"
MIN_GRAPH_K = 15
# Rows sampled for the cheap quality figures shown in the Dagster UI.
QUALITY_SAMPLE = 500

log = logging.getLogger(__name__)


class Timer:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)


# --- embeddings (one batch) -------------------------------------------------------------------


def embed_batch(store: DatasetStore, embedder: EmbedderResource, spec: IndexSpec, batch_id: str) -> pa.Table:
    """The embedding of every row of one upload batch, as `_row_id` + `embedding`."""
    index = spec.index
    if index.modality == "embedding":
        batch = store.read_batch(spec.organisation, spec.slug, batch_id, columns=[ROW_ID, "_embedding"])
        vectors = arrow_to_matrix(batch["_embedding"])
    elif index.modality == "image":
        batch = store.read_batch(spec.organisation, spec.slug, batch_id, columns=[ROW_ID, "_blob"])
        paths = [store.blob_path(spec.organisation, spec.slug, ref) for ref in batch["_blob"].to_pylist()]
        vectors = embedder.image_embedder(index.embedding_model).embed_images(paths, progress=True)
    else:
        field = index.indexed_field
        batch = store.read_batch(spec.organisation, spec.slug, batch_id, columns=[ROW_ID, field])
        texts = pc.fill_null(pc.cast(batch[field], pa.string()), "").to_pylist()
        vectors = embedder.text_embedder(index.embedding_model).embed_documents(texts, progress=True)
    return pa.table({ROW_ID: batch[ROW_ID], "embedding": matrix_to_arrow(vectors.astype(np.float32))})


def copy_embeddings(source: StageOutput) -> pa.Table:
    """An index that reuses another index's embeddings keeps its own copy of each batch."""
    return source.table.select([ROW_ID, "embedding"])


# --- shared loading ----------------------------------------------------------------------------


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


def live_vectors(embeddings: Mapping[str, StageOutput], row_ids: np.ndarray) -> np.ndarray:
    """The embedding of each live row, in `row_ids` order; fails loudly when one is missing."""
    tables = [output.table for output in embeddings.values() if output.table.num_rows]
    if not tables:
        raise InvalidDataError("the dataset has no rows to index; add data with add_data first")
    table = pa.concat_tables(tables)
    positions = positions_of(table[ROW_ID].to_numpy(), row_ids)
    if (positions < 0).any():
        missing = row_ids[positions < 0][:5].tolist()
        raise InvalidDataError(f"rows {missing} have no embedding yet; run update_indices to embed new batches")
    return arrow_to_matrix(table["embedding"])[positions]


def graph_from_output(output: StageOutput) -> tuple[np.ndarray, NeighbourGraph]:
    table = output.table
    graph = NeighbourGraph(
        neighbour_indices=arrow_to_matrix(table["neighbour_indices"], np.int64),
        neighbour_distances=arrow_to_matrix(table["neighbour_distances"], np.float32),
        metric=output.side_data.get("metric", "cosine"),
    )
    return table[ROW_ID].to_numpy(), graph


def xy_from_output(output: StageOutput, row_ids: np.ndarray) -> np.ndarray:
    positions = positions_of(output.table[ROW_ID].to_numpy(), row_ids)
    if (positions < 0).any():
        raise InvalidDataError("the projection does not cover every row; materialise projection again")
    xy = np.column_stack([output.table["x"].to_numpy(), output.table["y"].to_numpy()])
    return xy[positions].astype(np.float32)


# --- neighbour graph ---------------------------------------------------------------------------


def graph_k(spec: IndexSpec, n_rows: int) -> int:
    params = layout.resolve_layout_params(spec.layout_options, n_rows)
    return max(MIN_GRAPH_K, int(params.n_neighbors))


def build_neighbour_graph(
    store: DatasetStore,
    spec: IndexSpec,
    embeddings: Mapping[str, StageOutput],
    previous: StageOutput | None,
) -> tuple[StageOutput, dict]:
    timer = Timer()
    row_ids = rows_embedded_so_far(embeddings, live_row_ids(store, spec))
    vectors = live_vectors(embeddings, row_ids)
    k = min(graph_k(spec, len(row_ids)), max(len(row_ids) - 1, 1))
    metric = "cosine"
    mode = "full"
    graph = None
    enable_pynndescent_kernel_cache()
    if previous is not None and previous.side_data.get("k") == k and previous.side_data.get("metric") == metric:
        previous_ids, previous_graph = graph_from_output(previous)
        mapping = positions_of(previous_ids, row_ids)
        graph = knn.extend_graph(vectors, previous_graph, mapping)
        mode = "incremental"
    if graph is None:
        graph = knn.build_graph(vectors, k=k, metric=metric, progress=True)
    table = pa.table(
        {
            ROW_ID: pa.array(row_ids, pa.int64()),
            "neighbour_indices": matrix_to_arrow(graph.neighbour_indices.astype(np.int64)),
            "neighbour_distances": matrix_to_arrow(graph.neighbour_distances.astype(np.float32)),
        }
    )
    side = {"k": k, "metric": metric, "mode": mode}
    finite = graph.neighbour_distances[np.isfinite(graph.neighbour_distances)]
    metadata = {
        "rows": len(row_ids),
        "k": k,
        "metric": metric,
        "mode": mode,
        "dimensions": int(vectors.shape[1]),
        "mean_neighbour_distance": float(finite.mean()) if finite.size else 0.0,
        "seconds": timer.seconds,
        f"recall_at_{k}_sample": round(quality.graph_recall(graph, vectors, sample=QUALITY_SAMPLE), 4),
    }
    return StageOutput(table, side), metadata


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


# --- projection --------------------------------------------------------------------------------


# Above this share of changed rows (new + deleted, as in knn.extend_graph) the map is laid out
# afresh: holding old points still would distort a map that changed this much.
STABLE_UPDATE_MAX_CHANGE = 0.2


def build_projection(
    spec: IndexSpec,
    graph_output: StageOutput,
    embeddings: Mapping[str, StageOutput],
    previous: StageOutput | None,
    rebuild: bool,
) -> tuple[StageOutput, dict]:
    timer = Timer()
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
            xy = layout.update_layout(graph, initial, params)
            mode = "stable update"
            extent = float(np.ptp(initial[kept], axis=0).max()) or 1.0
            moved = float(np.linalg.norm(xy[kept] - initial[kept], axis=1).mean()) / extent
    if mode == "full":
        # The vectors let separate pieces of the graph be placed by their centroids.
        vectors = live_vectors(embeddings, row_ids)
        xy = layout.compute_layout(graph, params, progress=True, vectors=vectors)
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
    return StageOutput(table, {"mode": mode, "params": {k: _plain(v) for k, v in asdict(params).items()}}), metadata


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- topics ------------------------------------------------------------------------------------


def label_texts(store: DatasetStore, spec: IndexSpec, row_ids: np.ndarray) -> list[str] | None:
    field = spec.label_field
    if field is None:
        return None
    rows = store.read_rows(spec.organisation, spec.slug, columns=[ROW_ID, field])
    positions = positions_of(rows[ROW_ID].to_numpy(), row_ids)
    texts = pc.fill_null(pc.cast(rows[field], pa.string()), "").to_pylist()
    return [texts[position] if position >= 0 else "" for position in positions]


def topic_model_from_output(output: StageOutput) -> tuple[np.ndarray, topics_compute.TopicModel]:
    depths = int(output.side_data["depths"])
    assignments = np.column_stack(
        [output.table[f"topic_id_depth_{depth}"].to_numpy() for depth in range(1, depths + 1)]
    ).astype(np.int32)
    topic_list = [topics_compute.Topic(**topic) for topic in output.side_data["topics"]]
    return output.table[ROW_ID].to_numpy(), topics_compute.TopicModel(assignments=assignments, topics=topic_list)


def build_topics(
    store: DatasetStore,
    spec: IndexSpec,
    graph_output: StageOutput,
    projection_output: StageOutput,
    embeddings: Mapping[str, StageOutput],
    previous: StageOutput | None,
    rebuild: bool,
) -> tuple[StageOutput, dict]:
    timer = Timer()
    options = spec.topic_params
    row_ids, graph = graph_from_output(graph_output)
    xy = xy_from_output(projection_output, row_ids)
    texts = label_texts(store, spec, row_ids)
    # The vectors make each topic's representative document the member nearest its mean direction
    # in embedding space, not the one nearest its centre on the map.
    vectors = live_vectors(embeddings, row_ids)
    mode = "full"
    if previous is not None and not rebuild:
        previous_ids, previous_model = topic_model_from_output(previous)
        mapping = positions_of(previous_ids, row_ids)
        model = topics_compute.assign_new_rows(previous_model, mapping, graph, xy, texts, vectors)
        mode = "new rows joined existing topics"
    else:
        model = topics_compute.build_topics(graph, xy, texts, options, vectors=vectors)
    depths = model.assignments.shape[1]
    columns: dict[str, pa.Array] = {ROW_ID: pa.array(row_ids, pa.int64())}
    for depth in range(1, depths + 1):
        columns[f"topic_id_depth_{depth}"] = pa.array(model.assignments[:, depth - 1], pa.int32())
    side = {"depths": depths, "topics": [_topic_dict(topic) for topic in model.topics], "labelled": texts is not None}
    per_depth = {f"topics_at_depth_{d}": sum(1 for t in model.topics if t.depth == d) for d in range(1, depths + 1)}
    metadata = {"rows": len(row_ids), "depths": depths, "mode": mode, **per_depth, "seconds": timer.seconds}
    return StageOutput(pa.table(columns), side), metadata


def _topic_dict(topic: "topics_compute.Topic") -> dict:
    return {key: _plain(value) for key, value in asdict(topic).items()}


# --- duplicates --------------------------------------------------------------------------------


def build_duplicates(
    spec: IndexSpec, graph_output: StageOutput, embeddings: Mapping[str, StageOutput]
) -> tuple[StageOutput, dict]:
    timer = Timer()
    cutoff = spec.duplicate_cutoff
    row_ids, graph = graph_from_output(graph_output)
    vectors = live_vectors(embeddings, row_ids)
    result = duplicates_compute.find_duplicates(graph, vectors, cutoff=cutoff)
    table = pa.table(
        {
            ROW_ID: pa.array(row_ids, pa.int64()),
            "duplicate_class": pa.array(result.duplicate_class.astype(str), pa.string()),
            "cluster_id": pa.array(result.cluster_id, pa.int64()),
        }
    )
    classes = table["duplicate_class"].value_counts().to_pylist()
    counts = {entry["values"]: int(entry["counts"]) for entry in classes}
    metadata = {
        "rows": len(row_ids),
        "cutoff": cutoff,
        "deletion_candidates": counts.get("deletion candidate", 0),
        "retention_candidates": counts.get("retention candidate", 0),
        "seconds": timer.seconds,
    }
    return StageOutput(table, {"cutoff": cutoff}), metadata
