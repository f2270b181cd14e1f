import os

import pyarrow as pa
import pytest

from resources.index_outputs import IndexOutputs, StageOutput


def test_outputs_live_under_the_dataset_folder(atlas_home):
    outputs = IndexOutputs("acme", "news", "ix1")
    assert str(outputs.path("projection")) == str(atlas_home / "datasets/acme/news/indices/ix1/projection.parquet")
    assert outputs.relative_dir == "datasets/acme/news/indices/ix1"


def test_partitioned_outputs_get_one_file_per_batch(atlas_home):
    path = IndexOutputs("acme", "news", "ix1").path("embeddings", "b1")
    assert path.name == "b1.parquet" and path.parent.name == "embeddings"


def test_a_stage_never_built_reads_as_none(atlas_home):
    assert IndexOutputs("acme", "news", "ix1").read("topics") is None


def test_an_object_store_uri_can_replace_the_local_base(monkeypatch):
    monkeypatch.setenv("ATLAS_OUTPUTS_URI", "memory://bucket/atlas")
    outputs = IndexOutputs("acme", "news", "ix1")
    outputs.write("topics", StageOutput(pa.table({"a": [1, 2]}), {"depths": 2}))
    assert str(outputs.path("topics")).startswith("memory://")
    read = outputs.read("topics")
    assert read.table["a"].to_pylist() == [1, 2] and read.side_data == {"depths": 2}


def test_side_data_rides_in_the_same_file_and_is_taken_out_of_the_schema(tmp_path):
    outputs = IndexOutputs("acme", "news", "ix1", base=str(tmp_path))
    outputs.write("topics", StageOutput(pa.table({"x": [1.0]}), {"topics": [{"topic_id": 1}]}))
    read = outputs.read("topics")
    assert read.side_data == {"topics": [{"topic_id": 1}]}
    assert b"atlas.side_data" not in (read.table.schema.metadata or {})


def test_missing_batches_are_those_without_embeddings_in_the_order_given(tmp_path):
    outputs = IndexOutputs("acme", "news", "ix1", base=str(tmp_path))
    outputs.write("embeddings", StageOutput(pa.table({"_row_id": [0]})), batch_id="b2")
    assert outputs.embedded_batches() == ["b2"]
    assert outputs.missing_batches(["b3", "b2", "b1"]) == ["b3", "b1"]
    assert list(outputs.read_embeddings(["b1", "b2"])) == ["b2"]


def test_the_version_changes_when_an_output_is_rewritten(tmp_path):
    outputs = IndexOutputs("acme", "news", "ix1", base=str(tmp_path))
    before = outputs.version()
    outputs.write("projection", StageOutput(pa.table({"x": [1.0]})))
    built = outputs.version()
    outputs.write("projection", StageOutput(pa.table({"x": [1.0, 2.0]})))
    assert len({before, built, outputs.version()}) == 3
    assert outputs.version() == outputs.version()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    outputs = IndexOutputs("acme", "news", "ix1", base=str(tmp_path))
    outputs.write("stage", StageOutput(pa.table({"v": [1]})))

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        outputs.write("stage", StageOutput(pa.table({"v": [2]})))
    assert outputs.read("stage").table["v"].to_pylist() == [1]
    assert sorted(p.name for p in outputs.path("stage").parent.iterdir()) == ["stage.parquet"]


def test_delete_removes_every_output_of_the_index(tmp_path):
    outputs = IndexOutputs("acme", "news", "ix1", base=str(tmp_path))
    outputs.write("embeddings", StageOutput(pa.table({"v": [1]})), batch_id="b1")
    outputs.write("projection", StageOutput(pa.table({"v": [1]})))
    outputs.delete()
    assert not outputs.folder.exists() and outputs.read("projection") is None
