"""The inbox sensor: files dropped in $ATLAS_HOME/inbox/<org>/<slug>/ become new upload batches.

Each good file is committed as one batch (atomically, by the store), moved to `done/`, and its
partition added and requested in the same tick. A bad file is moved to `rejected/` with the reason
written next to it (`<file>.error.txt`), and nothing of it is ingested.
"""


import shutil
import time
from pathlib import Path

import dagster as dg

from atlas_assets.config import atlas_home
from atlas_assets.errors import AtlasError
from atlas_assets.pipeline.factory import TRIGGER_TAG
from atlas_assets.pipeline.naming import DatasetNames
from resources.data_files import is_data_file, read_data_file
from resources.storage.records import DatasetRecord
from resources.storage import DatasetStore

INBOX_INTERVAL_SECONDS = 5
# A file written to less than this long ago may still be being copied in: it is looked at twice.
INBOX_SETTLE_SECONDS = 1.0


def inbox_dir(organisation: str, slug: str) -> Path:
    return atlas_home() / "inbox" / organisation / slug


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}-{int(path.stat().st_mtime_ns)}{path.suffix}"
    shutil.move(str(path), target)
    return target


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def settled_files(paths: list[Path]) -> list[Path]:
    """The files nobody is writing any more: unchanged (size, mtime) across INBOX_SETTLE_SECONDS.

    A file still being copied into the inbox (not written aside and renamed in) would otherwise be
    ingested half, or rejected as broken; it is left for a later tick instead.
    """
    seen = {path: _signature(path) for path in paths}
    newest = max((signature[1] for signature in seen.values() if signature), default=0) / 1e9
    wait = INBOX_SETTLE_SECONDS - (time.time() - newest)
    if wait > 0:
        time.sleep(min(wait, INBOX_SETTLE_SECONDS))
    return [path for path in paths if seen[path] is not None and _signature(path) == seen[path]]


def ingest_inbox(store: DatasetStore, record: DatasetRecord, log) -> list[str]:
    """Commit every waiting file of one dataset's inbox; returns the new batch ids."""
    folder = inbox_dir(record.organisation, record.slug)
    if not folder.is_dir():
        return []
    batch_ids = []
    for path in settled_files(sorted(p for p in folder.iterdir() if is_data_file(p))):
        try:
            table = read_data_file(path, store.read_record(record.organisation, record.slug).schema)
            batch = store.add_batch(record.organisation, record.slug, table)
        except AtlasError as error:
            rejected = _move(path, folder / "rejected")
            rejected.with_name(rejected.name + ".error.txt").write_text(f"{error}\n")
            log.warning(f"rejected {path.name}: {error}")
            continue
        _move(path, folder / "done")
        log.info(f"ingested {path.name} as batch {batch.batch_id} ({batch.rows} rows)")
        batch_ids.append(batch.batch_id)
    return batch_ids


def inbox_sensor(record: DatasetRecord, batches: dg.DynamicPartitionsDefinition) -> dg.SensorDefinition:
    names = DatasetNames(record.organisation, record.slug)
    embedding_keys = [names.stage(index.asset_name, "embeddings") for index in record.indices]
    target = [names.raw_data, *embedding_keys]

    @dg.sensor(
        name=names.inbox_sensor,
        job_name=names.embed_job,
        minimum_interval_seconds=INBOX_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Ingests CSV, Parquet and JSONL files dropped in inbox/{record.organisation}/{record.slug}/",
    )
    def inbox(context: dg.SensorEvaluationContext, store: dg.ResourceParam[DatasetStore]) -> dg.SensorResult:
        ingest_inbox(store, record, context.log)
        known = set(context.instance.get_dynamic_partitions(batches.name))
        committed = store.batch_ids(record.organisation, record.slug)
        # Every committed batch without a partition: the inbox's, and those added from Python.
        new_keys = [batch_id for batch_id in committed if batch_id not in known]
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=batch_id, partition_key=batch_id, asset_selection=target, tags={TRIGGER_TAG: "inbox"}
                )
                for batch_id in new_keys
            ],
            dynamic_partitions_requests=[batches.build_add_request(new_keys)] if new_keys else [],
        )

    return inbox
