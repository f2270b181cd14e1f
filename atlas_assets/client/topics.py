"""`map.topics`: the topic of every row at every depth, the topics' metadata and hierarchy, grouping,
density over time and topic search, shaped as the `nomic` client's `AtlasMapTopics`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from atlas_assets.client.accessor_base import MapAccessor
from atlas_assets.errors import InvalidOptionError
from atlas_assets.maps.model import NO_TOPIC
from atlas_assets.maps.queries import query_vectors


class MapTopics(MapAccessor):
    """Topics of a map. `df` / `tb`: id + `topic_depth_1..N` (labels, depth 1 broadest); `depth`;
    `metadata`; `hierarchy`; `group_by_topic`; `get_topic_density`; `vector_search_topics`."""

    @property
    def depth(self) -> int:
        """How many topic depths the map has."""
        return self._model("topics").depths

    @property
    def df(self) -> pd.DataFrame:
        """id and the topic label of every live row at each depth (`topic_depth_1` broadest)."""
        model = self._model("topics")
        return self._frame(model, {f"topic_depth_{d}": model.topic_labels(d) for d in range(1, model.depths + 1)})

    @property
    def tb(self) -> pa.Table:
        """`df` as an Arrow table."""
        return pa.Table.from_pandas(self.df, preserve_index=False)

    @property
    def metadata(self) -> pd.DataFrame:
        """One row per topic: topic_id, depth, topic_depth_1..N (its label and its ancestors' labels,
        None below its depth), topic_short_description, topic_description, keywords, parent, size,
        centroid_x, centroid_y."""
        model = self._model("topics")
        topics = model.topics
        rows = []
        for here, topic in enumerate(topics):
            path: list[str | None] = [None] * model.depths
            position: int | None = here
            while position is not None:
                current = topics[position]
                path[current.depth - 1] = current.label
                position = current.parent
            rows.append(
                {
                    "topic_id": topic.topic_id,
                    "depth": topic.depth,
                    **{f"topic_depth_{d}": path[d - 1] for d in range(1, model.depths + 1)},
                    "topic_short_description": topic.label,
                    "topic_description": topic.description,
                    "keywords": list(topic.keywords),
                    "parent": topics[topic.parent].topic_id if topic.parent is not None else None,
                    "size": topic.size_built,
                    "centroid_x": topic.centroid[0] if topic.centroid else None,
                    "centroid_y": topic.centroid[1] if topic.centroid else None,
                }
            )
        return pd.DataFrame(rows)

    @property
    def hierarchy(self) -> dict[tuple[str, int], list[str]]:
        """{(label, depth): [child labels]} for every topic that has children."""
        topics = self._model("topics").topics
        tree: dict[tuple[str, int], list[str]] = {}
        for topic in topics:
            if topic.parent is not None:
                parent = topics[topic.parent]
                tree.setdefault((parent.label, parent.depth), []).append(topic.label)
        return tree

    def group_by_topic(self, topic_depth: int = 1) -> list[dict[str, Any]]:
        """Each topic at `topic_depth` holding rows: topic_id, topic_short_description,
        topic_long_description, subtopics, subtopic_ids and datum_ids (in map order)."""
        model = self._model("topics")
        if not 1 <= topic_depth <= model.depths:
            raise InvalidOptionError(f"Topic depth out of range: topic_depth must be from 1 to {model.depths}, got {topic_depth}")
        assignment = model.topic_rows[topic_depth - 1]
        groups = []
        for position in model.topics_at(topic_depth):
            datum_ids = model.ids[assignment == position].tolist()
            if not datum_ids:
                continue  # as in nomic: a topic whose rows were all deleted is left out
            topic = model.topics[position]
            children = [child for child in model.topics if child.parent == position]
            groups.append(
                {
                    "topic_id": topic.topic_id,
                    "topic_short_description": topic.label,
                    "topic_long_description": topic.description,
                    "subtopics": [child.label for child in children],
                    "subtopic_ids": [child.topic_id for child in children],
                    "datum_ids": datum_ids,
                }
            )
        return groups

    def get_topic_density(
        self, time_field: str, start: datetime | str, end: datetime | str, topic_depth: int | None = None
    ) -> dict[str, int]:
        """{topic label: rows with `time_field` in [start, end]} over every depth, as nomic counts
        (the end is included; a label used at two depths sums both). topic_depth= keeps one depth."""
        dataset = self.dataset
        schema = dataset.schema
        if schema is None or time_field not in schema.names or not pa.types.is_temporal(schema.field(time_field).type):
            raise InvalidOptionError(f"{time_field!r} is not a date or timestamp field of {dataset.identifier}")
        rows = dataset.store.read_rows(dataset.organisation, dataset.slug, columns=[self._id_field, time_field])
        frame = self.df.merge(rows.to_pandas(), on=self._id_field)
        times = pd.to_datetime(frame[time_field], utc=True)
        inside = frame[(times >= _utc(start)) & (times <= _utc(end))]
        model_depths = [c for c in frame.columns if c.startswith("topic_depth_")]
        if topic_depth is not None:
            if f"topic_depth_{topic_depth}" not in model_depths:
                raise InvalidOptionError(f"topic_depth must be from 1 to {len(model_depths)}, got {topic_depth}")
            model_depths = [f"topic_depth_{topic_depth}"]
        densities: dict[str, int] = {}
        for column in model_depths:
            for topic, count in inside[column].value_counts().items():
                densities[topic] = densities.get(topic, 0) + int(count)
        return dict(sorted(densities.items(), key=lambda item: -item[1]))

    def vector_search_topics(
        self, queries: np.ndarray | Sequence[str], k: int = 32, depth: int = 3
    ) -> dict[str, list[dict[str, float]]]:
        """{'topics': [one {topic label: posterior} per query]}: the share of each topic (at `depth`,
        the deepest the map has when it has fewer) among the query's k nearest rows, largest first.

        queries: a 2-D array of vectors (as nomic), or, on a text map, a list of texts.
        """
        if isinstance(queries, np.ndarray) and queries.ndim != 2:
            raise InvalidOptionError(
                "Expected a 2 dimensional array. If you have a single query, we expect an array of shape (1, d)."
            )
        if not isinstance(k, int) or k < 1:
            raise InvalidOptionError(f"k must be a positive integer, got {k!r}")
        model = self._model("topics")
        depth = min(max(int(depth), 1), model.depths)
        queried = query_vectors(model, queries, model.vectors().shape[1])
        neighbours, _ = model.nearest(queried, min(k, len(model)))
        labels = model.topic_labels(depth)
        assignment = model.topic_rows[depth - 1]
        posteriors = []
        for row in neighbours:
            row = row[(row >= 0)]
            row = row[assignment[row] != NO_TOPIC]
            counts = pd.Series(labels[row]).value_counts()
            total = float(counts.sum()) or 1.0
            posteriors.append({str(label): float(count) / total for label, count in counts.items()})
        return {"topics": posteriors}

    def __repr__(self) -> str:
        try:
            frame = self.df
        except Exception as error:  # noqa: BLE001 - a repr must not raise
            return f"<topics of map {self.projection.name!r}: {error}>"
        depths = [c for c in frame.columns if c.startswith("topic_depth_")]
        sizes = ", ".join(f"{frame[c].nunique()} at depth {c.rsplit('_', 1)[1]}" for c in depths)
        return f"===Atlas Topics for ({self.projection}): {len(frame)} rows; topics: {sizes}\n{frame!r}"


def _utc(moment: datetime | str) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
