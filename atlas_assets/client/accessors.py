"""The accessors of a map (`map.data`, `.embeddings`, `.topics`, `.duplicates`, `.tags`), shaped as
in the `nomic` client and read from the map read model. Rows are the map's live rows in map order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from atlas_assets.compute.tables import ROW_ID
from atlas_assets.errors import IndexNotReadyError, InvalidOptionError, UnknownIdsError
from atlas_assets.maps.model import DUPLICATE_CLASSES, MapModel
from atlas_assets.maps.queries import query_vectors
from resources.tags import TagStore

if TYPE_CHECKING:  # the map module imports this one
    from atlas_assets.client.map import AtlasProjection

MAX_SEARCH_K = 1000


class _Accessor:
    def __init__(self, projection: AtlasProjection) -> None:
        self._projection = projection

    @property
    def _id_field(self) -> str:
        return self._projection.dataset.id_field

    def _model(self, stage: str | None = None) -> MapModel:
        """The read model, checked to hold `stage` (IndexNotReadyError naming the fix otherwise)."""
        model = self._projection.read_model()
        built = {
            None: True,
            "projection": model.x is not None,
            "topics": bool(model.topic_rows),
            "duplicates": model.duplicate_class is not None,
        }[stage]
        if not built:
            raise IndexNotReadyError(
                f"the {stage} of map {self._projection.name!r} has not been built yet; "
                "run dataset.update_indices() (or materialise it in the Dagster UI)"
            )
        return model

    def _frame(self, model: MapModel, columns: dict[str, Any]) -> pd.DataFrame:
        """The id field first, then `columns`, one row per map row."""
        return pd.DataFrame({self._id_field: model.ids, **columns})


class MapData(_Accessor):
    @property
    def tb(self) -> pa.Table:
        """The id field and every dataset field of the live rows (upload order), as Arrow."""
        dataset = self._projection.dataset
        rows = dataset.store.read_rows(dataset.organisation, dataset.slug).sort_by(ROW_ID)
        return rows.select([name for name in rows.column_names if not name.startswith("_")])

    @property
    def df(self) -> pd.DataFrame:
        return self.tb.to_pandas()


class MapEmbeddings(_Accessor):
    @property
    def projected(self) -> pd.DataFrame:
        """id, x, y of every live row."""
        model = self._model("projection")
        return self._frame(model, {"x": model.x, "y": model.y})

    @property
    def latent(self) -> np.ndarray:
        """(N, d) embeddings in the same order as `projected`."""
        return self._model().vectors()

    def vector_search(
        self,
        queries: np.ndarray | Sequence[str] | None = None,
        ids: Sequence[Any] | None = None,
        k: int = 5,
    ) -> tuple[list[list[Any]], list[list[float]]]:
        """Nearest rows in the embedding space to each query vector, query text, or existing id.

        Returns (neighbour ids per query, distances per query); distances are cosine distances.
        """
        if (queries is None) == (ids is None):
            raise InvalidOptionError("vector_search needs exactly one of queries= or ids=")
        if not isinstance(k, int) or not 1 <= k <= MAX_SEARCH_K:
            raise InvalidOptionError(f"k must be an integer from 1 to {MAX_SEARCH_K}, got {k!r}")
        model = self._model()
        # A map smaller than k (rows deleted since the build included) answers with all it has.
        if ids is not None:
            rows = model.rows_of(list(ids))
            if (rows < 0).any():
                raise UnknownIdsError(f"ids not in the map: {[i for i, r in zip(ids, rows) if r < 0][:10]}")
            neighbours, distances = model.nearest_to_rows(rows, max(1, min(k, len(model) - 1)))
        else:
            queried = query_vectors(model, queries, model.vectors().shape[1])
            neighbours, distances = model.nearest(queried, min(k, len(model)))
        return (
            [[model.ids[i] for i in row if i >= 0] for row in neighbours],
            [[float(d) for d, i in zip(drow, row) if i >= 0] for drow, row in zip(distances, neighbours)],
        )


class MapTopics(_Accessor):
    @property
    def metadata(self) -> pd.DataFrame:
        """topic_id, depth, topic_short_description, topic_description, keywords, parent, size, centroid."""
        topics = self._model("topics").topics
        return pd.DataFrame(
            [
                {
                    "topic_id": topic.topic_id,
                    "depth": topic.depth,
                    "topic_short_description": topic.label,
                    "topic_description": topic.description,
                    "keywords": list(topic.keywords),
                    "parent": topics[topic.parent].topic_id if topic.parent is not None else None,
                    "size": topic.size_built,
                    "centroid_x": topic.centroid[0] if topic.centroid else None,
                    "centroid_y": topic.centroid[1] if topic.centroid else None,
                }
                for topic in topics
            ]
        )

    @property
    def df(self) -> pd.DataFrame:
        """id and the topic label of every live row at each depth (`topic_depth_1` broadest)."""
        model = self._model("topics")
        return self._frame(model, {f"topic_depth_{d}": model.topic_labels(d) for d in range(1, model.depths + 1)})

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
        """Each topic at `topic_depth` with its description, subtopics and the ids of its rows."""
        model = self._model("topics")
        if not 1 <= topic_depth <= model.depths:
            raise InvalidOptionError(f"topic_depth must be from 1 to {model.depths}, got {topic_depth}")
        assignment = model.topic_rows[topic_depth - 1]
        groups = []
        for position in model.topics_at(topic_depth):
            topic = model.topics[position]
            children = [child for child in model.topics if child.parent == position]
            groups.append(
                {
                    "topic_id": topic.topic_id,
                    "topic_short_description": topic.label,
                    "topic_long_description": topic.description,
                    "subtopics": [child.label for child in children],
                    "subtopic_ids": [child.topic_id for child in children],
                    "datum_ids": model.ids[assignment == position].tolist(),
                }
            )
        return groups

    def get_topic_density(
        self, time_field: str, start: datetime, end: datetime, topic_depth: int = 1
    ) -> list[dict[str, Any]]:
        """How many rows of each topic have `time_field` in [start, end), largest first."""
        dataset = self._projection.dataset
        rows = dataset.store.read_rows(dataset.organisation, dataset.slug, columns=[self._id_field, time_field]) if (
            dataset.schema is not None and time_field in dataset.schema.names
        ) else None
        if rows is None or not pa.types.is_timestamp(rows.schema.field(time_field).type):
            raise InvalidOptionError(f"{time_field!r} is not a timestamp field of {dataset.identifier}")
        frame = self.df.merge(rows.to_pandas(), on=self._id_field)
        times = pd.to_datetime(frame[time_field], utc=True)
        inside = frame[(times >= pd.Timestamp(start, tz="UTC")) & (times < pd.Timestamp(end, tz="UTC"))]
        counts = inside[f"topic_depth_{topic_depth}"].value_counts()
        return [{"topic": topic, "count": int(count)} for topic, count in counts.items()]

    def vector_search_topics(
        self, queries: np.ndarray | Sequence[str], k: int = 32, depth: int = 3
    ) -> list[dict[str, float]]:
        """For each query, the k topics at `depth` whose mean embedding is most similar: {label: similarity}."""
        from atlas_assets.compute import search

        model = self._model("topics")
        depth = min(depth, model.depths)
        vectors = model.vectors()
        assignment = model.topic_rows[depth - 1]
        chosen = [position for position in model.topics_at(depth) if (assignment == position).any()]
        centroids = np.stack([vectors[assignment == position].mean(axis=0) for position in chosen])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        queried = query_vectors(model, queries, vectors.shape[1])
        neighbours, distances = search.search_vectors(centroids, queried, k=min(k, len(chosen)))
        return [
            {model.topics[chosen[i]].label: float(1.0 - d) for i, d in zip(row, drow) if i >= 0}
            for row, drow in zip(neighbours, distances)
        ]


class MapDuplicates(_Accessor):
    @property
    def df(self) -> pd.DataFrame:
        """id, duplicate_class (singleton / retention candidate / deletion candidate), cluster_id."""
        model = self._model("duplicates")
        classes = np.asarray(DUPLICATE_CLASSES, dtype=object)[model.duplicate_class]
        return self._frame(model, {"duplicate_class": classes, "cluster_id": model.cluster_id})

    @property
    def tb(self) -> pa.Table:
        return pa.Table.from_pandas(self.df, preserve_index=False)

    def deletion_candidates(self) -> list[Any]:
        frame = self.df
        return frame.loc[frame["duplicate_class"] == "deletion candidate", self._id_field].tolist()


class MapTags(_Accessor):
    """Tags of the map, shared with the web map; unlike Atlas, they can be written from Python."""

    def __init__(self, projection: AtlasProjection) -> None:
        super().__init__(projection)
        dataset = projection.dataset
        self._store = TagStore(dataset.store.index_dir(dataset.organisation, dataset.slug, projection.atlas_index_id))

    def get_tags(self) -> list[str]:
        return self._store.get_tags()

    def get_datums_in_tag(self, tag_name: str) -> list[Any]:
        return self._store.get_datums_in_tag(tag_name)

    def add(self, ids: Sequence[Any], tag: str) -> int:
        self._check_ids(ids)
        return self._store.add(ids, tag)

    def remove(self, ids: Sequence[Any], tag: str) -> int:
        return self._store.remove(ids, tag)

    @property
    def df(self) -> pd.DataFrame:
        """id and one boolean column per tag."""
        ids = self._projection.data.tb[self._id_field].to_pylist()
        frame = pd.DataFrame({self._id_field: ids})
        for tag, column in self._store.tag_columns(ids).items():
            frame[tag] = column
        return frame

    def _check_ids(self, ids: Sequence[Any]) -> None:
        live = {str(value) for value in self._projection.data.tb[self._id_field].to_pylist()}
        unknown = [value for value in ids if str(value) not in live]
        if unknown:
            raise UnknownIdsError(f"cannot tag ids that are not in the dataset: {unknown[:10]}")
