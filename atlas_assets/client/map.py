"""`AtlasProjection`: one map of a dataset, shaped as in the `nomic` client.

Its accessors (`data`, `embeddings`, `topics`, `duplicates`, `tags`, in `client/accessors.py`) read
the map read model (`atlas_assets.maps`), which is loaded once per map version: every call sees what
the last run wrote, and no call scans the store or the outputs again while the map is unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas_assets.client.accessors import MapData, MapDuplicates, MapEmbeddings, MapTags, MapTopics
from atlas_assets.config import map_link
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

    def __repr__(self) -> str:
        return f"AtlasProjection({self.dataset.identifier!r}, name={self.name!r}, id={self.id!r})"

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
