"""Batching arithmetic of the embedding engine: sorted batches, padding, order, pooling, Matryoshka."""

from __future__ import annotations

import numpy as np
import pytest

from atlas_assets.compute.embed import (
    input_order_batches,
    l2_normalise,
    length_sorted_batches,
    matryoshka_truncate,
    mean_pool,
    pad_batch,
    padding_share,
    pool,
    scatter_to_input_order,
)


def test_sorted_batches_cover_every_row_once_and_group_similar_lengths() -> None:
    lengths = np.array([5, 50, 7, 48, 6, 49, 3, 51])
    batches = length_sorted_batches(lengths, batch_size=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    assert [sorted(lengths[batch].tolist()) for batch in batches] == [[48, 49, 50, 51], [3, 5, 6, 7]]


def test_sorting_cuts_padding_compared_with_input_order() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 200, size=1000)
    sorted_waste = padding_share(lengths, length_sorted_batches(lengths, 32))
    unsorted_waste = padding_share(lengths, input_order_batches(len(lengths), 32))
    assert sorted_waste < 0.05 < 0.4 < unsorted_waste


def test_token_budget_limits_rows_of_long_batches_but_not_short_ones() -> None:
    lengths = np.array([1000, 900, 800, 10, 10, 10, 10])
    batches = length_sorted_batches(lengths, batch_size=4, max_batch_tokens=2000)
    assert [len(batch) for batch in batches] == [2, 2, 3]
    assert all(len(batch) * lengths[batch].max() <= 2000 for batch in batches)
    single = length_sorted_batches(np.array([5000]), batch_size=4, max_batch_tokens=100)
    assert [len(batch) for batch in single] == [1]


def test_equal_lengths_keep_input_order() -> None:
    batches = length_sorted_batches([4, 4, 4, 4, 4], batch_size=2)
    assert np.concatenate(batches).tolist() == [0, 1, 2, 3, 4]


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        length_sorted_batches([1, 2], batch_size=0)


def test_padding_is_to_the_longest_row_with_a_matching_mask() -> None:
    input_ids, mask = pad_batch([[101, 7, 102], [101, 102], [101, 8, 9, 10, 102]], pad_id=0)
    assert input_ids.dtype == np.int64 and mask.dtype == np.int64
    assert input_ids.shape == (3, 5)
    assert input_ids[1].tolist() == [101, 102, 0, 0, 0]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_results_go_back_to_input_order() -> None:
    lengths = np.array([3, 9, 1, 7, 5])
    batches = length_sorted_batches(lengths, batch_size=2)
    results = [lengths[batch][:, None].astype(np.float32) for batch in batches]  # each row "embeds" its length
    restored = scatter_to_input_order(batches, results, len(lengths))
    assert restored[:, 0].tolist() == lengths.tolist()


def test_mean_pooling_ignores_padded_positions() -> None:
    tokens = np.array([[[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    assert mean_pool(tokens, mask).tolist() == [[2.0, 3.0]]
    assert pool(tokens, mask, "cls").tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError):
        pool(tokens, mask, "max")


def test_normalised_rows_have_unit_length_and_zero_rows_stay_zero() -> None:
    vectors = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)


def test_matryoshka_keeps_the_prefix_renormalised() -> None:
    rng = np.random.default_rng(1)
    vectors = l2_normalise(rng.normal(size=(10, 768)))
    small = matryoshka_truncate(vectors, 256)
    assert small.shape == (10, 256)
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-6)
    expected = vectors[:, :256] / np.linalg.norm(vectors[:, :256], axis=1, keepdims=True)
    np.testing.assert_allclose(small, expected, atol=1e-6)
    with pytest.raises(ValueError):
        matryoshka_truncate(vectors, 1000)


def test_matryoshka_with_layer_norm_centres_before_truncating() -> None:
    vectors = np.array([[10.0, 12.0, 14.0, 16.0]], dtype=np.float32)
    truncated = matryoshka_truncate(vectors, 2, layer_norm_first=True)
    assert truncated[0, 0] < 0 < truncated[0, 1] or truncated[0, 0] < truncated[0, 1] < 0
    np.testing.assert_allclose(np.linalg.norm(truncated), 1.0, atol=1e-6)
