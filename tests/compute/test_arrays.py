import numpy as np
import pyarrow as pa
import pytest

from atlas_assets.compute.arrays import (
    arrow_to_matrix,
    matrix_to_arrow,
    rows_by_label,
    scatter_rows,
    unit_rows,
)


def test_a_matrix_round_trips_through_arrow():
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    column = matrix_to_arrow(matrix)
    assert len(column) == 4 and column.type.list_size == 3
    np.testing.assert_array_equal(arrow_to_matrix(column), matrix)


def test_integer_matrices_keep_their_values():
    matrix = np.array([[1, 2], [3, -1]], dtype=np.int64)
    np.testing.assert_array_equal(arrow_to_matrix(matrix_to_arrow(matrix), np.int64), matrix)


def test_a_vector_is_not_a_matrix():
    with pytest.raises(ValueError, match="2-D"):
        matrix_to_arrow(np.zeros(3))


def test_positions_of_finds_each_id_and_marks_the_absent():
    from atlas_assets.compute.arrays import positions_of

    stored = np.array([30, 10, 20])
    np.testing.assert_array_equal(positions_of(stored, np.array([10, 20, 99, 30])), [1, 2, -1, 0])
    np.testing.assert_array_equal(positions_of(np.array([], dtype=np.int64), np.array([1])), [-1])


def test_rows_by_label_lists_each_labels_rows_in_order() -> None:
    groups = rows_by_label(np.array([3, 1, 3, 0, 1, 3]))
    assert sorted(groups) == [0, 1, 3]
    assert [groups[label].tolist() for label in (0, 1, 3)] == [[3], [1, 4], [0, 2, 5]]
    assert rows_by_label(np.array([], dtype=np.int64)) == {}


def test_unit_rows_returns_unit_vectors_themselves_and_scales_a_copy_of_others():
    unit = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    assert unit_rows(unit) is unit  # no copy of vectors that are unit already
    raw = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    scaled = unit_rows(raw)
    np.testing.assert_allclose(scaled, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)  # a zero row stays zero
    assert scaled.dtype == np.float32 and raw[0, 0] == 3.0  # the input is untouched


def test_scatter_rows_puts_each_row_of_every_chunk_in_its_place_and_skips_the_unwanted():
    matrix = np.arange(12, dtype=np.float32).reshape(6, 2)
    column = pa.chunked_array([matrix_to_arrow(matrix[:4]), matrix_to_arrow(matrix[4:])])
    into = np.zeros((5, 2), dtype=np.float32)
    filled = np.zeros(5, dtype=bool)

    scatter_rows(column, np.array([4, -1, 0, 2, 1, -1]), into, filled)

    assert into[[4, 0, 2, 1]].tolist() == matrix[[0, 2, 3, 4]].tolist()
    assert filled.tolist() == [True, True, True, False, True]
