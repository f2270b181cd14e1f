"""Conversions between numpy matrices and Arrow fixed-size-list columns, without copies where possible."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa


def matrix_to_arrow(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """(n, d) array -> Arrow fixed_size_list<d> column (one list per row)."""
    matrix = np.ascontiguousarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {matrix.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def arrow_to_matrix(column: pa.Array | pa.ChunkedArray, dtype: type = np.float32) -> np.ndarray:
    """Arrow fixed_size_list<d> column -> (n, d) array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    width = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=dtype).reshape(len(column), width)


def scatter_rows(column: pa.ChunkedArray, destination: np.ndarray, into: np.ndarray, filled: np.ndarray) -> None:
    """Row i of a fixed_size_list column goes to `into[destination[i]]` (-1: skipped), and `filled`
    marks it; chunk by chunk, so the column is never combined into one more copy of itself."""
    start = 0
    for chunk in column.chunks:
        rows = destination[start : start + len(chunk)]
        start += len(chunk)
        kept = rows >= 0
        if kept.all():  # no boolean-indexed copy of the chunk
            into[rows] = arrow_to_matrix(chunk, into.dtype.type)
            filled[rows] = True
        elif kept.any():
            into[rows[kept]] = arrow_to_matrix(chunk, into.dtype.type)[kept]
            filled[rows[kept]] = True


def vectors_in_order(
    tables: Iterable[pa.Table], row_ids: np.ndarray, id_column: str, vector_column: str
) -> tuple[np.ndarray | None, np.ndarray]:
    """The `vector_column` vector of each of `row_ids` (matched on `id_column`), gathered table by
    table into one float32 matrix, and which of the rows were found; the matrix is None when no
    table has rows. Concatenating the tables and then ordering the rows held the vectors three times
    at once; here each table is let go once copied, so a generator that reads the tables one by one
    holds one of them at a time."""
    vectors: np.ndarray | None = None
    filled = np.zeros(len(row_ids), dtype=bool)
    for table in tables:
        if table.num_rows:
            if vectors is None:
                width = table.schema.field(vector_column).type.list_size
                vectors = np.empty((len(row_ids), width), dtype=np.float32)
            destination = positions_of(row_ids, table[id_column].to_numpy())  # -1: a row not wanted
            scatter_rows(table[vector_column], destination, vectors, filled)
        del table
    return vectors, filled


def positions_of(stored_ids: np.ndarray, wanted_ids: np.ndarray) -> np.ndarray:
    """For each wanted id, its position in `stored_ids`, or -1 where it is absent (ids unique)."""
    wanted_ids = np.asarray(wanted_ids)
    if len(stored_ids) == 0:
        return np.full(len(wanted_ids), -1, dtype=np.int64)
    order = np.argsort(stored_ids, kind="stable")
    sorted_ids = np.asarray(stored_ids)[order]
    positions = np.minimum(np.searchsorted(sorted_ids, wanted_ids), len(sorted_ids) - 1)
    found = sorted_ids[positions] == wanted_ids
    return np.where(found, order[positions], -1).astype(np.int64)


def unit_rows(vectors: np.ndarray, tolerance: float = 1e-4) -> np.ndarray:
    """Every row scaled to length 1: `vectors` itself when they already are (text embeddings are),
    else one scaled copy; zero rows stay zero. Norms by einsum: np.linalg.norm would square a full
    n x d copy first."""
    vectors = np.asarray(vectors)
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    if len(norms) and np.abs(norms - 1.0).max() <= tolerance:
        return vectors
    return vectors / np.maximum(norms, 1e-12)[:, None]


def rows_by_label(labels: np.ndarray) -> dict[int, np.ndarray]:
    """The rows holding each label, in one sort (not one full scan per label: 1,000 topics x 1M rows)."""
    if len(labels) == 0:
        return {}
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    return {int(value): rows for value, rows in zip(values, np.split(order, starts[1:]), strict=True)}
