"""Fitting a static token table toward a full model's vectors: ridge least squares, vectorised, moving
only the tokens the sample holds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from atlas_assets.compute.static_fit import (
    apply_rows,
    fit_token_rows,
    into_table_space,
    weighted_mean_matrix,
)


def _problem(seed: int = 0, vocabulary: int = 200, texts: int = 150, dim: int = 8):
    """A shipped table that is a noisy copy of a true one, and texts whose targets the true one makes."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.2, 1.0, vocabulary)
    weights[0] = 0.0  # a special token: never pooled, never fitted
    truth = rng.normal(size=(vocabulary, dim))
    shipped = (truth + 0.8 * rng.normal(size=truth.shape)) * weights[:, None]
    used = np.arange(1, vocabulary // 2)  # the second half of the vocabulary never occurs
    counts = sp.random(texts, vocabulary, density=0.05, random_state=seed, format="csr", dtype=np.float64)
    counts = sp.csr_matrix(counts[:, :] @ sp.diags(np.isin(np.arange(vocabulary), used).astype(float)))
    counts.data = np.ceil(counts.data * 3)
    counts.eliminate_zeros()
    targets = weighted_mean_matrix(counts, weights) @ truth
    return counts, weights, shipped, truth, targets


def _cosine_error(table: np.ndarray, counts, weights, targets) -> float:
    predicted = weighted_mean_matrix(counts, weights) @ (table / np.where(weights[:, None] > 0, weights[:, None], 1))
    keep = np.linalg.norm(targets, axis=1) > 0
    predicted, targets = predicted[keep], targets[keep]
    cosine = (predicted * targets).sum(1) / np.linalg.norm(predicted, axis=1) / np.linalg.norm(targets, axis=1)
    return float(1 - cosine.mean())


def test_weighted_mean_matrix_rows_are_weighted_means() -> None:
    counts = sp.csr_matrix(np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    weights = np.array([0.5, 1.0, 1.0])
    matrix = weighted_mean_matrix(counts, weights).toarray()
    np.testing.assert_allclose(matrix, [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])  # an empty text: a zero row


def test_the_fit_brings_the_sample_toward_its_targets() -> None:
    counts, weights, shipped, _, targets = _problem()
    fitted = fit_token_rows(counts, weights, shipped, targets, ridge=0.01)
    before = _cosine_error(shipped, counts, weights, targets)
    after = _cosine_error(apply_rows(shipped, fitted), counts, weights, targets)
    assert after < 0.25 * before


def test_the_fit_generalises_to_texts_outside_the_sample() -> None:
    counts, weights, shipped, _, targets = _problem(texts=300)
    fitted = fit_token_rows(counts[:200], weights, shipped, targets[:200], ridge=0.03)
    held_counts, held_targets = counts[200:], targets[200:]
    before = _cosine_error(shipped, held_counts, weights, held_targets)
    after = _cosine_error(apply_rows(shipped, fitted), held_counts, weights, held_targets)
    assert after < before


def test_only_tokens_of_the_sample_move_and_special_tokens_never() -> None:
    counts, weights, shipped, _, targets = _problem()
    fitted = fit_token_rows(counts, weights, shipped, targets)
    seen = np.flatnonzero(np.asarray(counts.sum(axis=0)).ravel())
    assert set(fitted.token_ids.tolist()) == set(seen.tolist()) - {0}
    table = apply_rows(shipped, fitted)
    unseen = np.setdiff1d(np.arange(len(shipped)), fitted.token_ids)
    np.testing.assert_array_equal(table[unseen], shipped[unseen].astype(np.float32))
    assert fitted.rows.dtype == np.float32 and fitted.rows.shape == (len(fitted.token_ids), shipped.shape[1])


def test_targets_go_into_the_tables_pca_space() -> None:
    rng = np.random.default_rng(1)
    axes = np.linalg.qr(rng.normal(size=(6, 6)))[0][:3]
    mean = rng.normal(size=6)
    vectors = rng.normal(size=(4, 6))
    np.testing.assert_allclose(into_table_space(vectors, mean, axes), (vectors - mean) @ axes.T)


def test_bad_inputs_are_refused() -> None:
    counts, weights, shipped, _, targets = _problem()
    with pytest.raises(ValueError, match="target vectors"):
        fit_token_rows(counts, weights, shipped, targets[:-1])
    with pytest.raises(ValueError, match="ridge"):
        fit_token_rows(counts, weights, shipped, targets, ridge=0.0)
