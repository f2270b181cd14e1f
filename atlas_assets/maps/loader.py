"""Building the map read model of a pipeline-built index, once per map version.

One load reads each output the map needs once (the neighbour graph's row ids, the projection, the
topics, the duplicates) and the dataset's rows once (ids, plus every field when asked); embeddings
are read on the first search. Models are kept per map and replaced when the map's version changes
(an output rewritten, rows added or deleted), so a reader never gets a stale map.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from atlas_assets.compute.arrays import positions_of, vectors_in_order
from atlas_assets.compute.tables import BLOB, ROW_ID
from atlas_assets.errors import IndexNotReadyError
from atlas_assets.maps.model import DUPLICATE_CLASSES, NO_TOPIC, MapModel, Topic
from resources.index_outputs import EMBEDDINGS, IndexOutputs, StageOutput
from resources.process_memory import release_freed_memory
from resources.storage import DatasetStore
from resources.storage.records import DatasetRecord, IndexRecord

# Models kept at once (one per map; a big map's arrays and vectors can be large).
MAX_CACHED_MAPS = 4

_cache: OrderedDict[tuple[str, str], MapModel] = OrderedDict()
_cache_lock = threading.Lock()


def map_key(record: DatasetRecord, index: IndexRecord) -> str:
    return f"{record.organisation}/{record.slug}/{index.id}"


def map_version(record: DatasetRecord, index: IndexRecord) -> tuple:
    """Changes whenever the map's outputs are rewritten or rows are added or deleted."""
    batches = (len(record.batches), record.batches[-1].batch_id if record.batches else None)
    deletions = (len(record.deletions), record.deletions[-1].deletion_id if record.deletions else None)
    outputs = IndexOutputs(record.organisation, record.slug, index.id)
    return (batches, deletions, outputs.version())


def load_map(store: DatasetStore, record: DatasetRecord, index: IndexRecord, *, with_fields: bool = False) -> MapModel:
    """The read model of one index (IndexNotReadyError while its graph is not built yet)."""
    cache_key = (store.location, map_key(record, index))
    version = map_version(record, index)
    with _cache_lock:
        cached = _cache.get(cache_key)
        if cached is not None and cached.version == version:
            _cache.move_to_end(cache_key)
            return cached
    model = _read_model(store, record, index, version, with_fields)
    with _cache_lock:
        _cache[cache_key] = model
        _cache.move_to_end(cache_key)
        while len(_cache) > MAX_CACHED_MAPS:
            _cache.popitem(last=False)
    return model


def _read_model(
    store: DatasetStore, record: DatasetRecord, index: IndexRecord, version: tuple, with_fields: bool
) -> MapModel:
    outputs = IndexOutputs(record.organisation, record.slug, index.id)
    graph = outputs.read("neighbour_graph", columns=[ROW_ID])
    if graph is None:
        raise IndexNotReadyError(
            f"map {index.name!r} has not been built yet; run dataset.update_indices() "
            "(or materialise it in the Dagster UI)"
        )
    id_field = record.unique_id_field or "id_"
    user_fields = record.schema.names if record.schema is not None else [id_field]
    wanted = [ROW_ID, *(user_fields if with_fields else [id_field])]
    if record.modality == "image":
        wanted.append(BLOB)
    rows = store.read_rows(record.organisation, record.slug, columns=list(dict.fromkeys(wanted)))

    # The map's rows: the placed rows (the graph's when there is no layout) still live, in that order.
    projection = outputs.read("projection")
    graph_ids = (projection or graph).table[ROW_ID].to_numpy()
    in_rows = positions_of(rows[ROW_ID].to_numpy(), graph_ids)
    live = in_rows >= 0
    row_ids, in_rows = graph_ids[live], in_rows[live]
    rows = rows.take(pa.array(in_rows))

    x = y = None
    if projection is not None:
        x, y = (_aligned(projection, row_ids, name, np.float32, np.nan) for name in ("x", "y"))
    topics, topic_rows = _topics(outputs.read("topics"), row_ids)
    duplicate_class = cluster_id = None
    duplicates = outputs.read("duplicates")
    if duplicates is not None:
        classes = _aligned(duplicates, row_ids, "duplicate_class", object, DUPLICATE_CLASSES[0])
        duplicate_class = np.zeros(len(row_ids), dtype=np.uint8)
        for code, name in enumerate(DUPLICATE_CLASSES):
            duplicate_class[classes == name] = code
        cluster_id = _aligned(duplicates, row_ids, "cluster_id", np.int64, -1)

    fields_frame = rows.select(user_fields).to_pandas() if with_fields else None

    def load_fields() -> pd.DataFrame:
        if fields_frame is not None:
            return fields_frame
        table = store.read_rows(record.organisation, record.slug, columns=[ROW_ID, *user_fields])
        return table.select(user_fields).take(pa.array(positions_of(table[ROW_ID].to_numpy(), row_ids))).to_pandas()

    def load_vectors() -> np.ndarray:
        # Each batch read only when the one before is copied (all of them read first, then
        # concatenated and reordered: +326 MiB resident for a 73 MiB matrix at 50,000 x 384).
        def tables():
            for batch in record.batches:
                output = outputs.read(EMBEDDINGS, [ROW_ID, "embedding"], batch.batch_id)
                if output is not None:
                    yield output.table
                    del output

        vectors, filled = vectors_in_order(tables(), row_ids, ROW_ID, "embedding")
        release_freed_memory()
        if vectors is None or not filled.all():
            raise IndexNotReadyError(
                f"map {index.name!r} has rows without embeddings; run dataset.update_indices() to embed them"
            )
        return vectors

    model = MapModel(
        key=map_key(record, index),
        title=f"{record.identifier} · {index.name}",
        id_field=id_field,
        row_ids=row_ids,
        ids=np.asarray(rows[id_field].to_pylist(), dtype=object),
        x=x,
        y=y,
        topics=topics,
        topic_rows=topic_rows,
        duplicate_class=duplicate_class,
        cluster_id=cluster_id,
        text_field=index.indexed_field,
        modality=index.modality,
        embedding_model=index.embedding_model,
        version=version,
        load_fields=load_fields,
        load_vectors=load_vectors,
        blob_refs=np.asarray(rows[BLOB].to_pylist(), dtype=object) if record.modality == "image" else None,
    )
    return model


def _aligned(output: StageOutput, row_ids: np.ndarray, column: str, dtype: Any, missing: Any) -> np.ndarray:
    """`column` of a stage output for each of `row_ids` (`missing` where the output lacks the row)."""
    positions = positions_of(output.table[ROW_ID].to_numpy(), row_ids)
    values = output.table[column].to_numpy(zero_copy_only=False)
    found = np.where(positions >= 0, values[np.maximum(positions, 0)], missing) if len(values) else None
    if found is None:
        return np.full(len(row_ids), missing, dtype=dtype)
    return found.astype(dtype)


def _topics(output: StageOutput | None, row_ids: np.ndarray) -> tuple[list[Topic], list[np.ndarray]]:
    """The topics with their real parents (from the topics output), and each row's topic per depth."""
    if output is None:
        return [], []
    records = output.side_data.get("topics", [])
    position_of = {record["topic_id"]: position for position, record in enumerate(records)}
    topics = [
        Topic(
            topic_id=record["topic_id"],
            depth=int(record["depth"]),
            label=str(record.get("short_description", record["topic_id"])),
            description=str(record.get("description") or ""),
            keywords=tuple(str(word) for word in record.get("keywords", [])),
            parent=position_of.get(record.get("parent")),
            size_built=int(record.get("size", 0)),
            centroid=_centroid(record),
        )
        for record in records
    ]
    known_ids = np.array(list(position_of), dtype=np.int64)
    known_positions = np.array(list(position_of.values()), dtype=np.int32)
    topic_rows = []
    for depth in range(1, int(output.side_data.get("depths", 0)) + 1):
        topic_ids = _aligned(output, row_ids, f"topic_id_depth_{depth}", np.int64, -1)
        found = positions_of(known_ids, topic_ids)
        topic_rows.append(np.where(found >= 0, known_positions[np.maximum(found, 0)], NO_TOPIC).astype(np.int32))
    return topics, topic_rows


def _centroid(record: dict[str, Any]) -> tuple[float, float] | None:
    x, y = record.get("centroid_x"), record.get("centroid_y")
    if x is None or y is None or not np.isfinite(x) or not np.isfinite(y):
        return None
    return float(x), float(y)
