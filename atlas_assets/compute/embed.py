"""Pure batching arithmetic of the embedding engine: no model, no files, no network.

Transformer cost grows with the padded length of a batch, so texts are grouped by token length
(short with short), each batch is padded only to its own longest text, and the results are put back
in input order. Matryoshka models are truncated to a prefix of the vector and renormalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_sorted_batches(
    lengths: Sequence[int] | np.ndarray, batch_size: int, max_batch_tokens: int | None = None
) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (longest first).

    Longest first so the largest allocation happens at once and later batches reuse it; the stable
    sort keeps equal-length texts in input order, which makes the plan deterministic. A batch holds at
    most `batch_size` rows and, when `max_batch_tokens` is given, at most that many padded positions
    (rows x its longest length; a single row is always allowed), which bounds memory for long texts.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    if max_batch_tokens is None:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches = []
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)  # sorted descending: the first row is the longest
        rows = max(1, min(batch_size, max_batch_tokens // longest))
        batches.append(order[start : start + rows])
        start += rows
    return batches


def input_order_batches(count: int, batch_size: int) -> list[np.ndarray]:
    """Row indices in consecutive batches, as an unsorted embedder would take them (for comparison)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.arange(count, dtype=np.int64)
    return [order[start : start + batch_size] for start in range(0, count, batch_size)]


def pad_batch(token_ids: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), both int64 of shape (rows, longest row), right-padded with pad_id.

    The mask is 1 on real tokens and 0 on padding: the model must ignore padded positions both in
    attention and in pooling, which is what the mask tells it.
    """
    rows = len(token_ids)
    width = max((len(ids) for ids in token_ids), default=0)
    input_ids = np.full((rows, width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((rows, width), dtype=np.int64)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def padding_share(lengths: Sequence[int] | np.ndarray, batches: Sequence[np.ndarray]) -> float:
    """Share of computed positions that are padding under a batch plan (0 = no waste)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    computed = sum(int(lengths[batch].max()) * len(batch) for batch in batches if len(batch))
    real = int(lengths.sum())
    return 0.0 if computed == 0 else 1.0 - real / computed


def scatter_to_input_order(batches: Sequence[np.ndarray], results: Sequence[np.ndarray], count: int) -> np.ndarray:
    """One (count, dim) array with each batch's rows written back at their original positions."""
    if not results:
        return np.zeros((count, 0), dtype=np.float32)
    dimension = results[0].shape[1]
    output = np.empty((count, dimension), dtype=results[0].dtype)
    for batch, vectors in zip(batches, results, strict=True):
        output[batch] = vectors
    return output


def mean_pool(token_vectors: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors of real tokens only (padding carries zero weight)."""
    weights = attention_mask.astype(token_vectors.dtype)[:, :, None]
    summed = (token_vectors * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    return summed / counts


def cls_pool(token_vectors: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The first token's vector ([CLS]), the pooling of models trained that way."""
    del attention_mask
    return token_vectors[:, 0, :]


def pool(token_vectors: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
    """Pool (rows, tokens, dim) token vectors into (rows, dim) with the model's pooling ("mean"|"cls")."""
    if pooling == "mean":
        return mean_pool(token_vectors, attention_mask)
    if pooling == "cls":
        return cls_pool(token_vectors, attention_mask)
    raise ValueError(f"unknown pooling {pooling!r}; expected 'mean' or 'cls'")


def l2_normalise(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (rows of zeros stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, eps)).astype(np.float32, copy=False)


def layer_norm(vectors: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Per-row layer normalisation without scale or shift (nomic-embed's step before truncation)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    mean = vectors.mean(axis=1, keepdims=True)
    variance = vectors.var(axis=1, keepdims=True)
    return ((vectors - mean) / np.sqrt(variance + eps)).astype(np.float32, copy=False)


def matryoshka_truncate(
    vectors: np.ndarray, dimension: int, normalise: bool = True, layer_norm_first: bool = False
) -> np.ndarray:
    """The first `dimension` components of each row, renormalised to unit length.

    Matryoshka-trained models pack the most information into the leading components, so a prefix is
    a smaller embedding of the same text; it is only unit length again after renormalising.
    `layer_norm_first` reproduces nomic-embed-text-v1.5's recipe (layer norm, truncate, normalise).
    """
    if dimension < 1 or dimension > vectors.shape[1]:
        raise ValueError(f"dimension must be in 1..{vectors.shape[1]}, got {dimension}")
    if layer_norm_first:
        vectors = layer_norm(vectors)
    truncated = np.ascontiguousarray(vectors[:, :dimension], dtype=np.float32)
    return l2_normalise(truncated) if normalise else truncated
