"""`AtlasProjection` (a map) and its accessors, shaped as in the `nomic` client.

Every accessor reads the materialised asset outputs when it is asked (no cached copies), so what
it returns is what the last run wrote. Rows are the live rows (deletions applied) in upload order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from atlas_assets.compute.arrays import arrow_to_matrix, positions_of
from atlas_assets.config import map_link
from atlas_assets.errors import IndexNotReadyError, InvalidOptionError, UnknownIdsError
from atlas_assets.pipeline.spec import IndexSpec
from resources.index_outputs import outputs_base, read_side_data, read_table, stage_path, strip_side_data
from resources.records import IndexRecord
from resources.tags import TagStore

if TYPE_CHECKING:
    from atlas_assets.dataset import AtlasDataset

ROW_ID = "_row_id"
MAX_SEARCH_K = 1000


class AtlasProjection:
    """One map of a dataset: its layout, topics, duplicates, embeddings and tags."""

    def __init__(self, dataset: "AtlasDataset", index_id: str) -> None:
        self.dataset = dataset
        self.atlas_index_id = index_id

    def __repr__(self) -> str:
        return f"AtlasProjection({self.dataset.identifier!r}, name={self.name!r}, id={self.id!r})"

    @property
    def _index(self) -> IndexRecord:
        index = self.dataset._record().index(self.atlas_index_id)
        if index is None:
            raise IndexNotReadyError(f"the index {self.atlas_index_id} of {self.dataset.identifier} no longer exists")
        return index

    @property
    def id(self) -> str:
        """The projection id (one projection per index here, so the index id)."""
        return self.atlas_index_id

    @property
    def projection_id(self) -> str:
        return self.atlas_index_id

    @property
    def name(self) -> str:
        return self._index.name

    @property
    def map_link(self) -> str:
        return map_link(self.dataset.organisation, self.dataset.slug, self.atlas_index_id)

    @property
    def data(self) -> "MapData":
        return MapData(self)

    @property
    def embeddings(self) -> "MapEmbeddings":
        return MapEmbeddings(self)

    @property
    def topics(self) -> "MapTopics":
        return MapTopics(self)

    @property
    def duplicates(self) -> "MapDuplicates":
        return MapDuplicates(self)

    @property
    def tags(self) -> "MapTags":
        return MapTags(self)

    # --- reading outputs (shared by the accessors) ---------------------------------------------

    @property
    def _spec(self) -> IndexSpec:
        return IndexSpec.of(self.dataset._record(), self._index)

    def _output(self, stage: str) -> tuple[pa.Table, dict[str, Any]]:
        path = stage_path(outputs_base(), self._spec.output_dir, stage)
        if not path.exists():
            raise IndexNotReadyError(
                f"the {stage} of map {self.name!r} has not been built yet; "
                "run dataset.update_indices() (or materialise it in the Dagster UI)"
            )
        return strip_side_data(read_table(path)), read_side_data(path)

    def _rows(self) -> pa.Table:
        """Live rows in map order: `_row_id`, the id field and every user field."""
        rows = self.dataset._store.read_rows(self.dataset.organisation, self.dataset.slug)
        return rows.sort_by(ROW_ID)

    def _ids_for(self, row_ids: np.ndarray) -> list[Any]:
        rows = self.dataset._store.read_rows(
            self.dataset.organisation, self.dataset.slug, columns=[ROW_ID, self.dataset.id_field]
        )
        lookup = dict(zip(rows[ROW_ID].to_pylist(), rows[self.dataset.id_field].to_pylist()))
        return [lookup.get(int(row_id)) for row_id in row_ids]

    def _with_ids(self, table: pa.Table) -> pd.DataFrame:
        """The output with the id field in front; rows deleted since the last build are left out."""
        frame = table.to_pandas()
        ids = self._ids_for(frame[ROW_ID].to_numpy())
        frame.insert(0, self.dataset.id_field, ids)
        live = np.array([value is not None for value in ids], dtype=bool)
        return frame.loc[live].drop(columns=[ROW_ID]).reset_index(drop=True)

    def _latent(self) -> tuple[np.ndarray, np.ndarray]:
        """Row ids (map order) and their embeddings; re-read only when an output file changed."""
        base = outputs_base()
        graph_path = stage_path(base, self._spec.output_dir, "neighbour_graph")
        if not graph_path.exists():
            self._output("neighbour_graph")  # raises the not-built-yet error
        folder = stage_path(base, self._spec.output_dir, "embeddings", "x").parent
        batch_paths = [folder / f"{batch.batch_id}.parquet" for batch in self.dataset._record().batches]
        # A batch added since the last build has no embeddings yet, and no row in the graph.
        paths = [graph_path] + [path for path in batch_paths if path.exists()]
        version = _files_version(paths)
        cached = _LATENT_CACHE.get(str(graph_path))
        if version is not None and cached is not None and cached[0] == version:
            return cached[1], cached[2]
        row_ids = read_table(graph_path, columns=[ROW_ID])[ROW_ID].to_numpy()
        table = pa.concat_tables([read_table(path, columns=[ROW_ID, "embedding"]) for path in paths[1:]])
        positions = positions_of(table[ROW_ID].to_numpy(), row_ids)
        vectors = arrow_to_matrix(table["embedding"])[positions]
        if version is not None:
            _LATENT_CACHE.clear()  # one map's vectors at a time: they can be large
            _LATENT_CACHE[str(graph_path)] = (version, row_ids, vectors)
        return row_ids, vectors


# Search on a large map must not re-read every embedding per query: the latest map's vectors are
# kept, keyed by the files' sizes and modification times (a rewrite changes the key, so a cached
# copy is never stale). Only local files are keyed this way; object stores are read each time.
_LATENT_CACHE: dict[str, tuple[tuple, np.ndarray, np.ndarray]] = {}


def _files_version(paths: list) -> tuple | None:
    if any(path.protocol not in ("", "file", "local") for path in paths):
        return None
    stats = [os.stat(path.path) for path in paths]
    return tuple((path.path, stat.st_size, stat.st_mtime_ns) for path, stat in zip(paths, stats))


class MapData:
    def __init__(self, projection: AtlasProjection) -> None:
        self._projection = projection

    @property
    def tb(self) -> pa.Table:
        """The id field and every dataset field of the live rows, as Arrow."""
        rows = self._projection._rows()
        keep = [name for name in rows.column_names if not name.startswith("_")]
        return rows.select(keep)

    @property
    def df(self) -> pd.DataFrame:
        return self.tb.to_pandas()


class MapEmbeddings:
    def __init__(self, projection: AtlasProjection) -> None:
        self._projection = projection

    @property
    def projected(self) -> pd.DataFrame:
        """id, x, y of every live row."""
        table, _ = self._projection._output("projection")
        return self._projection._with_ids(table)

    @property
    def latent(self) -> np.ndarray:
        """(N, d) embeddings in the same order as `projected`."""
        return self._projection._latent()[1]

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
        from atlas_assets.compute import search

        row_ids, vectors = self._projection._latent()
        id_of_row = self._projection._ids_for(row_ids)
        if ids is not None:
            position_of = {str(value): position for position, value in enumerate(id_of_row)}
            unknown = [value for value in ids if str(value) not in position_of]
            if unknown:
                raise UnknownIdsError(f"ids not in the map: {unknown[:10]}")
            rows = np.array([position_of[str(value)] for value in ids], dtype=np.int64)
            neighbours, distances = search.search_ids(vectors, rows, k=k)
        else:
            query_vectors = self._query_vectors(queries, vectors.shape[1])
            neighbours, distances = search.search_vectors(vectors, query_vectors, k=k)
        # Rows deleted since the last build have no id any more and are not answers.
        def found(i: int) -> bool:
            return i >= 0 and id_of_row[i] is not None

        return (
            [[id_of_row[i] for i in row if found(i)] for row in neighbours],
            [[float(d) for d, i in zip(drow, row) if found(i)] for drow, row in zip(distances, neighbours)],
        )

    def _query_vectors(self, queries: np.ndarray | Sequence[str], width: int) -> np.ndarray:
        if isinstance(queries, np.ndarray):
            matrix = np.atleast_2d(queries).astype(np.float32)
        elif len(queries) and all(isinstance(query, str) for query in queries):
            index = self._projection._index
            if index.modality != "text":
                raise InvalidOptionError(
                    "text queries need a map built on text; pass query vectors for this map"
                )
            from resources.embedder import load_text_embedder

            matrix = load_text_embedder(index.embedding_model).embed_queries(list(queries))
        else:
            matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if matrix.ndim != 2 or matrix.shape[1] != width:
            raise InvalidOptionError(f"query vectors must be (n, {width}); got shape {matrix.shape}")
        return matrix


class MapTopics:
    def __init__(self, projection: AtlasProjection) -> None:
        self._projection = projection

    def _topics(self) -> tuple[pa.Table, list[dict[str, Any]], int]:
        table, side = self._projection._output("topics")
        return table, side["topics"], int(side["depths"])

    @property
    def metadata(self) -> pd.DataFrame:
        """topic_id, depth, topic_short_description, topic_description, keywords, parent, size, centroid."""
        _, topics, _ = self._topics()
        return pd.DataFrame(
            [
                {
                    "topic_id": topic["topic_id"],
                    "depth": topic["depth"],
                    "topic_short_description": topic["short_description"],
                    "topic_description": topic["description"],
                    "keywords": topic["keywords"],
                    "parent": topic["parent"],
                    "size": topic["size"],
                    "centroid_x": topic["centroid_x"],
                    "centroid_y": topic["centroid_y"],
                }
                for topic in topics
            ]
        )

    @property
    def df(self) -> pd.DataFrame:
        """id and the topic label of every live row at each depth (`topic_depth_1` broadest)."""
        table, topics, depths = self._topics()
        label_of = {topic["topic_id"]: topic["short_description"] for topic in topics}
        frame = pd.DataFrame({ROW_ID: table[ROW_ID].to_numpy()})
        for depth in range(1, depths + 1):
            ids = table[f"topic_id_depth_{depth}"].to_numpy()
            frame[f"topic_depth_{depth}"] = [label_of.get(int(topic_id)) for topic_id in ids]
        return self._projection._with_ids(pa.Table.from_pandas(frame, preserve_index=False))

    @property
    def hierarchy(self) -> dict[tuple[str, int], list[str]]:
        """{(label, depth): [child labels]} for every topic that has children."""
        _, topics, _ = self._topics()
        by_id = {topic["topic_id"]: topic for topic in topics}
        tree: dict[tuple[str, int], list[str]] = {}
        for topic in topics:
            parent = by_id.get(topic["parent"])
            if parent is not None:
                tree.setdefault((parent["short_description"], parent["depth"]), []).append(topic["short_description"])
        return tree

    def group_by_topic(self, topic_depth: int = 1) -> list[dict[str, Any]]:
        """Each topic at `topic_depth` with its description, subtopics and the ids of its rows."""
        table, topics, depths = self._topics()
        if not 1 <= topic_depth <= depths:
            raise InvalidOptionError(f"topic_depth must be from 1 to {depths}, got {topic_depth}")
        ids = np.array(self._projection._ids_for(table[ROW_ID].to_numpy()), dtype=object)
        assignment = table[f"topic_id_depth_{topic_depth}"].to_numpy()
        groups = []
        for topic in (t for t in topics if t["depth"] == topic_depth):
            children = [t for t in topics if t["parent"] == topic["topic_id"]]
            groups.append(
                {
                    "topic_id": topic["topic_id"],
                    "topic_short_description": topic["short_description"],
                    "topic_long_description": topic["description"],
                    "subtopics": [child["short_description"] for child in children],
                    "subtopic_ids": [child["topic_id"] for child in children],
                    "datum_ids": [i for i in ids[assignment == topic["topic_id"]].tolist() if i is not None],
                }
            )
        return groups

    def get_topic_density(
        self, time_field: str, start: datetime, end: datetime, topic_depth: int = 1
    ) -> list[dict[str, Any]]:
        """How many rows of each topic have `time_field` in [start, end), largest first."""
        rows = self._projection._rows()
        if time_field not in rows.column_names or not pa.types.is_timestamp(rows.schema.field(time_field).type):
            raise InvalidOptionError(f"{time_field!r} is not a timestamp field of {self._projection.dataset.identifier}")
        frame = self.df.merge(
            rows.select([self._projection.dataset.id_field, time_field]).to_pandas(),
            on=self._projection.dataset.id_field,
        )
        times = pd.to_datetime(frame[time_field], utc=True)
        inside = frame[(times >= pd.Timestamp(start, tz="UTC")) & (times < pd.Timestamp(end, tz="UTC"))]
        counts = inside[f"topic_depth_{topic_depth}"].value_counts()
        return [{"topic": topic, "count": int(count)} for topic, count in counts.items()]

    def vector_search_topics(self, queries: np.ndarray | Sequence[str], k: int = 32, depth: int = 3) -> list[dict[str, float]]:
        """For each query, the k topics at `depth` whose mean embedding is most similar: {label: similarity}."""
        table, topics, depths = self._topics()
        depth = min(depth, depths)
        row_ids, vectors = self._projection._latent()
        assignment = table[f"topic_id_depth_{depth}"].to_numpy()
        chosen = [t for t in topics if t["depth"] == depth]
        centroids = np.stack([vectors[assignment == t["topic_id"]].mean(axis=0) for t in chosen])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        from atlas_assets.compute import search

        query_vectors = MapEmbeddings(self._projection)._query_vectors(queries, vectors.shape[1])
        neighbours, distances = search.search_vectors(centroids, query_vectors, k=min(k, len(chosen)))
        return [
            {chosen[i]["short_description"]: float(1.0 - d) for i, d in zip(row, drow) if i >= 0}
            for row, drow in zip(neighbours, distances)
        ]


class MapDuplicates:
    def __init__(self, projection: AtlasProjection) -> None:
        self._projection = projection

    @property
    def df(self) -> pd.DataFrame:
        """id, duplicate_class (singleton / retention candidate / deletion candidate), cluster_id."""
        table, _ = self._projection._output("duplicates")
        return self._projection._with_ids(table)

    @property
    def tb(self) -> pa.Table:
        return pa.Table.from_pandas(self.df, preserve_index=False)

    def deletion_candidates(self) -> list[Any]:
        frame = self.df
        return frame.loc[frame["duplicate_class"] == "deletion candidate", self._projection.dataset.id_field].tolist()


class MapTags:
    """Tags of the map, shared with the web map; unlike Atlas, they can be written from Python."""

    def __init__(self, projection: AtlasProjection) -> None:
        self._projection = projection
        dataset = projection.dataset
        self._store = TagStore(dataset._store.index_dir(dataset.organisation, dataset.slug, projection.atlas_index_id))

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
        ids = self._projection.data.tb[self._projection.dataset.id_field].to_pylist()
        frame = pd.DataFrame({self._projection.dataset.id_field: ids})
        for tag, column in self._store.tag_columns(ids).items():
            frame[tag] = column
        return frame

    def _check_ids(self, ids: Sequence[Any]) -> None:
        live = {str(value) for value in self._projection.data.tb[self._projection.dataset.id_field].to_pylist()}
        unknown = [value for value in ids if str(value) not in live]
        if unknown:
            raise UnknownIdsError(f"cannot tag ids that are not in the dataset: {unknown[:10]}")
