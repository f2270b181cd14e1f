"""An index's fitted static table: one per index, written once, read by every batch and every query.

When an index embeds text with a static model (runtime "static", e.g. all-MiniLM-L6-v2-static), the
pipeline fits the token table toward the default model on a sample of the dataset
(compute/static_fit.py) and keeps the changed rows as the index output `static_table`
(`<index folder>/static_table.parquet`: `token_id`, `row`; side data: model, sample size, seed,
fingerprint and `common_components`, the k x dim unit vectors removed from every row after the rows
are put in, absent from tables fitted before the removal existed, which load as they were), written
atomically through IndexOutputs. `index_text_embedder` gives the embedder every
batch and every search of that index must use: the static model with those rows put in, or the plain
model for every other index (and for a static index whose table was never fitted).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa

from atlas_assets.compute.arrays import arrow_to_matrix, matrix_to_arrow
from atlas_assets.config import atlas_home
from atlas_assets.errors import ModelError
from resources.index_outputs import IndexOutputs, StageOutput, file_stamp
from resources.model_registry import resolve_model

STAGE = "static_table"

_CACHE: dict[tuple, object] = {}
_CACHE_LOCK = threading.Lock()


def is_static(model_name: str | None) -> bool:
    """True when the text model is a static token table (its indices get a fitted table)."""
    return resolve_model(model_name, kind="text").runtime == "static"


COMPONENTS_KEY = "common_components"  # side data: list of k lists of dim floats (absent: none removed)


def fingerprint(token_ids: np.ndarray, rows: np.ndarray, components: np.ndarray | None = None) -> str:
    """A short digest of the fitted rows (and components): stamped on every batch's embeddings made
    with them (without components, the digest tables fitted before them were stamped with)."""
    digest = hashlib.sha256(np.ascontiguousarray(token_ids, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(rows, dtype=np.float32).tobytes())
    if components is not None and len(components):
        digest.update(np.ascontiguousarray(components, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def write_fitted_table(
    outputs: IndexOutputs, token_ids: np.ndarray, rows: np.ndarray, details: dict, components: np.ndarray | None = None
) -> str:
    """Writes the fitted rows and components (atomically) and returns their fingerprint."""
    stamp = fingerprint(token_ids, rows, components)
    table = pa.table({"token_id": pa.array(np.asarray(token_ids, dtype=np.int64)), "row": matrix_to_arrow(rows.astype(np.float32))})
    side = {**details, "fingerprint": stamp}
    if components is not None and len(components):
        side[COMPONENTS_KEY] = np.asarray(components, dtype=np.float32).astype(np.float64).tolist()  # exact in JSON
    outputs.write(STAGE, StageOutput(table, side))
    return stamp


def read_fitted_table(outputs: IndexOutputs) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """(token ids, rows, side data) of the index's fitted table, None when it was never fitted."""
    output = outputs.read(STAGE)
    if output is None:
        return None
    return output.table["token_id"].to_numpy(), arrow_to_matrix(output.table["row"], np.float32), output.side_data


def components_of(details: dict) -> np.ndarray | None:
    """The common components a fitted table's side data names (None for a table fitted before them)."""
    found = details.get(COMPONENTS_KEY)
    return None if not found else np.asarray(found, dtype=np.float32)


def summary(details: dict) -> dict:
    """A table's side data for a person (Dagster metadata, logs): the components counted, not listed."""
    return {**{key: value for key, value in details.items() if key != COMPONENTS_KEY},
            "common_components_removed": len(details.get(COMPONENTS_KEY) or [])}


def index_text_embedder(model_name: str | None, outputs: IndexOutputs | None, base=None):
    """The embedder of an index's text: the static model with the index's fitted rows when it has them
    (cached until the file changes), else the model itself (`base`, or the process-wide one)."""
    from resources.embedder import load_text_embedder

    base = base if base is not None else load_text_embedder(model_name)
    if outputs is None or getattr(base, "basis", None) is None:
        return base
    stamp = file_stamp(outputs.path(STAGE))
    if stamp is None:
        return base
    key = (repr(outputs), id(base), stamp)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    found = read_fitted_table(outputs)
    if found is None:
        return base
    token_ids, rows, details = found
    if details.get("model") not in (None, base.model_name):
        raise ModelError(
            f"{outputs}: the fitted table was made for {details.get('model')!r}, the index embeds with {base.model_name!r}; "
            "create the index again"
        )
    fitted = base.with_fitted_rows(token_ids, rows, components_of(details))
    fitted.fingerprint = details.get("fingerprint", "")
    with _CACHE_LOCK:
        for old in [old for old in _CACHE if old[0] == key[0]]:
            del _CACHE[old]  # one fitted table per index in memory
        _CACHE[key] = fitted
    return fitted


@contextmanager
def fit_lock(outputs: IndexOutputs) -> Iterator[None]:
    """Held while an index's table is fitted, so concurrent batch runs fit it once (a local file lock:
    runs of one dataset share a machine's ATLAS_HOME even when outputs live in an object store)."""
    from filelock import FileLock

    folder = atlas_home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"static_table-{outputs.relative_dir.replace('/', '__')}.lock"
    with FileLock(str(folder / name)):
        yield
