"""What the index stages share: the live rows' vectors, gathered from every batch in row order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from atlas_assets.compute.arrays import matrix_to_arrow
from atlas_assets.errors import InvalidDataError
from atlas_assets.pipeline.assets.common import ROW_ID, StageOutput, live_vectors


def _batch(row_ids: list[int], chunks: int = 1) -> StageOutput:
    vectors = np.array([[row, -row] for row in row_ids], dtype=np.float32)
    pieces = np.array_split(np.arange(len(row_ids)), chunks)
    tables = [pa.table({ROW_ID: pa.array(np.array(row_ids)[p], pa.int64()), "embedding": matrix_to_arrow(vectors[p])})
              for p in pieces]
    return StageOutput(pa.concat_tables(tables))


def test_live_vectors_follow_the_row_order_across_batches_and_chunks() -> None:
    embeddings = {"b2": _batch([7, 5, 9], chunks=2), "b1": _batch([3, 1, 2], chunks=3)}
    vectors = live_vectors(embeddings, np.array([1, 2, 3, 5, 7, 9]))
    assert vectors.dtype == np.float32
    assert vectors[:, 0].tolist() == [1, 2, 3, 5, 7, 9]
    assert vectors[:, 1].tolist() == [-1, -2, -3, -5, -7, -9]


def test_deleted_rows_are_left_out() -> None:
    vectors = live_vectors({"b1": _batch([1, 2, 3, 4], chunks=2)}, np.array([2, 4]))
    assert vectors[:, 0].tolist() == [2, 4]


def test_a_live_row_without_an_embedding_fails_naming_it_and_the_fix() -> None:
    with pytest.raises(InvalidDataError, match=r"rows \[8\].*update_indices"):
        live_vectors({"b1": _batch([1, 2])}, np.array([1, 2, 8]))


def test_no_rows_at_all_says_to_add_data() -> None:
    empty = StageOutput(pa.table({ROW_ID: pa.array([], pa.int64()), "embedding": matrix_to_arrow(np.zeros((0, 2), np.float32))}))
    with pytest.raises(InvalidDataError, match="add_data"):
        live_vectors({"b1": empty}, np.array([], dtype=np.int64))


def test_consuming_takes_each_batch_out_and_gathers_the_same_rows() -> None:
    embeddings = {"b2": _batch([7, 5, 9], chunks=2), "b1": _batch([3, 1, 2], chunks=3)}
    expected = live_vectors(dict(embeddings), np.array([1, 2, 5, 7, 9]))
    consumed = live_vectors(embeddings, np.array([1, 2, 5, 7, 9]), consume=True)
    assert embeddings == {}
    assert consumed.tolist() == expected.tolist()
