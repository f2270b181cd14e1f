"""A map read model from ready tables: maps computed outside the pipeline (tests, benchmarks).

The tables have the shapes of the Atlas accessors (`projected`, `data`, `topics`, topic metadata,
`duplicates`), keyed by an `id` column. Topic parents come from the metadata's `parent` column
(a topic id one depth up), as the pipeline's topics output gives them; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from atlas_assets.maps.model import DUPLICATE_CLASSES, NO_TOPIC, MapModel, Topic


@dataclass
class MapTables:
    """The tables of one map, as the `AtlasProjection` accessors return them.

    projected: id, x, y (defines the rows). data: the id field + the dataset's fields. topics: id +
    topic_depth_1..N labels. topic_metadata: topic_id, depth, topic_short_description, and
    optionally topic_description, keywords, parent (topic id), centroid_x, centroid_y, size.
    duplicates: id, duplicate_class, cluster_id.
    """

    projected: pd.DataFrame
    data: pd.DataFrame | None = None
    id_field: str = "id"
    topics: pd.DataFrame | None = None
    topic_metadata: pd.DataFrame | None = None
    duplicates: pd.DataFrame | None = None
    text_field: str | None = None


def model_from_tables(
    key: str,
    title: str,
    tables: MapTables,
    *,
    modality: str = "text",
    load_vectors: Callable[[], np.ndarray] | None = None,
) -> MapModel:
    """The read model of a map given as tables (rows in the order of `projected`)."""
    ids = pd.Index(tables.projected["id"].astype(str).to_numpy(), dtype=object)
    data = _aligned(tables.data, tables.id_field, ids)
    topics, topic_rows = _topics(tables, ids)
    duplicates = _aligned(tables.duplicates, "id", ids)
    duplicate_class = cluster_id = None
    if duplicates is not None and "duplicate_class" in duplicates.columns:
        classes = duplicates["duplicate_class"].astype(object).to_numpy()
        duplicate_class = np.zeros(len(ids), dtype=np.uint8)
        for code, name in enumerate(DUPLICATE_CLASSES):
            duplicate_class[classes == name] = code
        if "cluster_id" in duplicates.columns:
            cluster_id = duplicates["cluster_id"].fillna(-1).to_numpy(dtype=np.int64)
    return MapModel(
        key=key,
        title=title,
        id_field=tables.id_field,
        row_ids=np.arange(len(ids), dtype=np.int64),
        ids=np.asarray(ids, dtype=object),
        x=tables.projected["x"].to_numpy(dtype=np.float32),
        y=tables.projected["y"].to_numpy(dtype=np.float32),
        topics=topics,
        topic_rows=topic_rows,
        duplicate_class=duplicate_class,
        cluster_id=cluster_id,
        text_field=tables.text_field,
        modality=modality,
        version=("frame", id(tables)),
        load_fields=(lambda: data.reset_index(drop=True)) if data is not None else None,
        load_vectors=load_vectors,
    )


def _aligned(frame: pd.DataFrame | None, id_column: str, ids: pd.Index) -> pd.DataFrame | None:
    """`frame` reordered to `ids` (rows missing from the frame become NaN)."""
    if frame is None or id_column not in frame.columns:
        return None
    keyed = frame.drop_duplicates(subset=id_column).set_index(id_column, drop=False)
    keyed.index = keyed.index.astype(str)
    return keyed.reindex(ids)


def _topics(tables: MapTables, ids: pd.Index) -> tuple[list[Topic], list[np.ndarray]]:
    assigned = _aligned(tables.topics, "id", ids)
    if assigned is None:
        return [], []
    depth_columns = sorted(
        (column for column in assigned.columns if str(column).startswith("topic_depth_")),
        key=lambda column: int(str(column).rsplit("_", 1)[1]),
    )
    metadata = tables.topic_metadata
    records = metadata.to_dict("records") if metadata is not None else []
    topics: list[Topic] = []
    position_of_id: dict[Any, int] = {}
    parent_ids: list[Any] = []
    topic_rows = []
    for depth, column in enumerate(depth_columns, start=1):
        by_label = {
            str(record.get("topic_short_description")): record for record in records if record.get("depth") == depth
        }
        labels = assigned[column].astype(object).where(assigned[column].notna(), None).to_numpy()
        rows = np.full(len(ids), NO_TOPIC, dtype=np.int32)
        for label in pd.unique(labels[labels != None]):  # noqa: E711 - elementwise over an object array
            record = by_label.get(str(label), {})
            topic_id = record.get("topic_id", f"{depth}:{label}")
            position_of_id[topic_id] = len(topics)
            parent_ids.append(record.get("parent"))
            keywords = record.get("keywords", [])
            if isinstance(keywords, str):
                keywords = [word.strip() for word in keywords.split(",") if word.strip()]
            centroid = (record.get("centroid_x"), record.get("centroid_y"))
            topics.append(
                Topic(
                    topic_id=topic_id,
                    depth=depth,
                    label=str(label),
                    description=str(record.get("topic_description", "") or ""),
                    keywords=tuple(str(word) for word in list(keywords)),
                    size_built=int(record.get("size", 0) or 0),
                    centroid=tuple(map(float, centroid)) if None not in centroid and np.isfinite(centroid).all() else None,
                )
            )
            rows[labels == label] = len(topics) - 1
        topic_rows.append(rows)
    parents = [position_of_id.get(parent) for parent in parent_ids]
    for position, topic in enumerate(topics):
        if parents[position] is None and topic.depth > 1:
            parents[position] = _enclosing_topic(topic_rows[topic.depth - 2], topic_rows[topic.depth - 1] == position)
    return [replace(topic, parent=parent) for topic, parent in zip(topics, parents)], topic_rows


def _enclosing_topic(parent_rows: np.ndarray, members: np.ndarray) -> int | None:
    """The topic one depth up holding every row of a topic, when there is exactly one (tables
    without a metadata `parent` column): a topic whose rows straddle two parents gets none."""
    holders = np.unique(parent_rows[members])
    return int(holders[0]) if len(holders) == 1 and holders[0] != NO_TOPIC else None
