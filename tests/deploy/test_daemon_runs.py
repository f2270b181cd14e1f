"""Runs through a real `dagster-daemon` on the PostgreSQL instance, as a cluster runs them: the queued
run coordinator holds runs back beyond its limit, the `atlas_embedding` pool lets one embedding step
run at a time across every run, each run executes in a process of its own (the default run launcher,
through the daemon's code server), and the map completes with every row once.

Data: real AG News items embedded with the default text model. The map exists first (create_index in
this process, on the same PostgreSQL instance); then files dropped in the inbox become batches whose
`embed_batch` runs the inbox sensor requests, and declarative automation rebuilds the map after them.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from atlas_assets.pipeline.factory import TRIGGER_TAG
from atlas_assets.pipeline.naming import DatasetNames
from atlas_assets.pipeline.sensors import inbox_dir
from tests.conftest import news_frame
from tests.deploy.miniature import (
    Daemon,
    most_at_once,
    run_events,
    run_pid,
    step_windows,
    wait_for,
    write_deployment,
)

pytestmark = pytest.mark.postgres

MAX_RUNS = 2
POOL_LIMIT = 1
FIRST_ROWS = 40
BATCHES, BATCH_ROWS = 3, 20
INDEX_OPTIONS = {"projection": {"n_neighbors": 10, "n_epochs": 50}, "topic_model": False, "duplicate_detection": False}
DEADLINE_SECONDS = 300


@pytest.fixture
def deploy(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch):
    """deploy(**limits): a fresh ATLAS_HOME whose instance is on a fresh PostgreSQL database, with the
    daemon's limits (instance_yaml's arguments); returns the workspace file."""

    def make(**limits: int) -> Path:
        home = tmp_path / "atlas_home"
        workspace = write_deployment(home, **limits)
        monkeypatch.setenv("ATLAS_HOME", str(home))
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url)
        return workspace

    return make


def first_map(shared_data: Path):
    """mini/news with FIRST_ROWS rows and its map "news", built in this process on the instance."""
    from atlas_assets import AtlasDataset

    dataset = AtlasDataset("mini/news", unique_id_field="id")
    dataset.add_data(news_frame(shared_data, rows=FIRST_ROWS))
    return dataset.create_index(name="news", indexed_field="text", **INDEX_OPTIONS)


def drop_files(shared_data: Path, organisation: str, slug: str, first_row: int, count: int, rows: int) -> list[str]:
    """Files written aside and renamed into the inbox (as a copier should); returns every id dropped."""
    folder = inbox_dir(organisation, slug)
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for number in range(count):
        frame = news_frame(shared_data, start=first_row + number * rows, rows=rows)
        aside = folder / f".part{number}.csv"
        frame.to_csv(aside, index=False)
        aside.rename(folder / f"part{number}.csv")
        ids.extend(frame["id"])
    return ids


def finished(instance: dg.DagsterInstance) -> bool:
    """No run waits in the queue or runs."""
    busy = instance.get_run_records(filters=dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
    ]), limit=1)
    return not busy


def projected_ids(atlas_map) -> list[str]:
    try:
        return list(atlas_map.embeddings.projected["id"])
    except Exception:  # noqa: BLE001 - the map is being rebuilt or not there yet
        return []


@pytest.mark.slow
def test_the_daemon_queues_runs_under_its_limits_each_in_its_own_process(deploy, shared_data, tmp_path):
    from resources.instance import get_instance

    deployment = deploy(max_concurrent_runs=MAX_RUNS, embedding_pool_limit=POOL_LIMIT)
    atlas_map = first_map(shared_data)
    names = DatasetNames("mini", "news")
    instance = get_instance()

    daemon = Daemon(deployment, tmp_path / "daemon.log").start()
    try:
        dropped = drop_files(shared_data, "mini", "news", FIRST_ROWS, BATCHES, BATCH_ROWS)
        expected = sorted(news_frame(shared_data, rows=FIRST_ROWS)["id"].tolist() + dropped)
        wait_for(lambda: sorted(projected_ids(atlas_map)) == expected and finished(instance),
                 "every dropped row reaching the map", DEADLINE_SECONDS, daemon.log_tail)
    finally:
        daemon.stop()

    records = instance.get_run_records(filters=dg.RunsFilter(job_name=names.embed_job, tags={TRIGGER_TAG: "inbox"}))
    assert len(records) == BATCHES and all(record.dagster_run.is_success for record in records)
    run_ids = [record.dagster_run.run_id for record in records]
    # every run went through the queue, and no more than MAX_RUNS ran at once (and that many did)
    for run_id in run_ids:
        assert run_events(instance, run_id, dg.DagsterEventType.RUN_ENQUEUED), run_id
    launched = instance.get_run_records(filters=dg.RunsFilter(tags={TRIGGER_TAG: "inbox"}))
    automation = instance.get_run_records(filters=dg.RunsFilter(tags={TRIGGER_TAG: "automation"}))
    daemon_runs = [*launched, *automation]
    assert automation, "declarative automation rebuilt the map after the new batches"
    assert most_at_once((r.start_time, r.end_time) for r in daemon_runs) <= MAX_RUNS
    assert most_at_once((r.start_time, r.end_time) for r in records) == MAX_RUNS
    # one embedding step at a time across all runs: the pool's limit
    embedding_steps = step_windows(instance, run_ids, "embeddings")
    assert len(embedding_steps) == BATCHES
    assert most_at_once(embedding_steps) == POOL_LIMIT
    # each run in a process of its own, none of them the daemon or this test
    pids = {run_pid(instance, run_id) for run_id in run_ids}
    assert len(pids) == BATCHES and not pids & {daemon.pid, os.getpid()}
    # each batch embedded once; the map holds every row once
    batch_ids = [key for key in instance.get_dynamic_partitions(names.partitions)]
    assert len(batch_ids) == 1 + BATCHES
    embedded = instance.fetch_materializations(names.stage("news", "embeddings"), limit=100).records
    assert sorted(event.partition_key for event in embedded) == sorted(batch_ids)
    ids = projected_ids(atlas_map)
    assert len(ids) == len(set(ids)) == FIRST_ROWS + BATCHES * BATCH_ROWS


# ------------------------------------------------------------------------------ the daemon killed
FAULT_ROWS = 1500  # a batch that takes seconds to embed (AG News, ~190 texts/s), so the kill lands inside its step
# (150 rows took under a second once the graph was fused: the step could end between two polls)
MAX_RUNTIME_SECONDS = 100  # what ends a run whose worker died with the daemon's process group


def first_embed_run_in_its_step(instance: dg.DagsterInstance, job_name: str) -> str | None:
    """The inbox's first embed run, once its embeddings step has started."""
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name, tags={TRIGGER_TAG: "inbox"}))
    for record in records:
        if step_windows_started(instance, record.dagster_run.run_id):
            return record.dagster_run.run_id
    return None


def step_windows_started(instance: dg.DagsterInstance, run_id: str) -> bool:
    return any(
        entry.dagster_event.step_key.endswith("embeddings")
        for entry in run_events(instance, run_id, dg.DagsterEventType.STEP_START)
    )


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_run_outlives_the_daemon_killed_under_it_and_the_queue_resumes_on_restart(deploy, shared_data, tmp_path):
    """kill -9 of the daemon alone (its pod, on a cluster): the run it launched goes on in its own
    process and succeeds; the run still queued waits, and the restarted daemon launches it."""
    from resources.instance import get_instance

    deployment = deploy(max_concurrent_runs=1, embedding_pool_limit=1)
    atlas_map = first_map(shared_data)
    names = DatasetNames("mini", "news")
    instance = get_instance()
    daemon = Daemon(deployment, tmp_path / "daemon.log").start()
    try:
        dropped = drop_files(shared_data, "mini", "news", FIRST_ROWS, 2, FAULT_ROWS)
        running: list[str] = []
        wait_for(lambda: running.append(first_embed_run_in_its_step(instance, names.embed_job) or "") or running[-1],
                 "an embed run inside its embeddings step", 180, daemon.log_tail)
        victim = running[-1]
        daemon.kill()
        assert instance.get_run_by_id(victim).status == dg.DagsterRunStatus.STARTED
        daemon = Daemon(deployment, tmp_path / "daemon.log").start()
        expected = sorted(news_frame(shared_data, rows=FIRST_ROWS)["id"].tolist() + dropped)
        wait_for(lambda: sorted(projected_ids(atlas_map)) == expected and finished(instance),
                 "every row reaching the map after the restart", 240, daemon.log_tail)
    finally:
        daemon.stop()
    assert instance.get_run_by_id(victim).status == dg.DagsterRunStatus.SUCCESS
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=names.embed_job, tags={TRIGGER_TAG: "inbox"}))
    assert len(records) == 2 and all(record.dagster_run.is_success for record in records)
    assert not [r for r in instance.get_runs() if r.parent_run_id]  # nothing needed a retry
    ids = projected_ids(atlas_map)
    assert len(ids) == len(set(ids)) == FIRST_ROWS + 2 * FAULT_ROWS


@pytest.mark.slow
def test_a_run_killed_with_the_daemons_process_group_is_failed_and_retried(deploy, shared_data, tmp_path):
    """kill -9 of the daemon with every process it started (a lost node): the orphaned run is failed
    by run monitoring once past its maximum runtime (the default run launcher cannot ask a dead
    worker's health), its pool slot is freed, run retries re-execute it, and the batch is embedded
    once, every row."""
    from resources.instance import get_instance

    deployment = deploy(max_concurrent_runs=1, embedding_pool_limit=1, max_runtime_seconds=MAX_RUNTIME_SECONDS)
    first_map(shared_data)
    names = DatasetNames("mini", "news")
    instance = get_instance()
    daemon = Daemon(deployment, tmp_path / "daemon.log").start()
    try:
        dropped = drop_files(shared_data, "mini", "news", FIRST_ROWS, 1, FAULT_ROWS)
        running: list[str] = []
        wait_for(lambda: running.append(first_embed_run_in_its_step(instance, names.embed_job) or "") or running[-1],
                 "the embed run inside its embeddings step", 180, daemon.log_tail)
        victim = running[-1]
        worker = run_pid(instance, victim)
        daemon.kill_group()
        wait_for(lambda: not process_alive(worker), "the run worker dying with the group", 30)
        assert instance.get_run_by_id(victim).status == dg.DagsterRunStatus.STARTED
        daemon = Daemon(deployment, tmp_path / "daemon.log").start()

        def retried() -> bool:
            retries = [run for run in instance.get_runs() if run.parent_run_id == victim]
            return bool(retries) and all(run.is_success for run in retries)

        wait_for(retried, "the orphaned run failed and retried", MAX_RUNTIME_SECONDS + 200, daemon.log_tail)
    finally:
        daemon.stop()
    assert instance.get_run_by_id(victim).status == dg.DagsterRunStatus.FAILURE
    (retry,) = [run for run in instance.get_runs() if run.parent_run_id == victim]
    assert retry.tags.get("dagster/partition") == instance.get_run_by_id(victim).tags.get("dagster/partition")
    batch = retry.tags["dagster/partition"]
    embedded = instance.fetch_materializations(names.stage("news", "embeddings"), limit=100).records
    assert [event.run_id for event in embedded if event.partition_key == batch] == [retry.run_id]
    from atlas_assets import AtlasDataset
    from resources.index_outputs import IndexOutputs
    from resources.storage import DatasetStore

    index_id = AtlasDataset("mini/news").indices[0].id
    (output,) = IndexOutputs("mini", "news", index_id).read_embeddings([batch]).values()
    row_ids = output.table["_row_id"].to_pylist()
    batch_rows = DatasetStore().read_batch("mini", "news", batch, columns=["_row_id", "id"])
    assert sorted(row_ids) == sorted(batch_rows["_row_id"].to_pylist()) and len(set(row_ids)) == FAULT_ROWS
    assert sorted(batch_rows["id"].to_pylist()) == sorted(dropped)
