"""`atlas ingest`, `atlas status`, `atlas delete`: getting data in, seeing what is there, removing it."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from atlas_assets.errors import (
    AtlasError,
    DatasetNotFoundError,
    InvalidDataError,
    InvalidOptionError,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
MAX_ID_CHARS = 36  # the Atlas limit on string ids


def existing_dataset(identifier: str):
    """The dataset named `identifier`; a DatasetNotFoundError naming the fix when it does not exist."""
    from atlas_assets.client.dataset import AtlasDataset, parse_identifier
    from resources.storage import DatasetStore

    organisation, slug, _ = parse_identifier(identifier)
    store = DatasetStore()
    if store.find_dataset(organisation, slug) is None:
        known = ", ".join(record.identifier for record in store.list_datasets()) or "none yet"
        raise DatasetNotFoundError(
            f"no dataset {organisation}/{slug}{store.did_you_mean(organisation, slug)} (datasets: {known}); "
            f"create one with `atlas ingest FILE --dataset {organisation}/{slug}`"
        )
    return AtlasDataset(f"{organisation}/{slug}", store=store)


# --- ingest ------------------------------------------------------------------------------------


def image_id(folder: Path, path: Path) -> str:
    """The id of an image file: its path inside the folder, or a hash of it when too long for Atlas."""
    relative = path.relative_to(folder).as_posix()
    if len(relative) <= MAX_ID_CHARS:
        return relative
    return hashlib.sha1(relative.encode()).hexdigest()[:MAX_ID_CHARS]


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def ingest_path(path: Path, identifier: str, id_field: str | None = None, description: str | None = None) -> list[int]:
    """Add a data file, a folder of data files (one batch each) or a folder of images (one batch).

    Returns the rows added per batch. Each file is one add_data call: all of it or nothing.
    """
    from atlas_assets.client.dataset import AtlasDataset, parse_identifier
    from resources.data_files import READERS, is_data_file

    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidDataError(f"{path} does not exist; pass a .csv, .parquet or .jsonl file or a folder")
    if path.is_dir():
        data_files = sorted(p for p in path.iterdir() if is_data_file(p))
        images = [] if data_files else image_files(path)
        if not data_files and not images:
            raise InvalidDataError(
                f"{path} holds no data files ({', '.join(sorted(READERS))}) and no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
    else:
        if not is_data_file(path):
            raise InvalidDataError(f"{path.name}: unsupported file type {path.suffix!r}; use .csv, .parquet or .jsonl")
        data_files, images = [path], []

    kwargs: dict[str, Any] = {"unique_id_field": id_field}
    if description is not None:
        kwargs["description"] = description
    from resources.storage import DatasetStore

    organisation, slug, _ = parse_identifier(identifier)
    is_new = DatasetStore().find_dataset(organisation, slug) is None
    dataset = AtlasDataset(identifier, **kwargs)
    try:
        return _add_files(dataset, path, data_files, images, id_field)
    except AtlasError as error:
        if is_new and dataset.total_datums == 0:
            # A first upload that failed leaves nothing: an empty dataset would freeze its id field
            # and make the retry fail differently.
            dataset.delete()
            error.args = (f"{error}; nothing was created, so fix that and run the same `atlas ingest` again",)
        raise


def _add_files(dataset: Any, path: Path, data_files: list[Path], images: list[Path], id_field: str | None) -> list[int]:
    from resources.data_files import read_data_file

    added = []
    if images:
        field = id_field or dataset.id_field
        rows = [{field: image_id(path, image), "filename": image.relative_to(path).as_posix()} for image in images]
        print(f"{dataset.identifier}: adding {len(rows)} images from {path}", file=sys.stderr)
        from tqdm.auto import tqdm

        with tqdm(total=len(rows), desc="images", unit="img", disable=len(rows) < 200) as bar:
            dataset.add_data(data=rows, blobs=[str(image) for image in images], pbar=bar)
        added.append(len(rows))
        return added
    for file in data_files:
        table = read_data_file(file, dataset.schema)
        if id_field and id_field not in table.column_names:
            raise InvalidDataError(
                f"{file.name} has no field {id_field!r} (fields: {', '.join(table.column_names)}); pass --id-field"
            )
        print(f"{dataset.identifier}: adding {table.num_rows:,} rows from {file.name}", file=sys.stderr)
        dataset.add_data(table)
        added.append(table.num_rows)
    return added


def _ingest(args: argparse.Namespace) -> int:
    added = ingest_path(Path(args.path), args.dataset, id_field=args.id_field, description=args.description)
    dataset = existing_dataset(args.dataset)
    print(f"{dataset.identifier}: +{sum(added):,} rows in {len(added)} batch(es); {dataset.total_datums:,} rows in all")
    if dataset.indices:
        print(f"the maps do not show them yet: atlas update {dataset.identifier}")
    else:
        hint = "--field <text field>" if dataset.modality == "text" else ""
        print(f"next: atlas index {dataset.identifier} {hint}".rstrip())
    return 0


# --- status ------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from atlas_assets.client.status import all_statuses, dataset_status, format_status
    from resources.storage import DatasetStore

    if args.dataset:
        dataset = existing_dataset(args.dataset)
        statuses = [dataset_status(DatasetStore(), dataset.organisation, dataset.slug)]
    else:
        statuses = all_statuses()
        if not statuses:
            print(f"no datasets in {DatasetStore().location}; try `atlas demo` or `atlas ingest FILE --dataset org/name`")
            return 0
    if args.json:
        import dataclasses
        import json

        print(json.dumps([dataclasses.asdict(s) for s in statuses], indent=2, default=str))
    else:
        print("\n".join(format_status(s, detailed=bool(args.dataset)) for s in statuses))
    return 1 if args.check and any(s.is_stale for s in statuses) else 0


# --- delete ------------------------------------------------------------------------------------


def _delete(args: argparse.Namespace) -> int:
    dataset = existing_dataset(args.dataset)
    if args.map is not None:
        return _delete_map(dataset, args.map, args.yes)
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidOptionError(f"deleting {dataset.identifier} needs confirmation: pass --yes")
        answer = input(
            f"delete {dataset.identifier} ({dataset.total_datums:,} rows, {len(dataset.indices)} map(s))? "
            "This cannot be undone. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    batches = len(dataset._record().batches)
    dataset.delete()
    print(f"deleted {dataset.identifier} (and its {batches} Dagster partition(s))")
    return 0


def _delete_map(dataset: Any, name: str, yes: bool) -> int:
    """`atlas delete DATASET --map NAME`: one map (its outputs and tags) goes, the data stays."""
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidOptionError(f"deleting map {name!r} of {dataset.identifier} needs confirmation: pass --yes")
        answer = input(f"delete map {name!r} of {dataset.identifier} (the data stays)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    dataset.delete_index(name=name)
    left = ", ".join(repr(index.name) for index in dataset.indices) or "none"
    print(f"deleted map {name!r} of {dataset.identifier}; maps left: {left}")
    return 0


def add_data_commands(commands: Any) -> None:
    ingest = commands.add_parser(
        "ingest",
        help="add a CSV, Parquet or JSONL file, a folder of them, or a folder of images to a dataset",
        description="Add data to a dataset (created when missing). Each file is one batch, all or nothing.",
    )
    ingest.add_argument("path", help="a .csv, .parquet or .jsonl file, a folder of them, or a folder of images")
    ingest.add_argument("--dataset", "-d", required=True, help="dataset identifier, 'org/name' or 'name'")
    ingest.add_argument("--id-field", default=None, help="the field holding unique ids (default: ids are generated)")
    ingest.add_argument("--description", default=None, help="description of a new dataset")
    ingest.set_defaults(handler=_ingest)

    status = commands.add_parser(
        "status",
        help="rows, batches, maps and what is stale",
        description="Show each dataset's rows, batches and maps, and what the maps do not show yet.",
    )
    status.add_argument("dataset", nargs="?", default=None, help="one dataset (default: every dataset)")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.add_argument("--check", action="store_true", help="exit 1 when any map is stale")
    status.set_defaults(handler=_status)

    delete = commands.add_parser(
        "delete",
        help="delete a dataset, its maps and its Dagster partitions (or, with --map, one map)",
        description="Delete a dataset and everything stored for it, or only one of its maps (--map). "
        "Asks first unless --yes.",
    )
    delete.add_argument("dataset", help="dataset identifier, 'org/name' or 'name'")
    delete.add_argument("--map", default=None, help="delete only this map (name or id); the data stays")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=_delete)
