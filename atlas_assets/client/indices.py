"""The index half of the `nomic` client's shapes: `AtlasIndex` (`dataset.indices[i]`, with its
`projections`), `dataset.meta` (the dict the nomic client keeps of a dataset), removing a map, and
the `_embeddings` column of nomic's own Arrow upload path.

Kept apart from `client/dataset.py` so that file stays about data; `AtlasDataset` calls these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from atlas_assets.client.map import AtlasProjection
from atlas_assets.compute.tables import embedding_matrix
from atlas_assets.errors import IndexNotFoundError, InvalidOptionError
from resources.index_outputs import IndexOutputs
from resources.storage.records import DatasetRecord, IndexRecord

if TYPE_CHECKING:  # the dataset module imports this one
    from atlas_assets.client.dataset import AtlasDataset


class AtlasIndex:
    """One index of a dataset, as `nomic.dataset.AtlasIndex`: `id`, `name`, `indexed_field` and its
    `projections` (one map per index here). Every other field of the stored index record (modality,
    embedding_model, options, asset_name, ...) reads through."""

    def __init__(self, dataset: AtlasDataset, record: IndexRecord) -> None:
        self._dataset = dataset
        self.record = record

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_dataset", "record"):
            raise AttributeError(name)
        return getattr(self.record, name)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def indexed_field(self) -> str | None:
        return self.record.indexed_field

    @property
    def projections(self) -> list[AtlasProjection]:
        return [AtlasProjection(self._dataset, self.record.id)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AtlasIndex):
            return self.record == other.record
        if isinstance(other, IndexRecord):
            return self.record == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.record.id)

    def __repr__(self) -> str:
        return (
            f"AtlasIndex(name={self.name!r}, id={self.id!r}, indexed_field={self.indexed_field!r}, "
            f"modality={self.record.modality!r}, embedding_model={self.record.embedding_model!r})"
        )


def dataset_meta(record: DatasetRecord, is_locked: bool) -> dict[str, Any]:
    """The dataset as the nomic client's `dataset.meta` dict holds it (the keys Atlas code reads)."""
    schema = record.schema
    return {
        "id": record.id,
        "project_name": record.name,
        "slug": record.slug,
        "organization_slug": record.organisation,
        "description": record.description,
        "unique_id_field": record.unique_id_field,
        "modality": record.modality,
        "is_public": record.is_public,
        "total_datums_in_project": record.total_datums,
        "created_timestamp": record.created_timestamp.isoformat(),
        "project_fields": list(schema.names) if schema is not None else [],
        "insert_update_delete_lock": is_locked,
        "atlas_indices": [
            {
                "id": index.id,
                "index_name": index.name,
                "indexed_field": index.indexed_field,
                "modality": index.modality,
                "embedding_model": index.embedding_model,
                "projections": [{"id": index.id}],
            }
            for index in record.indices
        ],
    }


def remove_index(dataset: AtlasDataset, id_or_name: str, lock_timeout: float) -> None:
    """Unregister one index (by id or name) and delete its outputs and tags.

    The record is replaced first (the commit: readers stop seeing the map at once); the output files
    are removed after, so a crash in between leaves only orphan files no reader opens. An index whose
    embeddings another index reuses cannot be removed before that one.
    """
    store = dataset.store
    with store.indexing_lock(dataset.organisation, dataset.slug, lock_timeout):
        record = dataset._record()
        index = record.find_index(id_or_name)
        if index is None:
            known = ", ".join(repr(i.name) for i in record.indices) or "none"
            raise IndexNotFoundError(f"{record.identifier} has no map {id_or_name!r}; maps: {known}")
        users = [other.name for other in record.indices if other.reuse_embeddings_from_index == index.id]
        if users:
            raise InvalidOptionError(
                f"map {index.name!r} cannot be deleted: {', '.join(repr(u) for u in users)} reuse its "
                "embeddings; delete those maps first"
            )
        forget_index(dataset, index.id)


def forget_index(dataset: AtlasDataset, index_id: str) -> None:
    """Drop an index from the record, then its files (the caller holds the indexing lock)."""
    store = dataset.store
    store.update_record(
        dataset.organisation,
        dataset.slug,
        lambda current: current.model_copy(update={"indices": [i for i in current.indices if i.id != index_id]}),
    )
    IndexOutputs(dataset.organisation, dataset.slug, index_id).delete()
    store.remove_index_folder(dataset.organisation, dataset.slug, index_id)


def arrow_embeddings(column: pa.ChunkedArray) -> np.ndarray:
    """The vectors of an `_embeddings` column (nomic's upload path: fixed-size or plain lists)."""
    if pa.types.is_fixed_size_list(column.type):
        return embedding_matrix(column)
    return np.asarray(column.to_pylist(), dtype=np.float32)
