"""The Atlas rules for uploaded tables: inputs, names, types, frozen schemas, ids, vectors."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from atlas_assets.compute import tables
from atlas_assets.errors import (
    DuplicateIdError,
    InvalidDataError,
    InvalidEmbeddingsError,
    SchemaMismatchError,
)


@pytest.fixture
def news(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "ag_news" / "test.csv", nrows=120)


# ------------------------------------------------------------------------------------ inputs


def test_every_input_kind_gives_the_same_table(news: pd.DataFrame) -> None:
    expected = pa.Table.from_pandas(news, preserve_index=False)
    inputs = [news, pl.from_pandas(news), expected, news.to_dict("records")]
    for data in inputs:
        table = tables.to_arrow(data)
        converted, schema = tables.prepare_first_upload(table, "id")
        assert converted.column_names == list(news.columns)
        assert converted.column("title").to_pylist() == news["title"].tolist()
        assert schema == pa.schema(
            [("id", pa.int64()), ("label", pa.int32()), ("label_name", pa.string()),
             ("title", pa.string()), ("description", pa.string())]
        )
        assert converted.schema.metadata is None


def test_pandas_index_columns_are_dropped_not_rejected(news: pd.DataFrame) -> None:
    indexed = news.set_index(pd.Index([f"row{i}" for i in range(len(news))]))
    with_index = pa.Table.from_pandas(indexed)  # carries __index_level_0__
    assert "__index_level_0__" in with_index.column_names
    assert "__index_level_0__" not in tables.to_arrow(with_index).column_names
    assert "__index_level_0__" not in tables.to_arrow(indexed).column_names
    tables.check_field_names(tables.to_arrow(with_index).column_names)


def test_list_of_dicts_takes_the_union_of_keys() -> None:
    table = tables.to_arrow([{"id": "a", "text": "x"}, {"id": "b", "score": 1.5}])
    assert table.column_names == ["id", "text", "score"]
    assert table.column("score").to_pylist() == [None, 1.5]


def test_unsupported_inputs_are_named() -> None:
    with pytest.raises(InvalidDataError, match="dict"):
        tables.to_arrow(["not a dict"])
    with pytest.raises(InvalidDataError, match="numpy.ndarray"):
        tables.to_arrow(np.zeros(3))
    with pytest.raises(InvalidDataError, match="'mixed'"):
        tables.to_arrow(pd.DataFrame({"mixed": [1, "a", 2.5]}))


def test_chunks_cover_every_row_once(news: pd.DataFrame) -> None:
    for data in (news, pl.from_pandas(news), pa.Table.from_pandas(news), news.to_dict("records")):
        chunks = list(tables.iter_arrow_chunks(data, 50))
        assert [chunk.num_rows for chunk in chunks] == [50, 50, 20]
        assert pa.concat_tables(chunks).column("id").to_pylist() == news["id"].tolist()


# ------------------------------------------------------------------------------------ names


@pytest.mark.parametrize("names", [["id", "_secret"], ["id", "__index_level_0__x"], ["_row_id"]])
def test_underscore_names_are_reserved(names: list[str]) -> None:
    with pytest.raises(InvalidDataError, match="reserved"):
        tables.check_field_names(names)


def test_names_must_be_unique_ignoring_case() -> None:
    with pytest.raises(InvalidDataError, match="'Text' and 'text'"):
        tables.check_field_names(["id", "Text", "text"])
    tables.check_field_names(["id", "text", "title"])


# ------------------------------------------------------------------------------------ types


def test_atlas_type_mapping() -> None:
    table = pa.table(
        {
            "id": pa.array(["a", "b"], pa.large_string()),
            "small": pa.array([1, 2], pa.int8()),
            "unsigned": pa.array([1, 2], pa.uint16()),
            "big": pa.array([1, 2], pa.int64()),
            "half": pa.array([1.5, 2.5], pa.float64()),
            "money": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(5, 2)),
            "when": pa.array([dt.datetime(2024, 1, 1, 12, 0, 0, 123456), None], pa.timestamp("ns")),
            "zoned": pa.array([0, 1], pa.timestamp("us", tz="Europe/Paris")),
            "day": pa.array([dt.date(2024, 1, 2), None], pa.date32()),
            "kind": pa.array(["x", "y"]).dictionary_encode(),
            "empty": pa.nulls(2),
        }
    )
    converted, schema = tables.prepare_first_upload(table, "id")
    assert dict(zip(schema.names, schema.types)) == {
        "id": pa.string(),
        "small": pa.int32(),
        "unsigned": pa.int32(),
        "big": pa.int32(),
        "half": pa.float32(),
        "money": pa.float32(),
        "when": pa.timestamp("ms"),
        "zoned": pa.timestamp("ms", tz="Europe/Paris"),
        "day": pa.timestamp("ms"),
        "kind": tables.DICTIONARY,
        "empty": pa.string(),
    }
    assert converted.column("when").to_pylist()[0] == dt.datetime(2024, 1, 1, 12, 0, 0, 123000)
    assert converted.column("money").to_pylist() == [1.25, None]
    assert converted.column("day").to_pylist()[0] == dt.datetime(2024, 1, 2)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (pa.array([True, False]), "bool.*int \\(0/1\\)"),
        (pa.array([[1, 2], [3]]), "list.*embeddings"),
        (pa.array([{"a": 1}, {"a": 2}]), "struct.*flatten"),
        (pa.array([b"x", b"y"]), "binary.*blobs"),
    ],
)
def test_rejected_types_say_how_to_fix(column: pa.Array, message: str) -> None:
    table = pa.table({"id": ["a", "b"], "bad": column})
    with pytest.raises(InvalidDataError, match=f"'bad'.*{message}"):
        tables.infer_schema(table, "id")


def test_every_rejected_column_is_reported_at_once() -> None:
    table = pa.table({"id": ["a"], "flag": [True], "tags": [["x"]]})
    with pytest.raises(InvalidDataError, match="'flag'.*'tags'"):
        tables.infer_schema(table, "id")


def test_ids_keep_64_bits_and_reject_floats() -> None:
    table = pa.table({"id": pa.array([2**40, 3], pa.int64())})
    converted, schema = tables.prepare_first_upload(table, "id")
    assert schema.field("id").type == pa.int64() and converted.column("id").to_pylist() == [2**40, 3]
    with pytest.raises(InvalidDataError, match="ids must be strings"):
        tables.infer_schema(pa.table({"id": [1.0, 2.0]}), "id")


def test_int32_overflow_is_an_error_naming_the_field() -> None:
    table = pa.table({"id": ["a"], "count": pa.array([2**40], pa.int64())})
    with pytest.raises(SchemaMismatchError, match="'count'.*32-bit"):
        tables.prepare_first_upload(table, "id")


# ------------------------------------------------------------------------------------ frozen schema


def test_later_uploads_are_cast_to_the_frozen_schema() -> None:
    _, schema = tables.prepare_first_upload(
        pa.table({"id": ["a"], "n": [1], "x": [0.5], "kind": pa.array(["u"]).dictionary_encode()}), "id"
    )
    frame = pd.DataFrame({"kind": ["v", None], "x": [1, 2], "n": [3.0, None], "id": ["b", "c"], "more": [1, 2]})
    converted, dropped = tables.conform(tables.to_arrow(frame), schema)
    assert converted.schema == schema  # same order and types
    assert converted.column("n").to_pylist() == [3, None]  # pandas turned ints with gaps into floats
    assert converted.column("kind").to_pylist() == ["v", None]
    assert dropped == ["more"]


def test_polars_categoricals_fit_a_dictionary_field() -> None:
    _, schema = tables.prepare_first_upload(pa.table({"id": ["a"], "kind": pa.array(["u"]).dictionary_encode()}), "id")
    frame = pl.DataFrame({"id": ["b"], "kind": pl.Series(["w"], dtype=pl.Categorical)})
    converted, _ = tables.conform(tables.to_arrow(frame), schema)
    assert converted.column("kind").type == tables.DICTIONARY and converted.column("kind").to_pylist() == ["w"]


def test_missing_fields_and_kind_changes_are_schema_errors() -> None:
    _, schema = tables.prepare_first_upload(pa.table({"id": ["a"], "Title": ["t"], "n": [1]}), "id")
    with pytest.raises(SchemaMismatchError, match="lacks field.*'Title'.*only in case"):
        tables.conform(pa.table({"id": ["b"], "title": ["t"], "n": [2]}), schema)
    with pytest.raises(SchemaMismatchError, match="'n' was frozen as int32.*string"):
        tables.conform(pa.table({"id": ["b"], "Title": ["t"], "n": ["two"]}), schema)
    with pytest.raises(SchemaMismatchError, match="'n' cannot be stored as int32"):
        tables.conform(pa.table({"id": ["b"], "Title": ["t"], "n": [2.5]}), schema)


# ------------------------------------------------------------------------------------ ids


def test_ids_must_be_present_short_and_unique() -> None:
    with pytest.raises(InvalidDataError, match="null in row\\(s\\) 11"):
        tables.check_ids(pa.array(["a", None]), "id", row_offset=10)
    with pytest.raises(InvalidDataError, match="longer than 36.*row\\(s\\) 1"):
        tables.check_ids(pa.array(["a", "x" * 37]), "id")
    tables.check_ids(pa.array(["x" * 36, "é" * 36]), "id")  # characters, not bytes
    assert tables.find_duplicates(pa.array(["a", "b", "a"])) == ["a"]
    assert tables.find_duplicates(pa.array([1, 2, 3])) == []
    with pytest.raises(DuplicateIdError, match="'a'"):
        tables.raise_duplicates(["a"], "id", "repeated within this upload")


# ------------------------------------------------------------------------------------ vectors


def test_embeddings_are_finite_2d_and_of_fixed_width() -> None:
    good = np.random.default_rng(1).normal(size=(4, 8))
    matrix = tables.check_embeddings(good, None)
    assert matrix.dtype == np.float32 and matrix.shape == (4, 8)
    back = tables.embedding_matrix(tables.embedding_array(matrix))
    np.testing.assert_array_equal(back, matrix)
    with pytest.raises(InvalidEmbeddingsError, match="2-D"):
        tables.check_embeddings(good[0], None)
    with pytest.raises(InvalidEmbeddingsError, match="width 8 but.*width 16"):
        tables.check_embeddings(good, 16)
    bad = good.copy()
    bad[2, 3] = np.nan
    bad[3, 0] = np.inf
    with pytest.raises(InvalidEmbeddingsError, match="NaN or Inf.*row\\(s\\) 2, 3"):
        tables.check_embeddings(bad, None)
    with pytest.raises(InvalidEmbeddingsError, match="row\\(s\\) 0"):
        tables.check_embeddings(np.array([[1e300, 0.0]]), None)  # overflows float32
    with pytest.raises(InvalidEmbeddingsError, match="numbers"):
        tables.check_embeddings(np.array([["a", "b"]]), None)


def test_pandas_chunks_share_the_types_of_the_whole_frame() -> None:
    frame = pd.DataFrame({"id": ["a", "b", "c", "d"], "note": [None, None, "late", None]})
    chunks = list(tables.iter_arrow_chunks(frame, 2))
    assert chunks[0].schema.field("note").type == chunks[1].schema.field("note").type != pa.null()


def test_dict_chunks_have_every_key_typed_as_in_the_whole_list() -> None:
    rows = [{"id": f"r{i}"} for i in range(5)] + [{"id": "r5", "score": 0.5, "tag": None}, {"id": "r6", "x": "late"}]
    chunks = list(tables.iter_arrow_chunks(rows, 3))
    assert {str(chunk.schema) for chunk in chunks} == {str(chunks[-1].schema)}
    assert chunks[0].column_names == ["id", "score", "tag", "x"]
    assert chunks[0].schema.field("score").type == pa.float64() and chunks[0].num_rows == 3
    with pytest.raises(InvalidDataError, match="row 4 of the list"):
        list(tables.iter_arrow_chunks([{"id": 1}] * 4 + ["oops"], 2))
