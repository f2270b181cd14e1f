"""`AtlasDataset`: the Atlas client's dataset object, backed by the local store.

The object is thin: it holds the dataset's identity (organisation, slug, id) and a `DatasetStore`;
every property reads `dataset.json` afresh, so two objects (or processes) never disagree and nothing
goes stale. Writes go through the store, which validates and commits atomically.

The data half (create/load, properties, add_data, get_data, delete_data, delete, locks) and the
index half (create_index, update_indices, update_maps, get_map, indices, maps) are one class; the
index half hands the work to the pipeline (`atlas_assets.pipeline.runner`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
import logging
import warnings
from typing import Any

import pyarrow as pa

from atlas_assets import config
from atlas_assets.client.index_request import IndexRequest
from atlas_assets.client.indices import AtlasIndex, arrow_embeddings, dataset_meta, forget_index, remove_index
from atlas_assets.client.map import AtlasProjection
from atlas_assets.client.options import (
    NomicDuplicatesOptions,
    NomicEmbedOptions,
    NomicProjectOptions,
    NomicTopicOptions,
)
from atlas_assets.compute import tables
from atlas_assets.errors import DatasetNotFoundError, IndexNotFoundError, InvalidDataError, InvalidIdentifierError
from atlas_assets.pipeline.factory import batches_partitions
from atlas_assets.pipeline.deletions import report_deletions
from atlas_assets.pipeline.runner import materialize_indices
from resources.index_outputs import IndexOutputs
from resources.instance import get_instance
from resources.storage.records import DatasetRecord, normalise_slug
from resources.storage import DatasetStore

log = logging.getLogger(__name__)

DEFAULT_DESCRIPTION = "A description for your map."
# Rows converted and validated at a time by add_data: bounds memory for large uploads.
ADD_DATA_CHUNK_ROWS = 50_000
# Uploads of at least this many rows show a tqdm progress bar when no pbar is given.
PROGRESS_BAR_MIN_ROWS = 10_000
DEFAULT_LOCK_TIMEOUT = 3600.0
# A materialisation can take long on big data; other writers wait for it this long by default.
INDEXING_LOCK_TIMEOUT = 24 * 3600.0


def parse_identifier(identifier: str) -> tuple[str, str, str]:
    """`org/name` or `name` -> (organisation slug, dataset slug, display name)."""
    if not isinstance(identifier, str) or not identifier.strip():
        raise InvalidIdentifierError(f"identifier must be 'org/name' or 'name', got {identifier!r}")
    parts = identifier.split("/")
    if len(parts) == 1:
        organisation, name = config.default_organisation(), parts[0]
    elif len(parts) == 2:
        organisation, name = parts
    else:
        raise InvalidIdentifierError(
            f"identifier {identifier!r} has more than one '/'; use 'org/name' or 'name'"
        )
    organisation_slug, slug = normalise_slug(organisation), normalise_slug(name)
    if not slug or not slug.strip("-"):
        raise InvalidIdentifierError(
            f"dataset name {name!r} has no letters or digits left after slug normalisation; choose "
            "a name with letters or digits"
        )
    if not organisation_slug or not organisation_slug.strip("-"):
        raise InvalidIdentifierError(f"organisation {organisation!r} has no letters or digits; fix it")
    return organisation_slug, slug, name.strip()


class AtlasDataset:
    """Create or load a dataset; add, read and delete its data (the `nomic` client's API)."""

    def __init__(
        self,
        identifier: str | None = None,
        description: str | None = DEFAULT_DESCRIPTION,
        unique_id_field: str | None = None,
        is_public: bool = True,
        dataset_id: str | None = None,
        organization_name: str | None = None,
        *,
        store: DatasetStore | None = None,
    ) -> None:
        """Load the dataset when it exists, else create it.

        unique_id_field=None when creating: Atlas refuses that; here the dataset is created with
        generated ids (field `id_`, as the nomic client's default id field, holding the decimal row
        number as a string, never reused). When loading, unique_id_field=None means "whatever it
        has"; a different name than the stored one is an error.

        organization_name (the nomic 2.x way to name the organisation; nomic 3.x refuses it) is
        accepted with a DeprecationWarning: `AtlasDataset("name", organization_name="org")` is
        `AtlasDataset("org/name")`.
        """
        self._store = store if store is not None else DatasetStore()
        if organization_name is not None:
            identifier = _with_organisation(identifier, organization_name)
        if identifier is None and dataset_id is None:
            raise InvalidIdentifierError(
                "AtlasDataset needs an identifier ('org/name' or 'name') or a dataset_id"
            )
        if dataset_id is not None:
            record = self._store.get_dataset_by_id(dataset_id)
            if identifier is not None:
                organisation, slug, _ = parse_identifier(identifier)
                if (organisation, slug) != (record.organisation, record.slug):
                    raise InvalidIdentifierError(
                        f"dataset_id {dataset_id} is {record.identifier}, not {organisation}/{slug}; "
                        "pass only one of them"
                    )
        else:
            organisation, slug, name = parse_identifier(identifier)  # type: ignore[arg-type]
            record = self._store.find_dataset(organisation, slug)
            if record is None:
                record = self._store.create_dataset(
                    organisation,
                    slug,
                    name=name,
                    description=DEFAULT_DESCRIPTION if description is None else description,
                    unique_id_field=unique_id_field,
                    is_public=is_public,
                    exist_ok=True,
                )
        if unique_id_field is not None and unique_id_field != record.unique_id_field:
            if not (record.ids_generated and unique_id_field == tables.GENERATED_ID_FIELD):
                raise InvalidIdentifierError(
                    f"dataset {record.identifier} already exists with unique_id_field "
                    f"{record.unique_id_field!r}, not {unique_id_field!r}; load it without "
                    "unique_id_field or use another name"
                )
        self._organisation = record.organisation
        self._slug = record.slug
        self._id = record.id

    # ------------------------------------------------------------------------------ identity

    @property
    def store(self) -> DatasetStore:
        return self._store

    @property
    def organisation(self) -> str:
        return self._organisation

    def _record(self) -> DatasetRecord:
        """The current dataset.json (read on every call: no stale cache)."""
        record = self._store.find_dataset(self._organisation, self._slug)
        if record is None or record.id != self._id:
            raise DatasetNotFoundError(
                f"dataset {self._organisation}/{self._slug} (id {self._id}) no longer exists; it was deleted"
            )
        return record

    @property
    def id(self) -> str:
        return self._id

    @property
    def slug(self) -> str:
        return self._slug

    @property
    def identifier(self) -> str:
        return f"{self._organisation}/{self._slug}"

    @property
    def name(self) -> str:
        return self._record().name

    @property
    def description(self) -> str:
        return self._record().description

    @property
    def created_timestamp(self) -> datetime:
        return self._record().created_timestamp

    @property
    def is_public(self) -> bool:
        return self._record().is_public

    @property
    def total_datums(self) -> int:
        return self._record().total_datums

    @property
    def modality(self) -> str | None:
        """`text`, `embedding` or `image`, fixed by the first add_data (None before it)."""
        return self._record().modality

    @property
    def id_field(self) -> str:
        return self._record().unique_id_field or tables.GENERATED_ID_FIELD

    @property
    def schema(self) -> pa.Schema | None:
        """The Arrow schema of the user fields, frozen at the first upload (None before it)."""
        return self._record().schema

    @property
    def dataset_fields(self) -> list[str]:
        schema = self.schema
        return list(schema.names) if schema is not None else []

    @property
    def is_locked(self) -> bool:
        """True while the dataset is being written or indexed (by anyone, in any process)."""
        return self._store.is_locked(self._organisation, self._slug)

    @property
    def is_accepting_data(self) -> bool:
        return not self.is_locked

    @property
    def meta(self) -> dict[str, Any]:
        """The dataset as the nomic client's `meta` dict (id, project_name, slug, organization_slug,
        unique_id_field, modality, total_datums_in_project, atlas_indices, ...), read now."""
        return dataset_meta(self._record(), self.is_locked)

    def _latest_dataset_state(self) -> AtlasDataset:
        """The nomic client refreshes its cached `meta` with this; here nothing is cached."""
        return self

    def __repr__(self) -> str:
        record = self._record()
        return (
            f"AtlasDataset({self.identifier!r}, id={self._id!r}, modality={record.modality!r}, "
            f"total_datums={record.total_datums}, maps={[index.name for index in record.indices]})"
        )

    def __str__(self) -> str:
        """As in nomic: one line per map, `name: link`."""
        return "\n".join(str(projection) for projection in self.projections)

    @contextmanager
    def wait_for_dataset_lock(self, timeout: float | None = DEFAULT_LOCK_TIMEOUT) -> Iterator[AtlasDataset]:
        """Wait (at most `timeout` s, DatasetLockedError after) until the dataset is neither written nor
        indexed, run the block, and wait again on leaving it (as the nomic client does)."""
        self._store.wait_until_unlocked(self._organisation, self._slug, timeout)
        yield self
        self._store.wait_until_unlocked(self._organisation, self._slug, timeout)

    # ------------------------------------------------------------------------------ data

    def add_data(
        self,
        data: Any = None,
        embeddings: Any = None,
        blobs: Sequence[Any] | None = None,
        pbar: Any = None,
    ) -> None:
        """Add one upload (pandas, polars, pyarrow or a list of dicts) as one batch, all or nothing.

        Large inputs are converted and validated in chunks of ADD_DATA_CHUNK_ROWS rows; a tqdm bar is
        shown from PROGRESS_BAR_MIN_ROWS rows on, or `pbar.update(n)` is called when given.
        """
        self._record()  # a deleted dataset is an error before any work
        if embeddings is None and isinstance(data, pa.Table) and "_embeddings" in data.column_names:
            # nomic's own upload path: the vectors travel as an `_embeddings` list column.
            embeddings, data = arrow_embeddings(data.column("_embeddings")), data.drop_columns(["_embeddings"])
        if data is None:
            chunks = None
            total = len(embeddings) if embeddings is not None else len(blobs) if blobs is not None else 0
            if total == 0:
                raise InvalidDataError("add_data got no data; pass a DataFrame, a pyarrow Table or a list of dicts")
        else:
            total = tables.count_rows(data)
            chunks = tables.iter_arrow_chunks(data, ADD_DATA_CHUNK_ROWS)
        if blobs is not None and not isinstance(blobs, Sequence):
            blobs = list(blobs)
        bar, owned = self._progress_bar(pbar, total)
        try:
            self._store.add_batch(
                self._organisation,
                self._slug,
                chunks,
                embeddings=embeddings,
                blobs=blobs,
                progress=(bar.update if bar is not None else None),
                rows=total,
            )
        finally:
            if owned:
                bar.close()

    @staticmethod
    def _progress_bar(pbar: Any, total: int) -> tuple[Any, bool]:
        if pbar is not None:
            return pbar, False
        if total < PROGRESS_BAR_MIN_ROWS:
            return None, False
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="add_data", unit="rows", unit_scale=True), True

    def get_data(self, ids: Sequence[Any]) -> list[dict[str, Any]]:
        """The datums with these ids, in the order given (unknown ids: UnknownIdsError naming them)."""
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
            raise InvalidDataError(f"get_data takes a list of ids, got {type(ids).__name__}")
        record = self._record()
        fields = record.schema.names if record.schema is not None else [self.id_field]
        table = self._store.find_rows(self._organisation, self._slug, _id_list(ids), columns=fields)
        return table.to_pylist()

    def delete_data(self, ids: Sequence[Any]) -> bool:
        """Delete the datums with these ids (all must exist, else nothing is deleted). True on success."""
        if isinstance(ids, (str, bytes)):
            raise InvalidDataError("delete_data takes a list of ids, not a single string")
        self._record()
        self._store.delete_ids(self._organisation, self._slug, _id_list(ids))
        # Dagster learns of it at once: the maps show as stale and the automation rebuilds them.
        report_deletions(get_instance(), self._record())
        return True

    def delete(self) -> None:
        """Remove the dataset and everything stored for it (waits for an indexing run to finish),
        including its Dagster partitions and index outputs kept outside the store."""
        record = self._record()
        self._store.delete_dataset(self._organisation, self._slug)
        instance = get_instance()
        partitions = batches_partitions(record).name
        for key in instance.get_dynamic_partitions(partitions):
            instance.delete_dynamic_partition(partitions, key)
        for index in record.indices:
            IndexOutputs(record.organisation, record.slug, index.id).delete()

    # ------------------------------------------------------------------------------ indices

    @property
    def indices(self) -> list[AtlasIndex]:
        """Every index of the dataset (id, name, indexed_field, projections; modality, model, options)."""
        return [AtlasIndex(self, index) for index in self._record().indices]

    @property
    def projections(self) -> list[AtlasProjection]:
        """Every map of every index (one per index here)."""
        return [AtlasProjection(self, index.id) for index in self._record().indices]

    @property
    def maps(self) -> list[AtlasProjection]:
        """One map (projection) per index."""
        return self.projections

    def delete_index(self, name: str | None = None, atlas_index_id: str | None = None) -> None:
        """Delete one map (by name or index id) with its outputs and tags; the data stays.

        Not in the nomic client (Atlas deletes maps in its web page). An index whose embeddings
        another one reuses must be deleted after that one.
        """
        if (name is None) == (atlas_index_id is None):
            raise InvalidIdentifierError("delete_index needs exactly one of name= or atlas_index_id=")
        remove_index(self, atlas_index_id or name, INDEXING_LOCK_TIMEOUT)  # type: ignore[arg-type]

    def get_map(
        self, name: str | None = None, atlas_index_id: str | None = None, projection_id: str | None = None
    ) -> AtlasProjection:
        """A map by index id, then projection id, then name; the only map when none is given."""
        indices = self._record().indices
        if not indices:
            raise IndexNotFoundError(f"{self.identifier} has no maps yet; call create_index first")
        for wanted in (atlas_index_id, projection_id):
            if wanted is not None:
                if not any(index.id == wanted for index in indices):
                    raise IndexNotFoundError(f"no map with id {wanted!r}; maps: {[i.id for i in indices]}")
                return AtlasProjection(self, wanted)
        if name is None:
            if len(indices) > 1:
                raise IndexNotFoundError(
                    f"{self.identifier} has {len(indices)} maps "
                    f"({', '.join(repr(i.name) for i in indices)}); pass name= or atlas_index_id="
                )
            return AtlasProjection(self, indices[0].id)
        match = next((index for index in indices if index.name == name), None)
        if match is None:
            raise IndexNotFoundError(f"no map named {name!r}; maps: {[i.name for i in indices]}")
        return AtlasProjection(self, match.id)

    def create_index(
        self,
        name: str | None = None,
        indexed_field: str | None = None,
        modality: str | None = None,
        projection: bool | dict | NomicProjectOptions | None = None,
        topic_model: bool | dict | NomicTopicOptions = True,
        duplicate_detection: bool | dict | NomicDuplicatesOptions = True,
        embedding_model: str | dict | NomicEmbedOptions | None = None,
        reuse_embeddings_from_index: str | None = None,
    ) -> AtlasProjection:
        """Register an index and materialise its assets (embeddings, graph, map, topics, duplicates).

        Everything is checked first (options, fields, the model installed or installable now); a
        build that fails after the index was registered unregisters it again, so a failed call
        leaves no dead map behind. `projection=None` (the newest client's default) is the usual layout.
        """
        request = IndexRequest(
            name=name,
            indexed_field=indexed_field,
            modality=modality,
            projection=projection,
            topic_model=topic_model,
            duplicate_detection=duplicate_detection,
            embedding_model=embedding_model,
            reuse_embeddings_from_index=reuse_embeddings_from_index,
        )
        with self._store.indexing_lock(self._organisation, self._slug, INDEXING_LOCK_TIMEOUT):
            index = request.resolve(self._record())
            record = self._store.update_record(
                self._organisation,
                self._slug,
                lambda current: current.model_copy(update={"indices": [*current.indices, index]}),
            )
            log.info(f"{record.identifier}: building map {index.name!r} ({index.id})")
            try:
                materialize_indices(record, [index.id], store=self._store, trigger="create_index")
            except BaseException:
                forget_index(self, index.id)
                raise
        return AtlasProjection(self, index.id)

    def update_indices(self, rebuild_topic_models: bool = False) -> None:
        """Bring every map up to date with added and deleted rows (only new batches are embedded)."""
        with self._store.indexing_lock(self._organisation, self._slug, INDEXING_LOCK_TIMEOUT):
            record = self._record()
            if record.indices:
                materialize_indices(record, store=self._store, rebuild_topic_models=rebuild_topic_models)

    def update_maps(self, data: Any, embeddings: Any = None, num_workers: int = 10) -> None:
        """add_data, then update_indices (num_workers is accepted for Atlas compatibility)."""
        self.add_data(data, embeddings=embeddings)
        self.update_indices()


def _with_organisation(identifier: str | None, organisation: str) -> str | None:
    """`name` + organization_name -> `organisation/name` (the nomic 2.x spelling), with a warning."""
    warnings.warn(
        "organization_name is the nomic 2.x spelling (nomic 3.x refuses it); identify the dataset as "
        "'organization/name' instead",
        DeprecationWarning,
        stacklevel=3,
    )
    if identifier is None or "/" not in identifier:
        return f"{organisation}/{identifier}" if identifier is not None else None
    given = identifier.split("/", 1)[0]
    if normalise_slug(given) != normalise_slug(organisation):
        raise InvalidIdentifierError(
            f"identifier {identifier!r} names organisation {given!r} but organization_name is {organisation!r}; pass one"
        )
    return identifier


def _id_list(ids: Any) -> list[Any]:
    """Ids as plain Python values (numpy arrays, Arrow arrays and pandas Series included)."""
    if hasattr(ids, "to_pylist"):
        return ids.to_pylist()
    if hasattr(ids, "tolist"):
        return ids.tolist()
    return list(ids)
