"""Index outputs on a real S3-protocol server (moto's server mode on loopback), as a user points the
product at S3: `ATLAS_OUTPUTS_URI=s3://bucket/prefix`, the endpoint and credentials in the
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION).

A map is built and updated with real AG News text and the default model; every output lands in the
bucket and none on the local disk; the accessors, `atlas serve` (a real server process) and
`atlas export` read it back from there. Then the store refuses writes for a while (a proxy answers
every PUT/POST with 503 SlowDown): the stage fails with a clear error, the bucket is byte-for-byte
as before, and a retry after the window completes with every row once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from upath import UPath

from atlas_assets import AtlasDataset
from atlas_assets.errors import PipelineError, StoreWriteError
from resources.index_outputs import IndexOutputs, StageOutput, read_output, write_output
from tests.conftest import REPO_ROOT, news_frame
from tests.deploy.conftest import ObjectStore
from tests.deploy.object_store import free_port

FIRST_ROWS, MORE_ROWS, LAST_ROWS = 200, 100, 50
MAP_STAGES = ("neighbour_graph", "projection", "topics", "duplicates")


def index_keys(store: ObjectStore, organisation: str, slug: str, index_id: str) -> dict[str, bytes]:
    prefix = f"{store.prefix}/datasets/{organisation}/{slug}/indices/{index_id}/"
    return {key[len(prefix):]: data for key, data in store.objects().items() if key.startswith(prefix)}


def assert_whole_parquet(objects: dict[str, bytes]) -> None:
    """Every object is a complete Parquet file (a truncated upload has no footer and fails here)."""
    for key, data in objects.items():
        assert data[:4] == b"PAR1" and data[-4:] == b"PAR1", f"{key} is not a whole Parquet file"
        pq.read_table(pa.BufferReader(data))


def local_index_files(atlas_home: Path) -> list[Path]:
    return [path for path in atlas_home.glob("datasets/*/*/indices/**/*") if path.is_file()]


class MapServer:
    """`atlas serve` as a process of its own, with the environment given (the S3 endpoint in it)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "atlas_assets.cli", "serve", "--port", str(self.port)],
                cwd=REPO_ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"atlas serve exited:\n{self.log()}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5).read()
                return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"atlas serve did not answer within 120 s:\n{self.log()}")

    def get(self, path: str) -> bytes:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=120).read()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def served_ids(server: MapServer, key: str) -> list[str]:
    """The ids of every point the server draws, read through its routes as the page does."""
    meta = json.loads(server.get(f"/api/maps/{key}/meta"))
    points = server.get(f"/api/maps/{key}/points.bin")
    assert len(points) == meta["count"] * meta["points_format"]["bytes_per_point"]
    return [json.loads(server.get(f"/api/maps/{key}/datum/{row}"))["id"] for row in range(meta["count"])]


@pytest.mark.slow
def test_a_map_on_s3_is_built_updated_served_and_exported_from_the_bucket(
    object_store: ObjectStore, atlas_home: Path, shared_data: Path, tmp_path: Path
) -> None:
    dataset = AtlasDataset("s3/news", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=FIRST_ROWS))
    atlas_map = dataset.create_index(name="news", indexed_field="text")
    dataset.add_data(news_frame(shared_data, start=FIRST_ROWS, rows=MORE_ROWS))
    dataset.update_indices()

    expected = [str(i) for i in range(FIRST_ROWS + MORE_ROWS)]
    atlas_map = dataset.get_map("news")
    assert sorted(atlas_map.embeddings.projected["id"], key=int) == expected
    assert len(atlas_map.embeddings.latent) == len(expected)
    assert len(atlas_map.duplicates.df) == len(expected) and len(atlas_map.topics.df) == len(expected)

    # Every output is in the bucket, whole; nothing of the index is on the local disk.
    objects = index_keys(object_store, "s3", "news", atlas_map.atlas_index_id)
    batch_ids = dataset.store.batch_ids("s3", "news")
    assert {f"{stage}.parquet" for stage in MAP_STAGES} | {f"embeddings/{b}.parquet" for b in batch_ids} <= set(objects)
    assert_whole_parquet(objects)
    assert local_index_files(atlas_home) == []

    key = f"s3/news/{atlas_map.atlas_index_id}"
    server = MapServer({**os.environ}, tmp_path / "serve.log")
    try:
        assert sorted(served_ids(server, key), key=int) == expected
        # The running server sees an update written to the bucket by another process.
        dataset.add_data(news_frame(shared_data, start=FIRST_ROWS + MORE_ROWS, rows=LAST_ROWS))
        dataset.update_indices()
        expected = [str(i) for i in range(FIRST_ROWS + MORE_ROWS + LAST_ROWS)]
        assert sorted(served_ids(server, key), key=int) == expected
    finally:
        server.stop()

    from atlas_assets.cli import main

    assert main(["export", "s3/news", "--format", "parquet", "-o", str(tmp_path / "map.parquet")]) == 0
    exported = pd.read_parquet(tmp_path / "map.parquet")
    assert sorted(exported["id"], key=int) == expected and {"text", "x", "y"} <= set(exported.columns)
    assert local_index_files(atlas_home) == []


def test_a_long_lived_process_sees_outputs_another_process_wrote(object_store: ObjectStore) -> None:
    """fsspec caches a folder's listing for the life of the process; the outputs are listed anew."""
    import boto3

    from tests.deploy.object_store import ACCESS_KEY, REGION, SECRET_KEY

    outputs = IndexOutputs("s3", "listed", "index", base=object_store.uri)
    outputs.write("embeddings", StageOutput(pa.table({"x": [1]})), batch_id="b1")
    assert outputs.embedded_batches() == ["b1"]  # the listing is now in fsspec's cache
    other = boto3.client("s3", endpoint_url=object_store.server.endpoint_url, aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key=SECRET_KEY, region_name=REGION)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [2]}), sink)
    other.put_object(Bucket=object_store.bucket, Key=f"{object_store.prefix}/{outputs.relative_dir}/embeddings/b2.parquet",
                     Body=sink.getvalue().to_pybytes())
    assert outputs.embedded_batches() == ["b1", "b2"]
    assert outputs.missing_batches(["b1", "b2", "b3"]) == ["b3"]


@pytest.mark.slow  # the client retries the refused PUT 25 times (about 40 s) before giving up
def test_a_refused_upload_is_a_store_write_error_naming_the_uri_and_leaves_the_old_object(
    object_store: ObjectStore,
) -> None:
    path = UPath(object_store.uri) / "probe" / "stage.parquet"
    write_output(path, StageOutput(pa.table({"x": [1, 2, 3]}), {"version": 1}))
    before = object_store.objects()

    object_store.proxy.refusing = True
    with pytest.raises(StoreWriteError) as refused:
        write_output(path, StageOutput(pa.table({"x": list(range(1000))}), {"version": 2}))
    object_store.proxy.refusing = False

    message = str(refused.value)
    assert str(path) in message and "(SlowDown) when calling the PutObject operation" in message
    assert "unchanged" in message and "retry" in message
    assert object_store.proxy.refused and all(request.startswith("PUT ") for request in object_store.proxy.refused)
    assert object_store.objects() == before
    assert read_output(path).side_data == {"version": 1}


def test_a_refusal_shorter_than_the_clients_retries_is_ridden_out(object_store: ObjectStore) -> None:
    """botocore (5 attempts, exponential backoff) inside s3fs (5 tries) retries a throttled PUT for
    about 45 s before giving up: a store that refuses for a second or two costs a delay, not a failure."""
    path = UPath(object_store.uri) / "probe" / "stage.parquet"
    object_store.proxy.refusing = True
    reopen = threading.Timer(1.5, setattr, (object_store.proxy, "refusing", False))
    reopen.start()
    try:
        write_output(path, StageOutput(pa.table({"x": [1, 2, 3]})))
    finally:
        reopen.cancel()
        object_store.proxy.refusing = False
    assert object_store.proxy.refused  # it was refused at first ...
    assert read_output(path).table.column("x").to_pylist() == [1, 2, 3]  # ... and written whole after


@pytest.mark.slow
def test_while_the_store_refuses_writes_the_update_fails_cleanly_and_a_retry_completes(
    object_store: ObjectStore, atlas_home: Path, shared_data: Path
) -> None:
    dataset = AtlasDataset("s3/refused", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=FIRST_ROWS))
    index_id = dataset.create_index(name="news", indexed_field="text").atlas_index_id
    dataset.add_data(news_frame(shared_data, start=FIRST_ROWS, rows=MORE_ROWS))
    before = index_keys(object_store, "s3", "refused", index_id)

    object_store.proxy.refusing = True
    try:
        with pytest.raises(PipelineError) as failed:
            dataset.update_indices()
    finally:
        object_store.proxy.refusing = False

    message = str(failed.value)
    assert "StoreWriteError" in message and object_store.uri in message
    assert "(SlowDown) when calling the PutObject operation" in message
    assert object_store.proxy.refused
    # Nothing half-written: the bucket holds exactly the old objects, byte for byte, and the old map reads.
    assert index_keys(object_store, "s3", "refused", index_id) == before
    assert sorted(dataset.get_map("news").embeddings.projected["id"], key=int) == [str(i) for i in range(FIRST_ROWS)]

    dataset.update_indices()
    ids = list(dataset.get_map("news").embeddings.projected["id"])
    assert sorted(ids, key=int) == [str(i) for i in range(FIRST_ROWS + MORE_ROWS)]
    after = index_keys(object_store, "s3", "refused", index_id)
    assert_whole_parquet(after)
    assert len(after) == len(before) + 1  # the new batch's embeddings; the map's stages rewritten in place
    assert local_index_files(atlas_home) == []
