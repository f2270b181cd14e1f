"""The storage engine of datasets: plain Python (no Dagster), usable and testable on its own.

`layout` (where files live, names), `records` (what `dataset.json` holds), `reader` (records, batches,
live rows), `writer` (one upload as one batch), `blobs` (image bytes), `locks` (per-dataset file
locks), and `store.DatasetStore`, the engine's one object.
"""

from resources.storage.store import DatasetStore

__all__ = ["DatasetStore"]
