"""The index half of `AtlasDataset`: create_index, update_indices, update_maps, get_map, indices, maps.

Kept apart from the data half so each module has one job; `AtlasDataset` inherits it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from atlas_assets.errors import IndexNotFoundError
from atlas_assets.indexing import new_index_record
from atlas_assets.options import (
    NomicDuplicatesOptions,
    NomicEmbedOptions,
    NomicProjectOptions,
    NomicTopicOptions,
)
from atlas_assets.projection import AtlasProjection
from resources.records import DatasetRecord, IndexRecord

if TYPE_CHECKING:
    from resources.store import DatasetStore

log = logging.getLogger(__name__)

# A materialisation can take long on big data; other writers wait for it this long by default.
INDEXING_LOCK_TIMEOUT = 24 * 3600.0


class IndexMethods:
    _store: "DatasetStore"
    _organisation: str
    _slug: str

    _record: Callable[[], DatasetRecord]  # provided by AtlasDataset: the current dataset.json

    @property
    def indices(self) -> list[IndexRecord]:
        """Every index of the dataset (id, name, indexed field, modality, model, options)."""
        return list(self._record().indices)

    @property
    def maps(self) -> list[AtlasProjection]:
        """One map (projection) per index."""
        return [AtlasProjection(self, index.id) for index in self._record().indices]  # type: ignore[arg-type]

    def get_map(
        self, name: str | None = None, atlas_index_id: str | None = None, projection_id: str | None = None
    ) -> AtlasProjection:
        """A map by index id, then projection id, then name; the only map when none is given."""
        indices = self._record().indices
        if not indices:
            raise IndexNotFoundError(f"{self._organisation}/{self._slug} has no maps yet; call create_index first")
        for wanted in (atlas_index_id, projection_id):
            if wanted is not None:
                match = next((index for index in indices if index.id == wanted), None)
                if match is None:
                    raise IndexNotFoundError(f"no map with id {wanted!r}; maps: {[i.id for i in indices]}")
                return AtlasProjection(self, match.id)  # type: ignore[arg-type]
        if name is None:
            if len(indices) > 1:
                raise IndexNotFoundError(
                    f"{self._organisation}/{self._slug} has {len(indices)} maps "
                    f"({', '.join(repr(i.name) for i in indices)}); pass name= or atlas_index_id="
                )
            return AtlasProjection(self, indices[0].id)  # type: ignore[arg-type]
        match = next((index for index in indices if index.name == name), None)
        if match is None:
            raise IndexNotFoundError(f"no map named {name!r}; maps: {[i.name for i in indices]}")
        return AtlasProjection(self, match.id)  # type: ignore[arg-type]

    def create_index(
        self,
        name: str | None = None,
        indexed_field: str | None = None,
        modality: str | None = None,
        projection: bool | dict | NomicProjectOptions = True,
        topic_model: bool | dict | NomicTopicOptions = True,
        duplicate_detection: bool | dict | NomicDuplicatesOptions = True,
        embedding_model: str | dict | NomicEmbedOptions | None = None,
        reuse_embeddings_from_index: str | None = None,
    ) -> AtlasProjection:
        """Register an index and materialise its assets (embeddings, graph, map, topics, duplicates)."""
        from atlas_assets.pipeline.runner import materialize_indices

        with self._store.indexing_lock(self._organisation, self._slug, INDEXING_LOCK_TIMEOUT):
            record = self._record()
            index = new_index_record(
                record,
                name=name,
                indexed_field=indexed_field,
                modality=modality,
                projection=projection,
                topic_model=topic_model,
                duplicate_detection=duplicate_detection,
                embedding_model=embedding_model,
                reuse_embeddings_from_index=reuse_embeddings_from_index,
            )
            record = self._store.update_record(
                self._organisation,
                self._slug,
                lambda current: current.model_copy(update={"indices": [*current.indices, index]}),
            )
            log.info(f"{record.identifier}: building map {index.name!r} ({index.id})")
            materialize_indices(record, [index.id], store=self._store)
        return AtlasProjection(self, index.id)  # type: ignore[arg-type]

    def update_indices(self, rebuild_topic_models: bool = False) -> None:
        """Bring every map up to date with added and deleted rows (only new batches are embedded)."""
        from atlas_assets.pipeline.runner import materialize_indices

        with self._store.indexing_lock(self._organisation, self._slug, INDEXING_LOCK_TIMEOUT):
            record = self._record()
            if record.indices:
                materialize_indices(record, store=self._store, rebuild_topic_models=rebuild_topic_models)

    def _forget_outputs(self, record: DatasetRecord) -> None:
        """After the store removed the dataset: drop its partitions from the Dagster instance and
        its index outputs when they live outside the store (ATLAS_OUTPUTS_URI)."""
        from atlas_assets.pipeline.factory import batches_partitions
        from resources.index_outputs import index_output_dir, outputs_base
        from resources.instance import get_instance

        instance = get_instance()
        partitions = batches_partitions(record).name
        for key in instance.get_dynamic_partitions(partitions):
            instance.delete_dynamic_partition(partitions, key)
        base = outputs_base()
        for index in record.indices:
            folder = base.joinpath(*index_output_dir(record.organisation, record.slug, index.id).split("/"))
            if folder.exists():
                folder.fs.rm(folder.path, recursive=True)

    def update_maps(self, data: Any, embeddings: Any = None, num_workers: int = 10) -> None:
        """add_data, then update_indices (num_workers is accepted for Atlas compatibility)."""
        self.add_data(data, embeddings=embeddings)  # type: ignore[attr-defined]
        self.update_indices()
