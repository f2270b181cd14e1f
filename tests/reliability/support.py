"""Shared tools of the reliability tests: store fingerprints, forked workers, case counters.

A fingerprint is the sha256 of every file under a folder: two equal fingerprints mean the two trees
are byte-for-byte the same, which is how "the store is exactly as before" is checked.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

CASE_COUNTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "reliability_cases.json"
FORK = multiprocessing.get_context("fork")


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (relative path -> hash); empty when it does not exist."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def start(target: Callable[..., Any], *args: Any) -> multiprocessing.Process:
    """Run `target(*args)` in a forked child (cheap: the parent's imports are inherited)."""
    process = FORK.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def kill_hard(process: multiprocessing.Process) -> None:
    """SIGKILL: no exception handlers, no atexit, no lock release by the process itself."""
    if process.is_alive():
        os.kill(process.pid, signal.SIGKILL)
    process.join(30)


def wait_for_file(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)


def acknowledge(path: Path, line: str) -> None:
    """Append one line durably: written before the parent may kill us, it is the proof of a commit."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def acknowledged(path: Path) -> list[str]:
    if not path.exists():
        return []
    # a line cut by the kill has no newline yet: it was never acknowledged
    text = path.read_text(encoding="utf-8")
    return [line for line in text.split("\n")[:-1] if line]


def digits_vectors(rows: int, start: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Real 64-d vectors (sklearn's bundled digits), with string ids, as add_data input."""
    digits = load_digits()
    end = start + rows
    if end > len(digits.data):
        reps = end // len(digits.data) + 1
        data = np.tile(digits.data, (reps, 1))
    else:
        data = digits.data
    frame = pd.DataFrame({"id": [f"d{i}" for i in range(start, end)], "digit": [str(digits.target[i % len(digits.target)]) for i in range(start, end)]})
    return frame, data[start:end].astype(np.float32)


def record_cases(name: str, count: int) -> None:
    """Remember how many cases a test ran, when ATLAS_RECORD_CASES=1 (docs/reliability.md quotes the
    file; ordinary runs leave the repository untouched)."""
    if not os.environ.get("ATLAS_RECORD_CASES"):
        return
    CASE_COUNTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        counts = json.loads(CASE_COUNTS.read_text())
    except (FileNotFoundError, ValueError):
        counts = {}
    counts[name] = count
    CASE_COUNTS.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------ materialising workers
# Materialisations run in *spawned* children: numba's OpenMP threading layer terminates a forked
# child ("fork() called from a process already using GNU OpenMP") once the parent has built a map.
SPAWN = multiprocessing.get_context("spawn")
INDEX_OPTIONS = dict(projection={"n_neighbors": 10, "n_epochs": 50}, topic_model=False, duplicate_detection=False)


def index_dataset(identifier: str, create: bool) -> None:
    """create_index (map "map", small options) or update_indices of one dataset."""
    from atlas_assets.dataset import AtlasDataset

    dataset = AtlasDataset(identifier)
    if create:
        dataset.create_index(name="map", **INDEX_OPTIONS)
    else:
        dataset.update_indices()


def start_indexing(identifier: str, create: bool) -> multiprocessing.Process:
    process = SPAWN.Process(target=index_dataset, args=(identifier, create), daemon=True)
    process.start()
    return process


def open_instance(result_path: str) -> None:
    """Open the Dagster instance (creating it when new) and write 'ok' or the error to a file."""
    from resources.instance import get_instance

    try:
        get_instance()
        Path(result_path).write_text("ok")
    except Exception as error:  # noqa: BLE001 - reported to the parent test
        Path(result_path).write_text(repr(error)[:500])


def run_in_process(assets: list, instance) -> None:
    """One in-process run of these assets through the runner's own path (a job of their own, as each
    dataset's jobs are), so the tests exercise what create_index does."""
    import dagster as dg

    from atlas_assets.pipeline.runner import _run

    family = dg.Definitions(assets=assets, jobs=[dg.define_asset_job("test_job", selection=dg.AssetSelection.assets(*assets))])
    _run(family, "test_job", [key for asset in assets for key in asset.keys], {}, instance)
