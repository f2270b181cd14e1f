"""The inbox sensor: files dropped in $ATLAS_HOME/inbox/<org>/<slug>/ become new upload batches.

Each good file is committed as one batch (atomically, by the store), moved to `done/`, and its
partition added and requested in the same tick. Every other file is rejected: a bad data file, or a
file of a type the inbox does not read (`.tsv`, `.xlsx`, ...), is moved to `rejected/` with the reason
written next to it (`<file>.error.txt`), nothing of it is ingested, and the dataset's `inbox` asset
records it where a Dagster user looks: its check `every_file_accepted` fails with the file and the
reason. Names starting with "." are files still being written (write to a dot-name, then rename).
"""


import shutil
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from atlas_assets.config import atlas_home
from atlas_assets.errors import AtlasError, InvalidDataError
from atlas_assets.pipeline.factory import TRIGGER_TAG
from atlas_assets.pipeline.naming import DatasetNames
from resources.atomic import write_bytes_atomic
from resources.data_files import READERS, is_data_file, read_data_file
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


def ingest_inbox(
    store: DatasetStore, record: DatasetRecord, log, on_rejected: Callable[[str, str], None] | None = None
) -> list[str]:
    """Commit every waiting file of one dataset's inbox; returns the new batch ids. on_rejected(file,
    reason) is told of each file rejected."""
    folder = inbox_dir(record.organisation, record.slug)
    if not folder.is_dir():
        return []
    batch_ids = []
    waiting = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in settled_files(waiting):
        try:
            if not is_data_file(path):
                raise InvalidDataError(
                    f"the inbox does not read {path.suffix or 'extension-less'} files; "
                    f"drop {', '.join(sorted(READERS))} files (convert this one, e.g. a TSV to CSV)"
                )
            table = read_data_file(path, store.read_record(record.organisation, record.slug).schema)
            batch = store.add_batch(record.organisation, record.slug, table)
        except AtlasError as error:
            rejected = _move(path, folder / "rejected")
            write_bytes_atomic(rejected.with_name(rejected.name + ".error.txt"), f"{error}\n".encode())
            log.warning(f"rejected {path.name}: {error}")
            if on_rejected is not None:
                on_rejected(path.name, str(error))
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
        ingest_inbox(store, record, context.log, lambda name, reason: report_rejection(context.instance, names, name, reason))
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


INBOX_CHECK = "every_file_accepted"


def inbox_asset(record: DatasetRecord) -> dg.AssetsDefinition:
    """The dataset's inbox as an asset of its own (files arrive there; the sensor ingests them)."""
    names = DatasetNames(record.organisation, record.slug)
    return dg.AssetsDefinition(
        specs=[
            dg.AssetSpec(
                names.inbox,
                description=f"Files dropped in inbox/{record.organisation}/{record.slug}/: each becomes a batch or is rejected.",
                kinds={"file"},
                group_name=names.group,
            )
        ]
    )


def inbox_check(record: DatasetRecord) -> dg.AssetChecksDefinition:
    """Fails while rejected files wait in the inbox's `rejected/` folder, naming each and its reason;
    the sensor also reports a failure the moment it rejects a file."""
    names = DatasetNames(record.organisation, record.slug)

    @dg.asset_check(asset=names.inbox, name=INBOX_CHECK, description="No file of the inbox was rejected (or all were cleared).")
    def every_file_accepted() -> dg.AssetCheckResult:
        rejected = rejected_files(record)
        return dg.AssetCheckResult(
            passed=not rejected,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rejected_files": len(rejected), "reasons": dg.MetadataValue.md(_reasons_markdown(rejected))},
        )

    return every_file_accepted


def rejected_files(record: DatasetRecord) -> dict[str, str]:
    """file name -> reason, for every file waiting in the inbox's rejected/ folder."""
    folder = inbox_dir(record.organisation, record.slug) / "rejected"
    if not folder.is_dir():
        return {}
    reasons = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".error.txt"):
            continue
        note = path.with_name(path.name + ".error.txt")
        reasons[path.name] = note.read_text().strip() if note.is_file() else "no reason recorded"
    return reasons


def report_rejection(instance: dg.DagsterInstance, names: DatasetNames, file_name: str, reason: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=names.inbox,
            check_name=INBOX_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rejected_file": file_name, "reason": reason},
            description=f"{file_name} was rejected: {reason}",
        )
    )


def _reasons_markdown(rejected: dict[str, str]) -> str:
    if not rejected:
        return "No rejected file."
    return "\n".join(f"- **{name}**: {reason}" for name, reason in rejected.items())
