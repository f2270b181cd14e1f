"""The accessors of a map (`map.data`, `.embeddings`, `.duplicates` here; `.topics` in
client/topics.py, `.tags` in client/tags.py), shaped as in the `nomic` client and read from the map
read model. Rows are the map's live rows in map order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from atlas_assets.client.accessor_base import MapAccessor
from atlas_assets.client.tags import MapTags
from atlas_assets.client.topics import MapTopics
from atlas_assets.compute.tables import ROW_ID
from atlas_assets.errors import InvalidOptionError, UnknownIdsError
from atlas_assets.maps.model import DUPLICATE_CLASSES
from atlas_assets.maps.queries import query_vectors

if TYPE_CHECKING:  # the map module imports this one
    from atlas_assets.client.map import AtlasProjection

__all__ = ["MapAccessor", "MapData", "MapDuplicates", "MapEmbeddings", "MapTags", "MapTopics"]

MAX_SEARCH_K = 1000


class MapData(MapAccessor):
    """The dataset's fields of every live row. fields= (as nomic's AtlasMapData) keeps some only."""

    def __init__(self, projection: AtlasProjection, fields: Sequence[str] | None = None) -> None:
        super().__init__(projection)
        if fields is not None:
            known = set(projection.dataset.dataset_fields)
            unknown = [field for field in fields if field not in known]
            if unknown:
                raise InvalidOptionError(f"fields {unknown} are not fields of {projection.dataset.identifier}; fields: {sorted(known)}")
        self.fields = list(fields) if fields is not None else None

    @property
    def tb(self) -> pa.Table:
        """The id field and every dataset field of the live rows (upload order), as Arrow."""
        dataset = self._projection.dataset
        rows = dataset.store.read_rows(dataset.organisation, dataset.slug).sort_by(ROW_ID)
        names = [name for name in rows.column_names if not name.startswith("_")]
        if self.fields is not None:
            names = [name for name in names if name == self._id_field or name in self.fields]
        return rows.select(names)

    @property
    def df(self) -> pd.DataFrame:
        return self.tb.to_pandas()

    def __repr__(self) -> str:
        return f"===Atlas Data for ({self.projection}): fields {self.dataset.dataset_fields}"


class MapEmbeddings(MapAccessor):
    @property
    def projected(self) -> pd.DataFrame:
        """id, x, y of every live row."""
        model = self._model("projection")
        return self._frame(model, {"x": model.x, "y": model.y})

    @property
    def df(self) -> pd.DataFrame:
        """The 2-D embeddings (id, x, y), as nomic's `embeddings.df` (= `projected`)."""
        return self.projected

    @property
    def tb(self) -> pa.Table:
        return pa.Table.from_pandas(self.projected, preserve_index=False)

    def __repr__(self) -> str:
        try:
            frame = self.projected
        except Exception as error:  # noqa: BLE001 - a repr must not raise
            return f"<embeddings of map {self.projection.name!r}: {error}>"
        return f"===Atlas Embeddings for ({self.projection}): {len(frame)} rows (latent: .latent)\n{frame!r}"

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


class MapDuplicates(MapAccessor):
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

    def __repr__(self) -> str:
        try:
            frame = self.df
        except Exception as error:  # noqa: BLE001 - a repr must not raise
            return f"<duplicates of map {self.projection.name!r}: {error}>"
        candidates = int((frame["duplicate_class"] == "deletion candidate").sum())
        clusters = int(frame.loc[frame["cluster_id"] >= 0, "cluster_id"].nunique())
        return (
            f"===Atlas Duplicates for ({self.projection})\n"
            f"{candidates} deletion candidates in {clusters} clusters\n{frame!r}"
        )
