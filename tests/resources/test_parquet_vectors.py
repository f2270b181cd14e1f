"""Vector columns are stored in Parquet as fixed-size binary and come back as the same fixed-size lists."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from atlas_assets.compute.arrays import matrix_to_arrow
from resources.index_outputs import StageOutput, read_output, write_output
from resources.parquet_vectors import VECTOR_COLUMNS_KEY, decode_vector_columns, encode_vector_columns


def _table(rows: int = 10) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "_row_id": np.arange(rows, dtype=np.int64),
            "embedding": matrix_to_arrow(rng.normal(size=(rows, 6)).astype(np.float32)),
            "neighbour_indices": matrix_to_arrow(rng.integers(0, rows, size=(rows, 3))),
        }
    )


def test_round_trip_gives_back_equal_columns_of_every_chunk_and_slice():
    table = _table()
    chunked = pa.concat_tables([table.slice(4, 5), table.slice(0, 4), table.slice(9, 1)])

    encoded = encode_vector_columns(chunked)

    assert pa.types.is_fixed_size_binary(encoded.schema.field("embedding").type)
    assert encoded.schema.field("embedding").type.byte_width == 6 * 4
    assert pa.types.is_fixed_size_binary(encoded.schema.field("neighbour_indices").type)
    decoded = decode_vector_columns(encoded)
    assert decoded.schema.metadata is None
    assert decoded.equals(chunked)


def test_columns_with_nulls_and_non_numeric_lists_stay_nested():
    with_null = pa.array([[1.0, 2.0], None], pa.list_(pa.float32(), 2))
    null_inside = pa.array([[1.0, None], [3.0, 4.0]], pa.list_(pa.float32(), 2))
    words = pa.array([["a", "b"], ["c", "d"]], pa.list_(pa.string(), 2))
    table = pa.table({"with_null": with_null, "null_inside": null_inside, "words": words})

    encoded = encode_vector_columns(table)

    assert encoded.equals(table)
    assert encoded.schema.metadata is None


def test_a_selection_of_columns_decodes_only_what_it_has():
    encoded = encode_vector_columns(_table())
    decoded = decode_vector_columns(encoded.select(["_row_id", "embedding"]))
    assert decoded.column_names == ["_row_id", "embedding"]
    assert decoded["embedding"].equals(_table()["embedding"])


def test_stage_files_hold_binary_and_read_back_as_lists_with_side_data(tmp_path):
    from upath import UPath

    path = UPath(tmp_path / "embeddings.parquet")
    table = _table(50)

    write_output(path, StageOutput(table, {"metric": "cosine"}))

    stored = pq.read_schema(path.path)
    assert pa.types.is_fixed_size_binary(stored.field("embedding").type)
    assert VECTOR_COLUMNS_KEY in stored.metadata
    back = read_output(path)
    assert back.table.equals(table)
    assert back.side_data == {"metric": "cosine"}
    assert read_output(path, columns=["embedding"]).table["embedding"].equals(table["embedding"])


def test_files_written_before_the_encoding_read_as_they_are(tmp_path):
    from upath import UPath

    path = tmp_path / "old.parquet"
    table = _table(20)
    pq.write_table(table, path)  # nested lists, no vector-columns key: the layout of earlier versions

    assert read_output(UPath(path)).table.equals(table)
