"""Fitting a static token table toward a full model's vectors: ridge least squares, vectorised, moving
only the tokens the sample holds, toward each target's direction only; then the sample's common
component removed from every row."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from atlas_assets.compute.static_fit import (
    FittedRows,
    apply_rows,
    common_components,
    fit_token_rows,
    into_table_space,
    remove_components,
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
    fitted = fit_token_rows(counts, weights, shipped, targets, ridge=0.01, components=0)
    before = _cosine_error(shipped, counts, weights, targets)
    after = _cosine_error(apply_rows(shipped, fitted), counts, weights, targets)
    assert after < 0.25 * before


def test_the_fit_generalises_to_texts_outside_the_sample() -> None:
    counts, weights, shipped, _, targets = _problem(texts=300)
    fitted = fit_token_rows(counts[:200], weights, shipped, targets[:200], ridge=0.03, components=0)
    held_counts, held_targets = counts[200:], targets[200:]
    before = _cosine_error(shipped, held_counts, weights, held_targets)
    after = _cosine_error(apply_rows(shipped, fitted), held_counts, weights, held_targets)
    assert after < before


def test_only_tokens_of_the_sample_move_and_special_tokens_never() -> None:
    counts, weights, shipped, _, targets = _problem()
    fitted = fit_token_rows(counts, weights, shipped, targets, components=0)  # the removal: below
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
    for components in (-1, shipped.shape[1]):
        with pytest.raises(ValueError, match="components"):
            fit_token_rows(counts, weights, shipped, targets, components=components)


def test_only_a_targets_direction_counts_not_its_length() -> None:
    """One scale per text: the fit is the same whatever length each target has (with one global
    scale, a long target would pull its text's tokens harder)."""
    counts, weights, shipped, _, targets = _problem()
    lengths = np.random.default_rng(2).uniform(0.1, 10.0, size=(len(targets), 1))
    first = fit_token_rows(counts, weights, shipped, targets)
    second = fit_token_rows(counts, weights, shipped, targets * lengths)
    np.testing.assert_allclose(second.rows, first.rows, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(second.components, first.components, atol=1e-5)


def test_the_common_component_is_the_direction_every_text_shares() -> None:
    rng = np.random.default_rng(3)
    shared = rng.normal(size=16)
    shared /= np.linalg.norm(shared)
    vectors = 4.0 * shared + rng.normal(size=(300, 16))  # every text: the shared part plus its own
    found = common_components(vectors, 1)
    assert found.shape == (1, 16) and abs(float(found[0] @ shared)) > 0.99
    np.testing.assert_allclose(common_components(-vectors, 1), found)  # a fixed sign: reproducible
    assert common_components(vectors, 0).shape == (0, 16)
    cleaned = remove_components(vectors, found)
    np.testing.assert_allclose(cleaned @ found.T, 0.0, atol=1e-9)
    np.testing.assert_allclose(remove_components(vectors, None), vectors)


def test_the_fit_removes_its_common_component_from_every_row_of_the_table() -> None:
    """Rows the sample never saw lose it too: a text (a sum of rows) then never holds it, so the
    index's batches, topic phrases and queries all share the space."""
    counts, weights, shipped, _, targets = _problem()
    fitted = fit_token_rows(counts, weights, shipped, targets)
    assert fitted.components.shape == (1, shipped.shape[1]) and fitted.components.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fitted.components, axis=1), 1.0, atol=1e-5)
    table = apply_rows(shipped, fitted)
    np.testing.assert_allclose(table @ fitted.components.T, 0.0, atol=1e-5)
    unseen = np.setdiff1d(np.arange(len(shipped)), fitted.token_ids)
    np.testing.assert_allclose(table[unseen], remove_components(shipped[unseen], fitted.components), atol=1e-5)
    # A table fitted before components existed (none stored) loads as it did: rows put in, nothing removed.
    old = apply_rows(shipped, FittedRows(fitted.token_ids, fitted.rows))
    np.testing.assert_array_equal(old[fitted.token_ids], fitted.rows)
    np.testing.assert_array_equal(old[unseen], shipped[unseen].astype(np.float32))
