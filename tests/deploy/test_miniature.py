"""The scaled-out shape all at once, on loopback: the instance on PostgreSQL, `dagster-daemon` with
the queued run coordinator and a process per run, the steps on two Dask workers, and the datasets and
index outputs in a bucket of a real S3 server (moto), every process reaching it through the
environment as a cluster's pods would. The faults are tested part by part (test_daemon_runs,
test_workers, test_object_store, test_store_on_object_store); this checks that the parts work
together: upload batches dropped in the inbox embed on the workers, the map is rebuilt, and nothing
of the dataset is on local disk but its locks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from atlas_assets.pipeline.factory import TRIGGER_TAG
from atlas_assets.pipeline.naming import DatasetNames
from tests.deploy.test_daemon_runs import (
    FIRST_ROWS,
    first_map,
    projected_ids,
)
from tests.deploy.test_workers import (
    BATCH_ROWS,
    BATCHES,
    batches_through_the_daemon_on_two_workers,
    deploy,
)
from tests.deploy.workers import DaskCluster, dask_cluster, step_workers

__all__ = ["dask_cluster", "deploy"]  # the fixtures, imported so that pytest finds them here


@pytest.mark.slow
@pytest.mark.postgres
def test_the_miniature_cluster_builds_and_updates_a_map_held_in_the_bucket(
    deploy, dask_cluster: DaskCluster, object_store, shared_data: Path, tmp_path: Path, monkeypatch
):
    from resources.instance import get_instance

    deployment = deploy(dask_cluster)
    monkeypatch.setenv("ATLAS_STORE_URI", object_store.uri)
    monkeypatch.delenv("ATLAS_OUTPUTS_URI")  # outputs follow the store, under <uri>/datasets/.../indices/
    atlas_map = first_map(shared_data)
    names = DatasetNames("mini", "news")
    workers, _ = batches_through_the_daemon_on_two_workers(
        deployment, dask_cluster, shared_data, atlas_map, tmp_path / "daemon.log"
    )
    instance = get_instance()

    # the batches' embedding steps ran on the workers, both of them
    runs = instance.get_run_records(filters=dg.RunsFilter(job_name=names.embed_job, tags={TRIGGER_TAG: "inbox"}))
    assert len(runs) == BATCHES and all(record.dagster_run.is_success for record in runs)
    embedding_pids = {pid for r in runs for pid in step_workers(instance, r.dagster_run.run_id, "embeddings")}
    assert embedding_pids <= set(workers) and len(embedding_pids) == 2
    # every batch is an object of the bucket, embedded once; the map holds every row once
    objects = object_store.objects()
    prefix = f"{object_store.prefix}/datasets/mini/news/"
    batch_ids = instance.get_dynamic_partitions(names.partitions)
    assert len(batch_ids) == 1 + BATCHES
    assert {f"{prefix}batches/{batch}.parquet" for batch in batch_ids} <= set(objects)
    embedded = instance.fetch_materializations(names.stage("news", "embeddings"), limit=100).records
    assert sorted(event.partition_key for event in embedded) == sorted(batch_ids)
    projection = [key for key in objects if key.startswith(f"{prefix}indices/") and key.endswith("projection.parquet")]
    assert len(projection) == 1
    ids = projected_ids(atlas_map)
    assert len(ids) == len(set(ids)) == FIRST_ROWS + BATCHES * BATCH_ROWS
    assert pq.read_metadata(pa.BufferReader(objects[projection[0]])).num_rows == len(ids)
    # nothing of the dataset on local disk but its locks
    home = Path(deployment).parent
    local = [p for p in (home / "datasets").rglob("*") if p.is_file()] if (home / "datasets").exists() else []
    assert local == []
    assert all(p.suffix == ".lock" for p in (home / "locks").rglob("*") if p.is_file())
