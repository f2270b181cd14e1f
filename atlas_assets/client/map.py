"""`AtlasProjection`: one map of a dataset, shaped as in the `nomic` client.

Its accessors (`data`, `embeddings`, `duplicates` in `client/accessors.py`, `topics` in
`client/topics.py`, `tags` in `client/tags.py`) read
the map read model (`atlas_assets.maps`), which is loaded once per map version: every call sees what
the last run wrote, and no call scans the store or the outputs again while the map is unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from atlas_assets.client.accessors import MapData, MapDuplicates, MapEmbeddings, MapTags, MapTopics
from atlas_assets.config import map_link, map_server_url
from atlas_assets.errors import IndexNotReadyError
from atlas_assets.maps.loader import load_map
from atlas_assets.maps.model import MapModel
from resources.storage.records import DatasetRecord, IndexRecord

if TYPE_CHECKING:  # the dataset module imports this one
    from atlas_assets.client.dataset import AtlasDataset


class AtlasProjection:
    """One map of a dataset: its layout, topics, duplicates, embeddings and tags."""

    def __init__(self, dataset: AtlasDataset, index_id: str) -> None:
        self.dataset = dataset
        self.atlas_index_id = index_id

    def __str__(self) -> str:
        """As in nomic: `name: link`."""
        return f"{self.name}: {self.map_link}"

    def __repr__(self) -> str:
        try:
            index = self.index_record()
        except Exception as error:  # noqa: BLE001 - a repr must not raise
            return f"AtlasProjection({self.dataset.identifier!r}, id={self.id!r}: {error})"
        return (
            f"AtlasProjection({self.dataset.identifier!r}, name={index.name!r}, id={self.id!r}, "
            f"indexed_field={index.indexed_field!r}, modality={index.modality!r}, "
            f"embedding_model={index.embedding_model!r}, link={self.map_link!r})"
        )

    @property
    def id(self) -> str:
        """The projection id (one projection per index here, so the index id)."""
        return self.atlas_index_id

    @property
    def projection_id(self) -> str:
        return self.atlas_index_id

    @property
    def name(self) -> str:
        return self.index_record().name

    @property
    def map_link(self) -> str:
        return map_link(self.dataset.organisation, self.dataset.slug, self.atlas_index_id)

    @property
    def dataset_link(self) -> str:
        """The map server's list of maps, at this dataset (Atlas: the dataset's page)."""
        return f"{map_server_url()}/#{self.dataset.organisation}/{self.dataset.slug}"

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of what the map holds per row: the dataset's fields, then x, y,
        topic_depth_1..N, duplicate_class and cluster_id for the stages that were built."""
        schema = self.dataset.schema or pa.schema([])
        model = self.read_model()
        extra: list[pa.Field] = []
        if model.x is not None:
            extra += [pa.field("x", pa.float32()), pa.field("y", pa.float32())]
        extra += [pa.field(f"topic_depth_{d}", pa.string()) for d in range(1, model.depths + 1)]
        if model.duplicate_class is not None:
            extra += [pa.field("duplicate_class", pa.string()), pa.field("cluster_id", pa.int64())]
        return pa.schema(list(schema) + extra)

    def delete(self) -> None:
        """Delete this map (its outputs and tags; the dataset's data stays): `dataset.delete_index`."""
        self.dataset.delete_index(atlas_index_id=self.atlas_index_id)

    @property
    def data(self) -> MapData:
        return MapData(self)

    @property
    def embeddings(self) -> MapEmbeddings:
        return MapEmbeddings(self)

    @property
    def topics(self) -> MapTopics:
        return MapTopics(self)

    @property
    def duplicates(self) -> MapDuplicates:
        return MapDuplicates(self)

    @property
    def tags(self) -> MapTags:
        return MapTags(self)

    def index_record(self, record: DatasetRecord | None = None) -> IndexRecord:
        """This map's index as the dataset's record (default: read now) holds it."""
        index = (record or self.dataset._record()).index(self.atlas_index_id)
        if index is None:
            raise IndexNotReadyError(f"the index {self.atlas_index_id} of {self.dataset.identifier} no longer exists")
        return index

    def read_model(self) -> MapModel:
        """The map read model of the current build (loaded once per map version)."""
        record = self.dataset._record()
        return load_map(self.dataset.store, record, self.index_record(record))
