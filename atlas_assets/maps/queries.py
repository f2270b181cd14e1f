"""Search queries as vectors in a map's embedding space (text is embedded with the map's own model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atlas_assets.errors import InvalidOptionError
from atlas_assets.maps.model import MapModel
from resources.embedder import load_text_embedder


def query_vectors(model: MapModel, queries: np.ndarray | Sequence[str] | Sequence[Sequence[float]], width: int) -> np.ndarray:
    """(n_queries, width) float32 vectors for query vectors, or for query texts on a text map."""
    if isinstance(queries, np.ndarray):
        matrix = np.atleast_2d(queries).astype(np.float32)
    elif len(queries) and all(isinstance(query, str) for query in queries):
        if model.modality != "text" or not model.embedding_model:
            raise InvalidOptionError("text queries need a map built on text; pass query vectors for this map")
        matrix = load_text_embedder(model.embedding_model).embed_queries(list(queries))
    else:
        matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise InvalidOptionError(f"query vectors must be (n, {width}); got shape {matrix.shape}")
    return matrix
