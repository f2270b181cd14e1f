"""Steps spread over Dask workers: the one-server miniature (PostgreSQL instance, a real
`dagster-daemon`, the queued run coordinator, a process per run) with the code location
`deploy/dask/definitions.py`, whose executor sends every step to a real `dask scheduler` on loopback
with two `dask worker` processes (one thread each).

Data: real AG News items embedded with the default text model. The map exists first (create_index in
this process); then files dropped in the inbox become batches, the inbox sensor requests one
`embed_batch` run per batch, each run's steps run on the workers, and declarative automation rebuilds
the map after them (its steps on the workers too).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import dagster as dg
import pytest

from atlas_assets.pipeline.factory import TRIGGER_TAG
from atlas_assets.pipeline.naming import DatasetNames
from tests.conftest import news_frame
from tests.deploy.miniature import (
    Daemon,
    most_at_once,
    run_pid,
    step_windows,
    wait_for,
    write_deployment,
)
from tests.deploy.test_daemon_runs import (
    FIRST_ROWS,
    drop_files,
    finished,
    first_map,
    projected_ids,
)
from tests.deploy.workers import (
    DASK_DEFINITIONS,
    DASK_WORKSPACE_YAML,
    DaskCluster,
    dask_cluster,
    step_workers,
)

__all__ = ["dask_cluster"]  # the fixture, imported so that pytest finds it here

BATCHES, BATCH_ROWS = 3, 30
FAULT_ROWS = 400  # a batch that takes a while to embed on one thread, so the kill lands inside its step
DEADLINE_SECONDS = 420


@pytest.fixture
def deploy(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch):
    """deploy(cluster): a fresh ATLAS_HOME on a fresh PostgreSQL database whose code location runs
    steps on `cluster`'s scheduler; every run may run at once, and the embedding pool does not hold
    steps back (the Dask executor does not claim pool slots); returns the workspace file."""

    def make(cluster: DaskCluster) -> Path:
        home = tmp_path / "atlas_home"
        workspace = write_deployment(home, DASK_WORKSPACE_YAML, max_concurrent_runs=BATCHES, embedding_pool_limit=BATCHES)
        monkeypatch.setenv("ATLAS_HOME", str(home))
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url)
        monkeypatch.setenv("ATLAS_DASK_SCHEDULER", cluster.start_scheduler().address)
        return workspace

    return make


def scheduler_tasks(cluster: DaskCluster) -> int:
    """How many tasks the scheduler holds (submitted and not yet released by their run)."""
    from dask.distributed import Client

    with Client(cluster.address, timeout=30) as client:
        return int(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))


def batches_through_the_daemon_on_two_workers(
    deployment: Path, cluster: DaskCluster, shared_data: Path, atlas_map, daemon_log: Path
) -> tuple[list[int], int]:
    """The daemon runs; BATCHES files dropped in mini/news's inbox become runs whose steps wait on the
    scheduler until two workers join (as a cluster's workers scale up when work arrives); returns
    once every dropped row is in the map and no run is left, with the workers' pids and the daemon's."""
    from resources.instance import get_instance

    instance = get_instance()
    daemon = Daemon(deployment, daemon_log).start()
    logs = lambda: daemon.log_tail() + cluster.logs()
    try:
        dropped = drop_files(shared_data, "mini", "news", FIRST_ROWS, BATCHES, BATCH_ROWS)
        # every run submitted its two steps (raw_data, embeddings) before any worker exists
        wait_for(lambda: scheduler_tasks(cluster) >= 2 * BATCHES, "every run's steps on the scheduler",
                 DEADLINE_SECONDS, logs)
        cluster.add_workers("worker-a", "worker-b")
        workers = cluster.workers()
        expected = sorted(news_frame(shared_data, rows=FIRST_ROWS)["id"].tolist() + dropped)
        wait_for(lambda: sorted(projected_ids(atlas_map)) == expected and finished(instance),
                 "every dropped row reaching the map", DEADLINE_SECONDS, logs)
    finally:
        daemon.stop()
    return workers, daemon.pid


def test_the_dask_code_location_runs_every_dataset_with_the_dask_executor(atlas_home, shared_data, monkeypatch):
    from atlas_assets import AtlasDataset

    AtlasDataset("dask/news", unique_id_field="id").add_data(news_frame(shared_data, rows=5))
    monkeypatch.setenv("ATLAS_DASK_SCHEDULER", "tcp://127.0.0.1:8786")
    spec = importlib.util.spec_from_file_location("dask_definitions", DASK_DEFINITIONS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    definitions = module.defs()
    job = definitions.resolve_job_def(DatasetNames("dask", "news").embed_job)
    assert job.executor_def.name == "dask"
    keys = {key.to_user_string() for asset in definitions.assets for key in asset.keys}
    assert "dask/news/raw_data" in keys


@pytest.mark.slow
@pytest.mark.postgres
def test_upload_batches_embed_on_different_workers_at_the_same_time(deploy, dask_cluster, shared_data, tmp_path):
    """Three batches' runs wait on the scheduler until two workers join (as a cluster's workers
    scale up when work arrives): their steps then run on both workers, two embedding steps at once,
    and the map holds every row once."""
    from resources.instance import get_instance

    deployment = deploy(dask_cluster)
    atlas_map = first_map(shared_data)
    names = DatasetNames("mini", "news")
    instance = get_instance()
    workers, daemon_pid = batches_through_the_daemon_on_two_workers(
        deployment, dask_cluster, shared_data, atlas_map, tmp_path / "daemon.log"
    )

    records = instance.get_run_records(filters=dg.RunsFilter(job_name=names.embed_job, tags={TRIGGER_TAG: "inbox"}))
    assert len(records) == BATCHES and all(record.dagster_run.is_success for record in records)
    run_ids = [record.dagster_run.run_id for record in records]
    # each step ran in a worker process: not the run's own process, the daemon or this test
    by_run = {run_id: step_workers(instance, run_id, "embeddings") for run_id in run_ids}
    assert all(len(pids) == 1 for pids in by_run.values()), by_run
    embedding_pids = [pids[0] for pids in by_run.values()]
    assert set(embedding_pids) <= set(workers), (embedding_pids, workers)
    assert all(run_pid(instance, run_id) not in workers for run_id in run_ids)
    assert not set(embedding_pids) & {daemon_pid, os.getpid()}
    assert all(set(step_workers(instance, run_id, "raw_data")) <= set(workers) for run_id in run_ids)
    # both workers embedded, and two embedding steps ran at the same time, on different workers
    assert len(set(embedding_pids)) == 2
    windows = {run_id: step_windows(instance, [run_id], "embeddings")[0] for run_id in run_ids}
    assert most_at_once(windows.values()) == 2
    overlapping = [
        (a, b) for a in run_ids for b in run_ids
        if a < b and windows[a][0] < windows[b][1] and windows[b][0] < windows[a][1]
    ]
    assert overlapping and all(by_run[a] != by_run[b] for a, b in overlapping)
    # the map's rebuild ran on the workers too
    automation = instance.get_run_records(filters=dg.RunsFilter(tags={TRIGGER_TAG: "automation"}))
    assert automation and all(record.dagster_run.is_success for record in automation)
    assert all(set(step_workers(instance, r.dagster_run.run_id, "")) <= set(workers) for r in automation)
    # each batch embedded once; the map holds every row once
    batch_ids = instance.get_dynamic_partitions(names.partitions)
    assert len(batch_ids) == 1 + BATCHES
    embedded = instance.fetch_materializations(names.stage("news", "embeddings"), limit=100).records
    assert sorted(event.partition_key for event in embedded) == sorted(batch_ids)
    ids = projected_ids(atlas_map)
    assert len(ids) == len(set(ids)) == FIRST_ROWS + BATCHES * BATCH_ROWS


def embedding_started(instance: dg.DagsterInstance, job_name: str) -> tuple[str, int] | None:
    """(run id, worker pid) of the inbox's embed run once its embeddings step has started."""
    for record in instance.get_run_records(filters=dg.RunsFilter(job_name=job_name, tags={TRIGGER_TAG: "inbox"})):
        pids = step_workers(instance, record.dagster_run.run_id, "embeddings")
        if pids:
            return record.dagster_run.run_id, pids[0]
    return None


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_killed_while_embedding_a_batch_has_its_step_run_again_on_another(
    deploy, dask_cluster, shared_data, tmp_path
):
    """kill -9 of the worker process inside a batch's embeddings step: the scheduler runs the task
    again on another worker (Dask's rescheduling, not a Dagster retry: the run itself succeeds and
    is not re-executed), the batch is embedded once, every row, and the map holds every row once."""
    from resources.instance import get_instance

    deployment = deploy(dask_cluster)
    atlas_map = first_map(shared_data)
    names = DatasetNames("mini", "news")
    instance = get_instance()
    dask_cluster.add_workers("worker-a", "worker-b")
    daemon = Daemon(deployment, tmp_path / "daemon.log").start()
    logs = lambda: daemon.log_tail() + dask_cluster.logs()
    try:
        dropped = drop_files(shared_data, "mini", "news", FIRST_ROWS, 1, FAULT_ROWS)
        started: list[tuple[str, int] | None] = []
        wait_for(lambda: started.append(embedding_started(instance, names.embed_job)) or started[-1],
                 "the embed run inside its embeddings step", DEADLINE_SECONDS, logs)
        run_id, victim = started[-1]
        assert victim in dask_cluster.workers()
        dask_cluster.kill_worker_process(victim)
        expected = sorted(news_frame(shared_data, rows=FIRST_ROWS)["id"].tolist() + dropped)
        wait_for(lambda: sorted(projected_ids(atlas_map)) == expected and finished(instance),
                 "every row reaching the map after the kill", DEADLINE_SECONDS, logs)
    finally:
        daemon.stop()

    # the step started twice in the one run: on the killed worker, then on another worker process
    attempts = step_workers(instance, run_id, "embeddings")
    assert len(attempts) == 2 and attempts[0] == victim and attempts[1] != victim, attempts
    successes = [
        entry for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        if entry.dagster_event.step_key.endswith("embeddings")
    ]
    assert len(successes) == 1 and successes[0].dagster_event.pid == attempts[1]
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    assert not [run for run in instance.get_runs() if run.parent_run_id]  # no run retry was needed
    # the batch's embeddings materialised once, by the retried step; one vector per row of the batch
    batch = instance.get_run_by_id(run_id).tags["dagster/partition"]
    embedded = instance.fetch_materializations(names.stage("news", "embeddings"), limit=100).records
    assert [event.run_id for event in embedded if event.partition_key == batch] == [run_id]
    from atlas_assets import AtlasDataset
    from resources.index_outputs import IndexOutputs
    from resources.storage import DatasetStore

    index_id = AtlasDataset("mini/news").indices[0].id
    (output,) = IndexOutputs("mini", "news", index_id).read_embeddings([batch]).values()
    row_ids = output.table["_row_id"].to_pylist()
    batch_rows = DatasetStore().read_batch("mini", "news", batch, columns=["_row_id", "id"])
    assert sorted(row_ids) == sorted(batch_rows["_row_id"].to_pylist()) and len(set(row_ids)) == FAULT_ROWS
    ids = projected_ids(atlas_map)
    assert len(ids) == len(set(ids)) == FIRST_ROWS + FAULT_ROWS
