"""Materialise a dataset's asset family in-process against the shared Dagster instance.

This is what `create_index` and `update_indices` do: one run of the dataset's `embed_batch` job per
upload batch whose embeddings are missing (raw_data + the embeddings of every index that lacks that
batch), then one run of its `build_maps` job over the stages that span all batches. The runs appear
in the Dagster UI under the dataset's job names, tagged with the dataset and what started them, with
full lineage and metadata, and can be re-executed from there.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from atlas_assets.errors import PipelineError
from atlas_assets.pipeline.assets.common import rebuild_run_config
from atlas_assets.pipeline.deletions import report_deletions
from atlas_assets.pipeline.factory import (
    TRIGGER_TAG,
    batches_partitions,
    build_dataset_definitions,
)
from atlas_assets.pipeline.naming import DatasetNames
from atlas_assets.pipeline.spec import IndexSpec
from resources.embedder_resource import EmbedderResource
from resources.instance import get_instance
from resources.io_manager import ArrowIOManager
from resources.storage import DatasetStore
from resources.storage.records import DatasetRecord
from resources.store import store_resource

log = logging.getLogger(__name__)


# Every in-process run is tagged with the process running it, so a later run can tell a dead one.
PID_TAG = "atlas/pid"
HOST_TAG = "atlas/host"
_UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped) holds nothing any more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the runs whose process on this machine died (kill -9, OOM, power loss) and free their slots.

    A run killed inside a pooled step (the embedding pool allows one step at a time) keeps its
    concurrency slot claimed for ever, and every later run would wait for it; nothing else frees it
    for in-process runs (the daemon's run monitoring only watches launched runs).
    """
    host = socket.gethostname()
    released = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED, tags={HOST_TAG: host})):
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        log.warning(f"run {run.run_id} died with its process {pid}; marking it failed and freeing its slots")
        instance.report_run_failed(run, message=f"the process running it ({pid} on {host}) died")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


def default_resources(store: DatasetStore | None = None) -> dict[str, object]:
    return {
        "store": store if store is not None else store_resource,
        "embedder": EmbedderResource(),
        "io_manager": ArrowIOManager(),
    }


def _missing_embeddings(record: DatasetRecord, specs: Sequence[IndexSpec]) -> dict[str, list[IndexSpec]]:
    """batch id -> the indices whose embeddings of that batch are not written yet (in batch order)."""
    batch_ids = [batch.batch_id for batch in record.batches]
    missing: dict[str, list[IndexSpec]] = {}
    for spec in specs:
        for batch_id in spec.outputs.missing_batches(batch_ids):
            missing.setdefault(batch_id, []).append(spec)
    return {batch_id: missing[batch_id] for batch_id in batch_ids if batch_id in missing}


def _run(
    family: dg.Definitions,
    job_name: str,
    selection: Sequence[dg.AssetKey],
    resources: dict[str, object],
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
) -> None:
    """One run of the dataset's job `job_name` (factory.build_dataset_definitions), limited to
    `selection`: the Runs page names it by its dataset, and the UI can re-execute it."""
    job = dg.Definitions.merge(family, dg.Definitions(resources=resources)).resolve_job_def(job_name)
    result = job.execute_in_process(
        asset_selection=list(selection),
        partition_key=partition_key,
        instance=instance,
        tags={**(tags or {}), PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()},
        # Step events stay in the run's event log (and the UI); the terminal gets INFO and up.
        run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": "INFO"}}}},
        raise_on_error=False,
    )
    if not result.success:
        failures = [
            _with_cause(event.event_specific_data.error)
            for event in result.all_events
            if event.is_step_failure and event.event_specific_data and event.event_specific_data.error
        ]
        detail = failures[0] if failures else "see the run in the Dagster UI"
        raise PipelineError(f"materialisation failed (run {result.run_id}): {detail}")


def _with_cause(error) -> str:
    """The step's error and its root cause (Dagster wraps e.g. 'No space left on device' in a generic
    'Error occurred while handling output')."""
    message = error.message.strip()
    root = error
    while getattr(root, "cause", None) is not None:
        root = root.cause
    if root is not error:
        message += f" caused by {root.message.strip()}"
    return message


def materialize_indices(
    record: DatasetRecord,
    index_ids: Sequence[str] | None = None,
    store: DatasetStore | None = None,
    rebuild_topic_models: bool = False,
    rebuild_layout: bool = False,
    trigger: str = "update_indices",
) -> None:
    """Bring the given indices (default: all) of a dataset up to date with its batches and deletions.

    trigger: what asked for it (create_index, update_indices, ...), kept as a run tag."""
    index_ids = list(index_ids) if index_ids is not None else [index.id for index in record.indices]
    if not index_ids:
        return
    instance = get_instance()
    release_dead_runs(instance)
    names = DatasetNames(record.organisation, record.slug)
    batches = batches_partitions(record)
    batch_ids = [batch.batch_id for batch in record.batches]
    if not batch_ids:
        raise PipelineError(f"{record.identifier} has no data to index; add rows with add_data first")
    known = set(instance.get_dynamic_partitions(batches.name))
    new_keys = [key for key in batch_ids if key not in known]
    if new_keys:
        instance.add_dynamic_partitions(batches.name, new_keys)

    report_deletions(instance, record)
    family = build_dataset_definitions(record)
    assets = list(family.assets or [])
    tags = {TRIGGER_TAG: trigger}
    resources = default_resources(store)
    specs = [IndexSpec.of(record, index) for index in record.indices if index.id in index_ids]
    missing_embeddings = _missing_embeddings(record, specs)
    # An index on a static model fits its token table once, before its first batch is embedded.
    unfitted = {spec.key("static_table") for batch in missing_embeddings.values() for spec in batch
                if spec.fits_static_table and not spec.outputs.exists("static_table")}
    if unfitted:
        _run(family, names.build_job, sorted(unfitted, key=str), resources, instance, tags=tags)
    for batch_id, missing in missing_embeddings.items():
        log.info(f"{record.identifier}: embedding batch {batch_id}")
        selection = [names.raw_data]
        for spec in missing:
            # An index that reuses another's embeddings needs that index's batch in the same run.
            if spec.source_index is not None:
                selection.append(names.stage(spec.source_index.asset_name, "embeddings"))
            selection.append(spec.key("embeddings"))
        _run(family, names.embed_job, list(dict.fromkeys(selection)), resources, instance, batch_id, tags)

    downstream = [spec.key(stage) for spec in specs for stage in spec.enabled_stages if stage != "embeddings"]
    rebuilt = {"projection": rebuild_layout, "topics": rebuild_topic_models}
    by_key = {asset.key: asset for asset in assets}
    rebuild = [by_key[key] for key in downstream if rebuilt.get(key.path[-1])]
    log.info(f"{record.identifier}: building {', '.join(key.path[-1] for key in downstream)}")
    _run(family, names.build_job, downstream, resources, instance, tags=tags, run_config=rebuild_run_config(rebuild))
