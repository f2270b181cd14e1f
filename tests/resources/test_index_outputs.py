import os

import pyarrow as pa
import pytest

from resources.index_outputs import (
    index_output_dir,
    outputs_base,
    read_side_data,
    read_table,
    stage_path,
    strip_side_data,
    write_table,
)


def test_outputs_live_under_the_dataset_folder(atlas_home):
    path = stage_path(outputs_base(), index_output_dir("acme", "news", "ix1"), "projection")
    assert str(path) == str(atlas_home / "datasets/acme/news/indices/ix1/projection.parquet")


def test_partitioned_outputs_get_one_file_per_batch(atlas_home):
    path = stage_path(outputs_base(), index_output_dir("acme", "news", "ix1"), "embeddings", "b1")
    assert path.name == "b1.parquet" and path.parent.name == "embeddings"


def test_an_object_store_uri_can_replace_the_local_base(monkeypatch):
    monkeypatch.setenv("ATLAS_OUTPUTS_URI", "memory://bucket/atlas")
    base = outputs_base()
    path = stage_path(base, index_output_dir("acme", "news", "ix1"), "topics")
    write_table(path, pa.table({"a": [1, 2]}), {"depths": 2})
    assert read_table(path)["a"].to_pylist() == [1, 2]
    assert read_side_data(path) == {"depths": 2}


def test_side_data_rides_in_the_same_file_and_can_be_stripped(tmp_path):
    path = outputs_base(str(tmp_path)) / "t.parquet"
    write_table(path, pa.table({"x": [1.0]}), {"topics": [{"topic_id": 1}]})
    assert read_side_data(path) == {"topics": [{"topic_id": 1}]}
    assert strip_side_data(read_table(path)).schema.metadata is None or b"atlas.side_data" not in (
        strip_side_data(read_table(path)).schema.metadata
    )


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = outputs_base(str(tmp_path)) / "stage.parquet"
    write_table(path, pa.table({"v": [1]}))

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_table(path, pa.table({"v": [2]}))
    assert read_table(path)["v"].to_pylist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage.parquet"]
