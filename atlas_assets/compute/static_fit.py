"""Fitting a static model's token table toward a full model's sentence vectors ("tokenlearn" per index).

A static text vector is the direction of the SIF-weighted mean of its tokens' rows. Given a sample of
a dataset's texts (their token counts) and the full model's vectors of the same texts, the table is
corrected so that those weighted means point where the full model's vectors point, by ridge least
squares (regularised toward the shipped table):

    min_D || Z (U + D) - S Y' ||^2 + ridge || D ||^2

Z is the (texts x vocabulary) matrix of weighted-mean coefficients (count x weight / the text's total
weight), U the unweighted table, Y' the full model's vectors taken into the table's PCA space, S a
diagonal of one scale per text: s_i = ||(Z U)_i|| / ||Y'_i||, so each target keeps the length the
text's weighted mean already has and the fit spends itself on directions only (a text vector is
used at unit length; measured: STS-B two-fold 0.742 with one global scale, 0.755 with one per text).
The solution is D = Z^T (Z Z^T + ridge I)^-1 (S Y' - Z U): an (n x n) solve for n sampled texts, no
loop per text, and only tokens seen in the sample move (a token's correction is a weighted sum of the
residuals of the texts it appears in).

Then SIF's common-component removal (Arora, Liang and Ma 2017): the first principal component of the
sample's fitted (uncentred) weighted means, the direction every text shares, is removed from every
text vector. The removal is linear, so it is applied to the table's rows (`apply_rows`), all of them,
fitted or not: every batch, topic phrase and query of the index gets it with no cost per text.
Measured: STS-B two-fold 0.755 -> 0.763, banking77 k-means AMI +0.02, AG News -0.005; a second
component removes topic axes (AG News k-means AMI 0.57 -> 0.40), so one only.
Pure numpy/scipy: no files, no models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DEFAULT_RIDGE = 0.03  # measured on AG News and banking77 (benchmarks/static_model.py): 0.01-0.03 best
COMMON_COMPONENTS = 1  # SIF's common component(s) removed after the fit (2 removes topic axes)


@dataclass(frozen=True)
class FittedRows:
    """The rows of the (weighted) token table a fit changed: row `token_ids[i]` becomes `rows[i]`."""

    token_ids: np.ndarray  # int64
    rows: np.ndarray  # float32, (len(token_ids), dim), SIF weights baked in like the table's
    # (k, dim) float32 unit rows removed from every row of the table after the rows are put in (SIF's
    # common component); None or (0, dim): none (tables fitted before the removal existed).
    components: np.ndarray | None = None


def weighted_mean_matrix(counts: sp.csr_matrix, weights: np.ndarray) -> sp.csr_matrix:
    """Z: each text's row holds count x weight / (the text's total weight), so Z @ U is the text's
    SIF-weighted mean of unweighted token rows U (a text with no weighted token gets a zero row)."""
    weighted = sp.csr_matrix(counts, dtype=np.float64) @ sp.diags(np.asarray(weights, dtype=np.float64))
    totals = np.asarray(weighted.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(sp.diags(scale) @ weighted)


def common_components(vectors: np.ndarray, count: int) -> np.ndarray:
    """(count, dim): the first `count` principal components of the uncentred `vectors` (their top right
    singular vectors), with a fixed sign (largest entry positive) so a fit is reproducible bit for bit."""
    vectors = np.asarray(vectors, dtype=np.float64)
    vectors = vectors[np.linalg.norm(vectors, axis=1) > 0]
    if count <= 0 or len(vectors) == 0:
        return np.zeros((0, vectors.shape[1]), dtype=np.float64)
    _, _, axes = np.linalg.svd(vectors, full_matrices=False)
    axes = axes[: min(count, len(axes))]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return axes * signs[:, None]


def remove_components(table: np.ndarray, components: np.ndarray | None) -> np.ndarray:
    """`table` with its projection on each of the (orthonormal) `components` removed, row by row."""
    table = np.asarray(table, dtype=np.float64)
    if components is None or len(components) == 0:
        return table
    components = np.asarray(components, dtype=np.float64)
    return table - (table @ components.T) @ components


def into_table_space(vectors: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Full-model vectors in the static table's space: centred by the token vectors' mean and
    projected on the PCA axes the table was reduced with."""
    return (np.asarray(vectors, dtype=np.float64) - mean) @ np.asarray(axes, dtype=np.float64).T


def fit_token_rows(
    counts: sp.csr_matrix,
    weights: np.ndarray,
    table: np.ndarray,
    targets: np.ndarray,
    ridge: float = DEFAULT_RIDGE,
    components: int = COMMON_COMPONENTS,
) -> FittedRows:
    """The corrected rows of `table` (SIF-weighted, (vocabulary, dim)) for texts with token `counts`
    (texts x vocabulary) whose full-model vectors, already in the table's space, are `targets`, and
    the sample's `components` common components (to be removed from the whole table: `apply_rows`).

    Tokens with weight 0 (special tokens) and tokens absent from the sample keep their rows."""
    if counts.shape[0] != len(targets):
        raise ValueError(f"{counts.shape[0]} texts but {len(targets)} target vectors")
    if ridge <= 0:
        raise ValueError("ridge must be > 0")
    if not 0 <= components < table.shape[1]:
        raise ValueError(f"components must be in [0, {table.shape[1]}), got {components}")
    weights = np.asarray(weights, dtype=np.float64)
    mean_of = weighted_mean_matrix(counts, weights)
    seen = np.flatnonzero(np.asarray(abs(mean_of).sum(axis=0)).ravel() > 0)
    local = mean_of[:, seen]  # only the columns that can move
    unweighted = np.asarray(table, dtype=np.float64)[seen] / weights[seen, None]
    predicted = local @ unweighted
    targets = np.asarray(targets, dtype=np.float64)
    # One scale per text: each target at its weighted mean's length (only directions are used).
    lengths = np.linalg.norm(targets, axis=1, keepdims=True)
    scale = np.divide(np.linalg.norm(predicted, axis=1, keepdims=True), lengths, out=np.zeros_like(lengths), where=lengths > 1e-12)
    residual = scale * targets - predicted
    gram = (local @ local.T).toarray()
    gram[np.diag_indices_from(gram)] += ridge
    coefficients = np.linalg.solve(gram, residual)
    corrected = unweighted + local.T @ coefficients
    shared = common_components(local @ corrected, components)  # the sample's fitted weighted means
    return FittedRows(
        seen.astype(np.int64), (corrected * weights[seen, None]).astype(np.float32), shared.astype(np.float32)
    )


def apply_rows(table: np.ndarray, fitted: FittedRows) -> np.ndarray:
    """A copy of `table` with the fitted rows put in, then the fit's common components removed from
    every row (a text vector is a sum of rows, so it is removed from every text vector)."""
    output = np.array(table, dtype=np.float32, copy=True)
    output[fitted.token_ids] = fitted.rows
    if fitted.components is None or len(fitted.components) == 0:
        return output
    return remove_components(output, fitted.components).astype(np.float32)
