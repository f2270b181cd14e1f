"""Fitting a static model's token table toward a full model's sentence vectors ("tokenlearn" per index).

A static text vector is the direction of the SIF-weighted mean of its tokens' rows. Given a sample of
a dataset's texts (their token counts) and the full model's vectors of the same texts, the table is
corrected so that those weighted means point where the full model's vectors point, by ridge least
squares (regularised toward the shipped table):

    min_D || Z (U + D) - s Y' ||^2 + ridge || D ||^2

Z is the (texts x vocabulary) matrix of weighted-mean coefficients (count x weight / the text's total
weight), U the unweighted table, Y' the full model's vectors taken into the table's PCA space, s one
global scale. The solution is D = Z^T (Z Z^T + ridge I)^-1 (s Y' - Z U): an (n x n) solve for n sampled
texts, no loop per text, and only tokens seen in the sample move (a token's correction is a
weighted sum of the residuals of the texts it appears in). Pure numpy/scipy: no files, no models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DEFAULT_RIDGE = 0.03  # measured on AG News and banking77 (benchmarks/static_model.py): 0.01-0.03 best


@dataclass(frozen=True)
class FittedRows:
    """The rows of the (weighted) token table a fit changed: row `token_ids[i]` becomes `rows[i]`."""

    token_ids: np.ndarray  # int64
    rows: np.ndarray  # float32, (len(token_ids), dim), SIF weights baked in like the table's


def weighted_mean_matrix(counts: sp.csr_matrix, weights: np.ndarray) -> sp.csr_matrix:
    """Z: each text's row holds count x weight / (the text's total weight), so Z @ U is the text's
    SIF-weighted mean of unweighted token rows U (a text with no weighted token gets a zero row)."""
    weighted = sp.csr_matrix(counts, dtype=np.float64) @ sp.diags(np.asarray(weights, dtype=np.float64))
    totals = np.asarray(weighted.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(sp.diags(scale) @ weighted)


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
) -> FittedRows:
    """The corrected rows of `table` (SIF-weighted, (vocabulary, dim)) for texts with token `counts`
    (texts x vocabulary) whose full-model vectors, already in the table's space, are `targets`.

    Tokens with weight 0 (special tokens) and tokens absent from the sample keep their rows."""
    if counts.shape[0] != len(targets):
        raise ValueError(f"{counts.shape[0]} texts but {len(targets)} target vectors")
    if ridge <= 0:
        raise ValueError("ridge must be > 0")
    weights = np.asarray(weights, dtype=np.float64)
    mean_of = weighted_mean_matrix(counts, weights)
    seen = np.flatnonzero(np.asarray(abs(mean_of).sum(axis=0)).ravel() > 0)
    local = mean_of[:, seen]  # only the columns that can move
    unweighted = np.asarray(table, dtype=np.float64)[seen] / weights[seen, None]
    predicted = local @ unweighted
    targets = np.asarray(targets, dtype=np.float64)
    # One global scale: a weighted mean of token vectors is shorter than a sentence vector.
    scale = np.median(np.linalg.norm(predicted, axis=1)) / max(float(np.median(np.linalg.norm(targets, axis=1))), 1e-12)
    residual = scale * targets - predicted
    gram = (local @ local.T).toarray()
    gram[np.diag_indices_from(gram)] += ridge
    coefficients = np.linalg.solve(gram, residual)
    corrected = unweighted + local.T @ coefficients
    return FittedRows(seen.astype(np.int64), (corrected * weights[seen, None]).astype(np.float32))


def apply_rows(table: np.ndarray, fitted: FittedRows) -> np.ndarray:
    """A copy of `table` with the fitted rows put in."""
    output = np.array(table, dtype=np.float32, copy=True)
    output[fitted.token_ids] = fitted.rows
    return output
