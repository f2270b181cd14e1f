"""Finding the maps under ATLAS_HOME for `atlas serve`.

Maps are listed afresh on every request that needs them (a dataset created or an index built while
the server runs appears without a restart), and a map's source is replaced when its version changes
(the pipeline rewrote an output, rows were added or deleted), so the page never shows a stale map.
Each source reads the map read model (`atlas_assets.maps`), never the Atlas client objects.
"""

from __future__ import annotations

import threading

from atlas_assets.maps.loader import load_map, map_key, map_version
from atlas_assets.maps.queries import query_vectors
from atlas_assets.web.auth import dataset_token, decoy_token
from atlas_assets.web.source import MapSource, ModelMapSource
from resources.storage import DatasetStore
from resources.storage.records import DatasetRecord, IndexRecord
from resources.tags import TagStore


def store_map_source(store: DatasetStore, record: DatasetRecord, index: IndexRecord) -> ModelMapSource:
    """The map source of one pipeline-built index (its model loaded on first use)."""
    organisation, slug, dataset_id = record.organisation, record.slug, record.id

    def search(queries, k: int):
        model = source.model
        return model.nearest(query_vectors(model, queries, model.vectors().shape[1]), k)

    def image(datum_id, fields) -> tuple[bytes, str] | None:
        model = source.model
        rows = model.rows_of([datum_id])
        if model.blob_refs is None or rows[0] < 0:
            return None
        blob = store.read_blob(organisation, slug, model.blob_refs[rows[0]])
        return blob, _sniff_image_type(blob)

    source = ModelMapSource(
        map_key(record, index),
        f"{record.identifier} · {index.name}",
        lambda: load_map(store, record, index, with_fields=True),
        is_public=record.is_public,
        token=lambda: dataset_token(dataset_id),
        modality=index.modality,
        tags=TagStore.for_index(store, organisation, slug, index.id),
        row_search=search,
        image_loader=image if index.modality == "image" else None,
    )
    return source


class HomeRegistry:
    """Every map of every dataset in the store (default: the one under ATLAS_HOME)."""

    def __init__(self, store: DatasetStore | None = None) -> None:
        self._store = store if store is not None else DatasetStore()
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[tuple, ModelMapSource]] = {}

    def _indices(self) -> dict[str, tuple[DatasetRecord, IndexRecord]]:
        return {
            map_key(record, index): (record, index)
            for record in self._store.list_datasets()
            for index in record.indices
        }

    def _current(self, key: str, record: DatasetRecord, index: IndexRecord) -> ModelMapSource:
        version = map_version(record, index)
        cached = self._sources.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        source = store_map_source(self._store, record, index)
        self._sources[key] = (version, source)
        return source

    def get(self, key: str) -> MapSource | None:
        with self._lock:
            indices = self._indices()
            found = indices.get(key)
            if found is None:
                self._sources.pop(key, None)
                if indices:
                    # the work a known map costs (its version: a stat per output), so that how long
                    # the answer takes does not tell a stranger whether a private map exists
                    map_version(*next(iter(indices.values())))
                return None
            return self._current(key, *found)

    def missing_token(self) -> str:
        """What the server checks a request for an unknown map against: a lookup in the same token
        file as a private map's (so both cost the same), which never finds a real token."""
        return decoy_token()

    def sources(self) -> list[MapSource]:
        with self._lock:
            indices = self._indices()
            for gone in set(self._sources) - set(indices):
                del self._sources[gone]
            return [self._current(key, record, index) for key, (record, index) in indices.items()]


def _sniff_image_type(blob: bytes) -> str:
    if blob.startswith(b"\x89PNG"):
        return "image/png"
    if blob.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if blob.startswith(b"GIF8"):
        return "image/gif"
    if blob[:4] == b"RIFF" and blob[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
