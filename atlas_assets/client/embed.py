"""`embed.text(...)` and `embed.image(...)` of the `nomic` client, run offline on this project's ONNX
models, returning nomic's result shape: `{"embeddings": [[...], ...], "usage": {...}, "model": name,
"inference_mode": "local"}`. `login(...)` is the client's login, a no-op here (nothing is remote).

The default model is the one maps are built with here (`NomicEmbed`, i.e. all-MiniLM-L6-v2 for text,
efficientnet-lite0 for images), so `embed.text(queries, task_type="search_query")` gives vectors a
default map can be searched with. Nomic's own names (`nomic-embed-text-v1.5`, ...) work when that model
is installed (`atlas models install nomic-embed-text-v1.5`, online once); offline they fail at once with
a ModelError (a ValueError) naming the models that work offline.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from atlas_assets.errors import InvalidOptionError
from resources.embedder import clear_embedder_cache, load_image_embedder, load_text_embedder

log = logging.getLogger(__name__)

TASK_TYPES = ("search_query", "search_document", "classification", "clustering")
INFERENCE_MODES = ("remote", "local", "dynamic")


def text(
    texts: list[str],
    *,
    model: str | None = None,
    task_type: str = "search_document",
    dimensionality: int | None = None,
    long_text_mode: str = "truncate",
    inference_mode: str = "remote",
    device: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Embeddings of `texts` as nomic returns them. task_type picks the model's prefix
    (search_query / search_document / classification / clustering, for models trained with them);
    dimensionality a Matryoshka size; every inference_mode runs locally; device and the Embed4All
    keyword arguments are accepted and ignored."""
    if isinstance(texts, str):
        raise TypeError("'texts' parameter must be list[str], not str")
    if task_type not in TASK_TYPES:
        raise InvalidOptionError(f"Invalid task type: {task_type!r}; one of {', '.join(TASK_TYPES)}")
    if inference_mode not in INFERENCE_MODES:
        raise InvalidOptionError(f"Unknown inference mode: {inference_mode!r}; one of {', '.join(INFERENCE_MODES)}")
    if long_text_mode not in ("truncate", "mean"):
        raise InvalidOptionError(f"long_text_mode must be 'truncate' or 'mean', got {long_text_mode!r}")
    if long_text_mode == "mean":
        warnings.warn("long_text_mode='mean' is not supported here; long texts are truncated", stacklevel=2)
    if device is not None or kwargs:
        log.info("embed.text: device and Embed4All arguments are ignored (onnxruntime on the CPU)")
    embedder = load_text_embedder(model, dimensionality=dimensionality)
    texts = list(texts)
    spec = embedder.spec
    if task_type == "search_query":
        prefix = spec.query_prefix
    elif task_type == "search_document":
        prefix = spec.document_prefix
    else:  # models with task prefixes (nomic-embed) know these two as well; others take none
        prefix = f"{task_type}: " if spec.query_prefix else ""
    chunks = list(embedder.iter_embed_documents(texts, prefix=prefix)) if texts else []
    tokens = int(embedder.count_tokens([prefix + t for t in texts]).sum()) if texts else 0
    return {
        "embeddings": [row.tolist() for chunk in chunks for row in chunk],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "model": model if model is not None else spec.name,
        "inference_mode": "local",
    }


def image(images: Sequence[Any], model: str | None = None) -> dict[str, Any]:
    """Embeddings of images (file paths, bytes or PIL images) as nomic returns them. URLs need the
    network and are refused."""
    if isinstance(images, str):
        raise TypeError("'images' parameter must be list of strings or PIL images, not str")
    images = list(images)
    urls = [item for item in images if isinstance(item, str) and item.startswith(("http://", "https://"))]
    if urls:
        raise InvalidOptionError(
            f"image URLs cannot be fetched offline ({urls[0]!r}...); download the images and pass paths, bytes or PIL images"
        )
    embedder = load_image_embedder(model)
    vectors = embedder.embed_images(images) if images else []
    return {
        "embeddings": [row.tolist() for row in vectors],
        "usage": {"images": len(images), "total_tokens": 0},
        "model": model if model is not None else embedder.spec.name,
        "inference_mode": "local",
    }


def free_embedding_model() -> None:
    """Free the loaded embedding models (nomic's name for it)."""
    clear_embedder_cache()


def login(token: str | None = None, tenant: str = "production", domain: str | None = None) -> None:
    """nomic's `login(token, tenant, domain)`: nothing to log in to here (everything is local), so it
    only checks nomic's own argument rule and returns."""
    if tenant == "enterprise" and domain is None:
        raise InvalidOptionError("Enterprise tenants must specify their deployment domain.")
    if tenant not in ("production", "staging", "enterprise"):
        raise InvalidOptionError("Invalid tenant.")
    log.info("login: atlas-assets runs locally; no token is needed")
