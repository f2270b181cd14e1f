"""MapSource built from accessor tables: rows, topic codes, fields, search and tags by row."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from atlas_assets.web.app import _PointCache, encode_points
from atlas_assets.web.source import NO_TOPIC, FrameMapSource, MapTables
from resources.tags import TagStore


def small_tables() -> MapTables:
    ids = ["a", "b", "c", "d", "e"]
    return MapTables(
        projected=pd.DataFrame({"id": ids, "x": [0.0, 1, 2, 3, 4], "y": [0.0, 0, 1, 1, 2]}),
        # data rows in another order than the map, ids as integers-looking strings
        data=pd.DataFrame({"key": ids[::-1], "text": ["e text", "d text", "c text", "b text", "a long " + "x" * 900],
                           "colour": ["red", "red", None, "blue", "red"], "n": [5, 4, 3, 2, 1]}),
        id_field="key",
        topics=pd.DataFrame({"id": ids, "topic_depth_1": ["T1", "T1", "T2", "T1", None],
                             "topic_depth_2": ["s1", "s2", "s3", "s1", None]}),
        duplicates=pd.DataFrame({"id": ids, "duplicate_class": ["singleton", "retention candidate",
                                                                "deletion candidate", "singleton", "singleton"],
                                 "cluster_id": [-1, 7, 7, -1, -1]}),
        text_field="text",
    )


def test_topic_codes_follow_topic_size_and_rows_without_topic_get_none(tmp_path) -> None:
    source = FrameMapSource("o/s/i", "t", small_tables())
    points = source.points()
    assert points.topic_codes[0].tolist() == [0, 0, 1, 0, int(NO_TOPIC)]  # T1 (3 rows) is code 0
    depth1 = [t for t in source.topics() if t.depth == 1]
    assert [(t.label, t.size) for t in depth1] == [("T1", 3), ("T2", 1)]
    assert depth1[0].x == pytest.approx(4 / 3) and depth1[0].y == pytest.approx(1 / 3)  # mean of its points
    depth2 = {t.label: t.parent_code for t in source.topics() if t.depth == 2}
    assert depth2 == {"s1": 0, "s2": 0, "s3": 1}
    assert points.duplicate_class.tolist() == [0, 1, 2, 0, 0]


def test_a_datum_joins_the_data_by_its_id_field_and_cuts_long_text() -> None:
    source = FrameMapSource("o/s/i", "t", small_tables())
    datum = source.datum(0)
    assert datum["id"] == "a" and datum["fields"]["n"] == 1
    assert datum["fields"]["text"].endswith("…") and len(datum["fields"]["text"]) <= 601
    assert datum["topics"] == ["T1", "s1"]
    assert source.datum(2)["fields"]["colour"] is None
    assert source.datum(2)["duplicate_class"] == "deletion candidate"
    assert source.datum(2)["duplicate_cluster"] == 7
    with pytest.raises(IndexError):
        source.datum(5)


def test_fields_are_classified_and_encoded_for_colouring() -> None:
    source = FrameMapSource("o/s/i", "t", small_tables())
    kinds = {f.name: f.kind for f in source.fields()}
    assert kinds["n"] == "numeric" and kinds["colour"] == "categorical" and kinds["topic_depth_2"] == "categorical"
    colour = source.field_column("colour")
    decoded = [colour.categories[c] for c in colour.codes]
    assert decoded == ["red", "blue", "(missing)", "red", "red"]  # map order, not data order
    number = source.field_column("n")
    assert number.values.tolist() == [1, 2, 3, 4, 5] and (number.minimum, number.maximum) == (1, 5)
    with pytest.raises(KeyError):
        source.field_column("nope")


def test_more_categories_than_colours_fold_into_other() -> None:
    n = 100
    tables = MapTables(
        projected=pd.DataFrame({"id": [str(i) for i in range(n)], "x": np.arange(n), "y": np.zeros(n)}),
        data=pd.DataFrame({"id": [str(i) for i in range(n)], "city": [f"c{i % 30}" for i in range(n)]}),
    )
    column = FrameMapSource("o/s/i", "t", tables).field_column("city")
    assert len(column.categories) == 21 and column.categories[-1] == "(other)"
    assert sum(column.counts) == n


def test_tags_go_through_rows_to_ids_and_back(tmp_path) -> None:
    store = TagStore(tmp_path)
    source = FrameMapSource("o/s/i", "t", small_tables(), tags=store)
    assert source.tag_rows_add(np.array([4, 1, 1]), "x") == 2
    assert sorted(store.get_datums_in_tag("x")) == ["b", "e"]
    assert source.tag_rows("x").tolist() == [1, 4]  # the ids of rows 1 and 4, back as rows
    store.add(["c"], "x")
    assert sorted(source.tag_rows("x").tolist()) == [1, 2, 4]
    assert source.tag_counts() == {"x": 3}
    with pytest.raises(IndexError):
        source.tag_rows_add(np.array([9]), "x")


def test_text_search_is_case_insensitive_on_the_text_field() -> None:
    source = FrameMapSource("o/s/i", "t", small_tables())
    assert source.search("B TEXT", mode="text").rows.tolist() == [1]
    with pytest.raises(LookupError):
        source.search("anything", mode="meaning")


def test_a_private_source_without_a_token_is_never_opened() -> None:
    source = FrameMapSource("o/s/i", "t", small_tables(), is_public=False, token=None)
    assert source.access_token() is None  # the server then refuses every token
    public = FrameMapSource("o/s/i", "t", small_tables(), token="ignored")
    assert public.access_token() is None


def test_compressed_points_decompress_to_the_plain_buffer() -> None:
    source = FrameMapSource("o/s/i", "t", small_tables())
    cache = _PointCache()
    assert cache.get(source) == encode_points(source.points())
    assert gzip.decompress(cache.get(source, compressed=True)) == cache.get(source)
