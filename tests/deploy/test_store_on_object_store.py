"""The dataset store itself on a real S3-protocol server (moto's server mode on loopback), as a user
configures it: `ATLAS_STORE_URI=s3://bucket/prefix` and no `ATLAS_OUTPUTS_URI`, the endpoint and the
credentials in the environment.

Records, batches, tombstones (and blobs, tags) are objects; index outputs follow the store into the
same bucket; nothing but lock files is written under ATLAS_HOME. A map is built, updated after an
upload and after a deletion, read by a second process (`atlas serve`, and a plain Python process),
and the dataset is deleted. Then the store refuses writes (the proxy of tests/deploy/object_store.py
answers PUT/POST with 503 SlowDown): add_data fails with a StoreWriteError naming the URI, the
bucket is byte for byte as before, readers see the old rows, and a retry adds every row once.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from atlas_assets import AtlasDataset
from atlas_assets.errors import ConfigurationError, StoreWriteError
from resources.storage import DatasetStore
from resources.storage.files import ObjectFiles
from resources.tags import TagStore
from tests.conftest import REPO_ROOT, news_frame
from tests.deploy.conftest import ObjectStore
from tests.deploy.object_store import ACCESS_KEY, REGION, SECRET_KEY
from tests.deploy.test_object_store import MapServer, assert_whole_parquet, served_ids

FIRST_ROWS, MORE_ROWS, DELETED = 200, 100, 20


@pytest.fixture
def s3_store(object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """The dataset store at s3://<bucket>/atlas; index outputs not configured (they follow the store)."""
    monkeypatch.delenv("ATLAS_OUTPUTS_URI", raising=False)
    monkeypatch.setenv("ATLAS_STORE_URI", object_store.uri)
    return object_store


def dataset_objects(store: ObjectStore, organisation: str, slug: str) -> dict[str, bytes]:
    prefix = f"{store.prefix}/datasets/{organisation}/{slug}/"
    return {key[len(prefix):]: data for key, data in store.objects().items() if key.startswith(prefix)}


def local_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def read_rows_in_another_process(organisation: str, slug: str) -> list[str]:
    """The live ids as a fresh Python process reads them from the store (the environment names it)."""
    code = (
        "import json, sys\n"
        "from resources.storage import DatasetStore\n"
        f"rows = DatasetStore().read_rows({organisation!r}, {slug!r}, columns=['id'])\n"
        "print(json.dumps(rows.column('id').to_pylist()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**os.environ}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_dataset_on_s3_is_built_updated_deleted_from_and_served_with_only_locks_on_local_disk(
    s3_store: ObjectStore, atlas_home: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = AtlasDataset("s3/news", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=FIRST_ROWS))
    atlas_map = dataset.create_index(name="news", indexed_field="text")
    index_id = atlas_map.atlas_index_id
    dataset.add_data(news_frame(shared_data, start=FIRST_ROWS, rows=MORE_ROWS))
    dataset.update_indices()
    gone = [str(i) for i in range(0, 2 * DELETED, 2)]
    assert dataset.delete_data(gone)
    dataset.update_indices()

    expected = sorted(set(map(str, range(FIRST_ROWS + MORE_ROWS))) - set(gone), key=int)
    atlas_map = dataset.get_map("news")
    assert sorted(atlas_map.embeddings.projected["id"], key=int) == expected
    assert len(atlas_map.embeddings.latent) == len(expected) and len(atlas_map.topics.df) == len(expected)
    assert atlas_map.tags.add(expected[:3], "reviewed") == 3

    # The store is in the bucket: the record, one object per batch and per deletion, the index outputs
    # (following the store, as ATLAS_OUTPUTS_URI is unset) and the tags.
    objects = dataset_objects(s3_store, "s3", "news")
    record = json.loads(objects["dataset.json"])
    assert [batch["rows"] for batch in record["batches"]] == [FIRST_ROWS, MORE_ROWS]
    assert [deletion["rows"] for deletion in record["deletions"]] == [DELETED]
    batches = {f"batches/{batch['batch_id']}.parquet" for batch in record["batches"]}
    deletions = {f"deletions/{deletion['deletion_id']}.parquet" for deletion in record["deletions"]}
    outputs = {f"indices/{index_id}/{stage}.parquet" for stage in ("neighbour_graph", "projection", "topics", "duplicates")}
    assert batches | deletions | outputs | {f"indices/{index_id}/tags.json"} <= set(objects)
    assert not {key for key in objects if key.startswith(("batches/", "deletions/"))} - batches - deletions
    assert_whole_parquet({key: objects[key] for key in batches | deletions | outputs})
    # Nothing under ATLAS_HOME but locks (and the Dagster instance): no dataset folder, no file of it.
    assert local_files(atlas_home / "datasets") == []
    assert local_files(atlas_home / "locks") and all(path.suffix == ".lock" for path in local_files(atlas_home / "locks"))

    # Other processes read it from the bucket: a Python process, and `atlas serve`.
    assert sorted(read_rows_in_another_process("s3", "news"), key=int) == expected
    server = MapServer({**os.environ}, tmp_path / "serve.log")
    try:
        key = f"s3/news/{index_id}"
        assert sorted(served_ids(server, key), key=int) == expected
        assert json.loads(server.get(f"/api/maps/{key}/meta"))["tags"] == [{"name": "reviewed", "count": 3}]
    finally:
        server.stop()

    # `atlas status` (the CLI, in-process) lists it from the bucket
    from atlas_assets.cli import main

    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    assert "s3/news" in capsys.readouterr().out

    dataset.delete()
    assert dataset_objects(s3_store, "s3", "news") == {}
    assert DatasetStore().list_datasets() == []


@pytest.mark.slow  # the client retries each refused PUT about 40 s before giving up
def test_while_the_store_refuses_writes_add_data_fails_cleanly_and_a_retry_adds_every_row_once(
    s3_store: ObjectStore, atlas_home: Path, shared_data: Path
) -> None:
    dataset = AtlasDataset("s3/refused", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=FIRST_ROWS))
    before = s3_store.objects()
    first_ids = [str(i) for i in range(FIRST_ROWS)]

    with s3_store.proxy.refusing_writes(), pytest.raises(StoreWriteError) as refused:
        dataset.add_data(news_frame(shared_data, start=FIRST_ROWS, rows=MORE_ROWS))

    message = str(refused.value)
    assert f"{s3_store.uri}/datasets/s3/refused/batches/" in message
    assert "(SlowDown) when calling the PutObject operation" in message and "nothing was committed" in message
    assert s3_store.proxy.refused and all(request.startswith("PUT ") for request in s3_store.proxy.refused)
    # The bucket holds exactly the committed state: the record unchanged, no object added.
    assert s3_store.objects() == before
    assert sorted(DatasetStore().read_rows("s3", "refused", columns=["id"])["id"].to_pylist(), key=int) == first_ids
    assert sorted(read_rows_in_another_process("s3", "refused"), key=int) == first_ids

    dataset.add_data(news_frame(shared_data, start=FIRST_ROWS, rows=MORE_ROWS))
    ids = DatasetStore().read_rows("s3", "refused", columns=["id"])["id"].to_pylist()
    assert sorted(ids, key=int) == [str(i) for i in range(FIRST_ROWS + MORE_ROWS)]  # every row, once
    assert len(json.loads(dataset_objects(s3_store, "s3", "refused")["dataset.json"])["batches"]) == 2


@pytest.mark.slow  # twice about 40 s of the client's retries of the refused record PUT
def test_a_refused_record_put_commits_nothing_and_leaves_no_batch_or_tombstone_behind(
    s3_store: ObjectStore, atlas_home: Path, shared_data: Path
) -> None:
    """The batch (or tombstone) upload passes, the commit point (the record's PUT) is refused: nothing
    is committed and the uploaded object, named by no record, is gone again."""
    dataset = AtlasDataset("s3/commit", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=FIRST_ROWS))
    before = s3_store.objects()

    with s3_store.proxy.refusing_writes(only="/dataset.json"), pytest.raises(StoreWriteError) as refused:
        dataset.add_data(news_frame(shared_data, start=FIRST_ROWS, rows=MORE_ROWS))
    assert "dataset.json" in str(refused.value)
    assert any("/batches/" in request for request in s3_store.proxy.forwarded_writes)  # the batch went up ...
    assert s3_store.objects() == before  # ... and is gone again; the record is unchanged
    assert len(DatasetStore().read_rows("s3", "commit", columns=["id"])) == FIRST_ROWS

    s3_store.proxy.forwarded_writes.clear()
    with s3_store.proxy.refusing_writes(only="/dataset.json"), pytest.raises(StoreWriteError, match="dataset.json"):
        dataset.delete_data(["0", "1"])
    assert any("/deletions/" in request for request in s3_store.proxy.forwarded_writes)
    assert s3_store.objects() == before
    assert len(DatasetStore().read_rows("s3", "commit", columns=["id"])) == FIRST_ROWS
    assert dataset.delete_data(["0", "1"])  # the retry
    assert len(DatasetStore().read_rows("s3", "commit", columns=["id"])) == FIRST_ROWS - 2


def test_files_no_record_names_are_never_read_and_the_next_writer_removes_them(
    s3_store: ObjectStore, atlas_home: Path
) -> None:
    """An object left by an interrupted writer (uploaded, never committed) is an orphan."""
    store = DatasetStore()
    store.create_dataset("s3", "orphans", unique_id_field="id")
    store.add_batch("s3", "orphans", pa.table({"id": ["a", "b"], "text": ["x", "y"]}))
    stray = f"{s3_store.prefix}/datasets/s3/orphans/batches/20200101T000000000000-abcdef.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"_row_id": [9], "id": ["stray"], "text": ["z"]}), sink)
    client = boto3.client("s3", endpoint_url=s3_store.server.endpoint_url, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name=REGION)
    client.put_object(Bucket=s3_store.bucket, Key=stray, Body=sink.getvalue().to_pybytes())

    assert store.read_rows("s3", "orphans")["id"].to_pylist() == ["a", "b"]
    store.add_batch("s3", "orphans", pa.table({"id": ["c"], "text": ["w"]}))
    assert store.read_rows("s3", "orphans")["id"].to_pylist() == ["a", "b", "c"]
    assert stray not in s3_store.objects()
    assert store.delete_ids("s3", "orphans", ["b"]) == 1
    assert store.read_rows("s3", "orphans")["id"].to_pylist() == ["a", "c"]
    assert store.find_rows("s3", "orphans", ["c"])["text"].to_pylist() == ["w"]

    tags = TagStore.for_index(store, "s3", "orphans", "index1")
    assert tags.add(["a"], "kept") == 1 and tags.counts() == {"kept": 1}
    assert f"{s3_store.prefix}/datasets/s3/orphans/indices/index1/tags.json" in s3_store.objects()
    store.remove_index_folder("s3", "orphans", "index1")
    assert not [key for key in s3_store.objects() if "/indices/" in key] and tags.get_tags() == []


def test_images_are_stored_as_blobs_and_read_back_as_bytes(s3_store: ObjectStore, atlas_home: Path) -> None:
    store = DatasetStore()
    store.create_dataset("s3", "pictures", unique_id_field="id", is_public=False)
    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    store.add_batch("s3", "pictures", pa.table({"id": ["r", "b", "r2"]}), blobs=[red, blue, red])
    refs = store.read_batch("s3", "pictures", store.batch_ids("s3", "pictures")[0])["_blob"].to_pylist()
    assert refs[0] == refs[2] and len(set(refs)) == 2
    blobs = {key.rsplit("/", 1)[-1] for key in s3_store.objects() if "/pictures/blobs/" in key}
    assert blobs == set(refs)  # one object per content
    images = store.blob_images("s3", "pictures", refs)
    assert len(images) == 3 and images[1:3] == [store.read_blob("s3", "pictures", refs[1]), images[0]]
    assert Image.open(io.BytesIO(images[1])).getpixel((0, 0)) == (0, 0, 255)
    assert local_files(atlas_home / "datasets") == []


def test_a_missing_fsspec_implementation_names_the_package_to_install(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['s3fs'] = None  # as if s3fs were not installed\n"
        "from resources.storage import DatasetStore\n"
        "DatasetStore().list_datasets()\n"
    )
    env = {**os.environ, "ATLAS_HOME": str(tmp_path), "ATLAS_STORE_URI": "s3://bucket/atlas"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1
    assert ConfigurationError.__name__ in done.stderr and "pip install s3fs" in done.stderr
    assert "s3://bucket/atlas" in done.stderr
    with pytest.raises(ConfigurationError, match="object store"):
        DatasetStore(root="memory://atlas").dataset_dir("a", "b")
    assert isinstance(DatasetStore(root="memory://atlas").files, ObjectFiles)


@pytest.mark.slow
def test_an_image_map_on_s3_embeds_the_blobs_from_the_bucket_and_serves_them(
    s3_store: ObjectStore, atlas_home: Path, tmp_path: Path
) -> None:
    """The image embedder reads the blobs as bytes from the bucket; `atlas serve` serves them."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [Image.fromarray((255 - digits.images[i] * 16).astype(np.uint8)).resize((32, 32)).convert("RGB")
              for i in range(40)]
    dataset = AtlasDataset("s3/digits", unique_id_field="id")
    dataset.add_data(pd.DataFrame({"id": [f"d{i}" for i in range(40)], "digit": digits.target[:40].astype(str)}),
                     blobs=images)
    index_id = dataset.create_index(name="digits", topic_model={"topic_label_field": "digit"}).atlas_index_id
    assert len(dataset.get_map("digits").embeddings.latent) == 40
    assert local_files(atlas_home / "datasets") == []

    store = DatasetStore()
    refs = dict(zip(*[store.read_rows("s3", "digits", columns=["id", "_blob"])[name].to_pylist() for name in ("id", "_blob")],
                    strict=True))
    server = MapServer({**os.environ}, tmp_path / "serve.log")
    try:
        key = f"s3/digits/{index_id}"
        served = json.loads(server.get(f"/api/maps/{key}/datum/7"))["id"]
        assert server.get(f"/api/maps/{key}/image/7") == store.read_blob("s3", "digits", refs[served])
    finally:
        server.stop()
