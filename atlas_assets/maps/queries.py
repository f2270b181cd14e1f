"""Search queries as vectors in a map's embedding space (text is embedded with the map's own model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atlas_assets.errors import InvalidOptionError
from atlas_assets.maps.model import MapModel
from resources.index_outputs import IndexOutputs
from resources.static_table import index_text_embedder


def query_vectors(model: MapModel, queries: np.ndarray | Sequence[str] | Sequence[Sequence[float]], width: int) -> np.ndarray:
    """(n_queries, width) float32 vectors for query vectors, or for query texts on a text map."""
    if isinstance(queries, np.ndarray):
        matrix = np.atleast_2d(queries).astype(np.float32)
    elif len(queries) and all(isinstance(query, str) for query in queries):
        if model.modality != "text" or not model.embedding_model:
            raise InvalidOptionError("text queries need a map built on text; pass query vectors for this map")
        matrix = _index_embedder(model).embed_queries(list(queries))
    else:
        matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise InvalidOptionError(f"query vectors must be (n, {width}); got shape {matrix.shape}")
    return matrix


def _index_embedder(model: MapModel):
    """The map's model, with its index's fitted static table when it has one (queries must land in the
    space the rows were embedded in). The key is `<org>/<slug>/<index id>` (maps/loader.map_key)."""
    parts = model.key.split("/")
    outputs = IndexOutputs(parts[0], "/".join(parts[1:-1]), parts[-1]) if len(parts) >= 3 else None
    return index_text_embedder(model.embedding_model, outputs)
