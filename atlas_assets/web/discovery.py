"""Finding the maps under ATLAS_HOME for `atlas serve`.

Maps are listed afresh on every request that needs them (a dataset created or an index built while
the server runs appears without a restart), and a map's source is replaced when the pipeline has
rewritten its outputs, so the page never shows a stale map.
"""

from __future__ import annotations

import threading
from typing import Any

from atlas_assets.web.source import MapSource, ProjectionMapSource, projection_version


class HomeRegistry:
    """Every map of every dataset in the store (default: the one under ATLAS_HOME)."""

    def __init__(self, store: Any | None = None) -> None:
        if store is None:
            from resources.store import DatasetStore

            store = DatasetStore()
        self._store = store
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[tuple[Any, ...], ProjectionMapSource]] = {}

    def _projections(self) -> dict[str, Any]:
        from atlas_assets.dataset import AtlasDataset
        from atlas_assets.projection import AtlasProjection

        found: dict[str, Any] = {}
        for record in self._store.list_datasets():
            indices = list(getattr(record, "indices", []) or [])
            if not indices:
                continue
            dataset = AtlasDataset(dataset_id=record.id, store=self._store)
            for index in indices:
                found[f"{record.organisation}/{record.slug}/{index.id}"] = AtlasProjection(dataset, index.id)
        return found

    def _current(self, key: str, projection: Any) -> ProjectionMapSource:
        version = projection_version(projection)
        cached = self._sources.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        source = ProjectionMapSource(projection)
        self._sources[key] = (version, source)
        return source

    def get(self, key: str) -> MapSource | None:
        with self._lock:
            projection = self._projections().get(key)
            if projection is None:
                self._sources.pop(key, None)
                return None
            return self._current(key, projection)

    def sources(self) -> list[MapSource]:
        with self._lock:
            projections = self._projections()
            for gone in set(self._sources) - set(projections):
                del self._sources[gone]
            return [self._current(key, projection) for key, projection in projections.items()]
