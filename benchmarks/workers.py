"""Steps over Dask workers: embedding wall time of 8 upload batches with 1 worker vs 2 workers on this
machine, and what the scheduler adds per step.

Shape: the code location deploy/dask/definitions.py (the run-scoped Dask executor) on a real
`dask scheduler` and `dask worker` processes on 127.0.0.1 (tests/deploy/workers.py), one Dask thread
and one onnxruntime thread per worker (ATLAS_EMBED_THREADS=1, OMP 1), a SQLite instance in a
temporary ATLAS_HOME. The 8 batches (real AG News texts, the default text model) are indexed once
in-process; each round then re-materialises the embeddings of all 8 batches: 8 runs of the dataset's
embed_batch job (embeddings only), each orchestrated by a process of its own (as 8 run workers would),
released together once all have loaded, their steps on the workers. Both shapes are measured in every round, alternating
which goes first; each round starts its workers afresh, so the figures include each worker's first
code-location and model load.

Reported per shape: wall time from the first embeddings STEP_START to the last STEP_SUCCESS, and
from submitting the runs to their end; the ratio 1 worker / 2 workers. Per step: a chain of 8 no-op
steps run through the Dask executor (one warm worker) vs in-process: the extra wall time per step and
the median gap from a step's end to the next step's start.

    .venv/bin/python -m benchmarks.workers                 # 8 batches of 250 rows, 2 rounds
    .venv/bin/python -m benchmarks.workers --rows 100 --rounds 1

Not in `make bench` (several minutes). Writes benchmarks/results/workers.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

RESULTS = Path(__file__).resolve().parent / "results" / "workers.json"
REPO_ROOT = Path(__file__).resolve().parent.parent
BATCHES = 8
CHAIN_STEPS = 8


# ----------------------------------------------------------------------------- a chain of no-op steps
@dg.op
def noop(previous: int | None = None) -> int:
    return (previous or 0) + 1


@dg.graph
def chain() -> None:
    result = noop.alias("step_0")()
    for number in range(1, CHAIN_STEPS):
        result = noop.alias(f"step_{number}")(result)


def _dask_executor() -> dg.ExecutorDefinition:
    import importlib.util

    spec = importlib.util.spec_from_file_location("atlas_dask_location", REPO_ROOT / "deploy" / "dask" / "definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dask_executor.configured({"address": {"env": "ATLAS_DASK_SCHEDULER"}})


def chain_on_dask() -> dg.JobDefinition:
    return chain.to_job(name="chain_on_dask", executor_def=_dask_executor())


def chain_in_process() -> dg.JobDefinition:
    return chain.to_job(name="chain_in_process", executor_def=dg.in_process_executor)


# ------------------------------------------------------------------------------------------ helpers
def _step_times(instance: dg.DagsterInstance, run_id: str, suffix: str = "") -> list[tuple[str, float, float]]:
    """(step key, STEP_START, STEP_SUCCESS) of the run's steps whose key ends with suffix."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key or not event.step_key.endswith(suffix):
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            ends[event.step_key] = entry.timestamp
    return sorted((key, starts[key], ends[key]) for key in starts if key in ends)


def _chain_figures(instance: dg.DagsterInstance, make_job) -> dict:
    started = time.perf_counter()
    result = dg.execute_job(dg.reconstructable(make_job), instance)
    wall = time.perf_counter() - started
    assert result.success, f"{make_job.__name__} failed"
    steps = sorted(_step_times(instance, result.run_id), key=lambda step: step[1])
    gaps = [later[1] - earlier[2] for earlier, later in itertools.pairwise(steps)]
    return {"wall_s": round(wall, 3), "median_gap_between_steps_s": round(statistics.median(gaps), 3)}


def _load_avg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def _build_dataset(rows: int):
    """8 batches of `rows` AG News items in a fresh store, indexed once in-process."""
    import pandas as pd

    from atlas_assets import AtlasDataset
    from benchmarks.data import SHARED_DATA

    news = pd.read_csv(SHARED_DATA / "ag_news" / "test.csv")
    dataset = AtlasDataset("bench/workers", unique_id_field="id")
    for batch in range(BATCHES):
        part = news.iloc[batch * rows : (batch + 1) * rows]
        dataset.add_data(pd.DataFrame({"id": part["id"].astype(str), "text": (part["title"] + ". " + part["description"]).tolist()}))
    dataset.create_index(
        name="news", indexed_field="text", topic_model=False, duplicate_detection=False,
        projection={"n_neighbors": 10, "n_epochs": 50},
    )
    return dataset


def _orchestrate(batch_id: str, go: Path) -> None:
    """One embedding run, in a process of its own (as a run worker): load everything, wait for the
    go file so that every run starts together, run, print the run id."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from atlas_assets.pipeline.naming import DatasetNames
    from tests.deploy.workers import DASK_DEFINITIONS

    names = DatasetNames("bench", "workers")
    job = ReconstructableRepository.for_file(str(DASK_DEFINITIONS), "defs", str(REPO_ROOT)).get_reconstructable_job(
        names.embed_job
    )
    job.get_definition()
    with dg.DagsterInstance.get() as instance:
        while not go.exists():
            time.sleep(0.05)
        result = dg.execute_job(
            job, instance, tags={"dagster/partition": batch_id}, asset_selection=[names.stage("news", "embeddings")]
        )
        print(f"RUN_ID {result.run_id} {result.success}", flush=True)


def _embed_round(folder: Path, batch_ids: list[str]) -> dict:
    """The embeddings of every batch at once: one run per batch, each orchestrated by its own process
    (Dask clients in threads of one process deadlocked here), all released together."""
    import subprocess

    go = folder / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.workers", "--orchestrate", batch_id, str(go)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        for batch_id in batch_ids
    ]
    time.sleep(20)  # every orchestrator imported and loaded the code location (they then wait idle)
    started = time.perf_counter()
    go.touch()
    outputs = [process.communicate(timeout=1800)[0] for process in processes]
    wall = time.perf_counter() - started
    runs = [line.split() for output in outputs for line in output.splitlines() if line.startswith("RUN_ID")]
    assert len(runs) == len(batch_ids) and all(ok == "True" for _, _, ok in runs), outputs
    with dg.DagsterInstance.get() as instance:
        steps = [step for _, run_id, _ in runs for step in _step_times(instance, run_id, "embeddings")]
    assert len(steps) == len(batch_ids)
    durations = [end - start for _, start, end in steps]
    return {
        "steps_wall_s": round(max(end for *_, end in steps) - min(start for _, start, _ in steps), 2),
        "runs_wall_s": round(wall, 2),
        "step_s_median": round(statistics.median(durations), 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=250, help="rows per batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--orchestrate", nargs=2, metavar=("BATCH", "GO_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.orchestrate:
        _orchestrate(args.orchestrate[0], Path(args.orchestrate[1]))
        return 0

    home = Path(tempfile.mkdtemp(prefix="atlas-bench-workers-"))
    os.environ["ATLAS_HOME"] = str(home / "atlas_home")
    os.environ["DAGSTER_HOME"] = str(home / "atlas_home" / "dagster")
    os.environ.setdefault("ATLAS_MODELS", str(Path.home() / ".atlas" / "models"))
    for name in ("OMP_NUM_THREADS", "ATLAS_EMBED_THREADS"):
        os.environ[name] = "1"
    sys.path.insert(0, str(REPO_ROOT))
    from atlas_assets.pipeline.naming import DatasetNames
    from resources.instance import get_instance
    from tests.deploy.workers import DaskCluster

    print(f"indexing {BATCHES} batches of {args.rows} rows in-process ...", flush=True)
    dataset = _build_dataset(args.rows)
    instance = get_instance()
    names = DatasetNames("bench", "workers")
    batch_ids = list(instance.get_dynamic_partitions(names.partitions))
    assert len(batch_ids) == BATCHES, batch_ids

    shapes = {"1 worker": ["worker-a"], "2 workers": ["worker-a", "worker-b"]}
    measured: dict[str, list[dict]] = {shape: [] for shape in shapes}
    for round_number in range(args.rounds):
        order = list(shapes) if round_number % 2 == 0 else list(reversed(shapes))
        for shape in order:
            cluster = DaskCluster(home / f"dask-{round_number}-{len(shapes[shape])}").start_scheduler()
            os.environ["ATLAS_DASK_SCHEDULER"] = cluster.address
            try:
                cluster.add_workers(*shapes[shape])
                figures = _embed_round(cluster.folder, batch_ids)
            finally:
                cluster.stop()
            figures["load_average"] = _load_avg()
            measured[shape].append(figures)
            print(f"round {round_number + 1} {shape}: {figures}", flush=True)

    # per step: a chain of no-op steps on one warm worker vs in-process, alternating
    cluster = DaskCluster(home / "dask-chain").start_scheduler()
    os.environ["ATLAS_DASK_SCHEDULER"] = cluster.address
    chains: dict[str, list[dict]] = {"dask": [], "in_process": []}
    try:
        cluster.add_workers("worker-a")
        _chain_figures(instance, chain_on_dask)  # warm: the worker imports this module once
        for _ in range(3):
            chains["dask"].append(_chain_figures(instance, chain_on_dask))
            chains["in_process"].append(_chain_figures(instance, chain_in_process))
    finally:
        cluster.stop()
    per_step = {
        mode: {
            "wall_s_median": statistics.median(run["wall_s"] for run in runs),
            "median_gap_between_steps_s": statistics.median(run["median_gap_between_steps_s"] for run in runs),
        }
        for mode, runs in chains.items()
    }
    extra_per_step = (per_step["dask"]["wall_s_median"] - per_step["in_process"]["wall_s_median"]) / CHAIN_STEPS

    one = statistics.median(r["steps_wall_s"] for r in measured["1 worker"])
    two = statistics.median(r["steps_wall_s"] for r in measured["2 workers"])
    result = {
        "what": "embedding wall time of 8 upload batches (8 embed_batch runs at once, embeddings only) "
        "on 1 vs 2 Dask workers; per-step cost of the Dask executor",
        "command": "python -m benchmarks.workers " + " ".join(argv),
        "machine": {"cpus": os.cpu_count(), "note": "2 cores shared with other jobs; see load_average"},
        "batches": BATCHES,
        "rows_per_batch": args.rows,
        "model": "default text model (all-MiniLM-L6-v2, ONNX)",
        "threads": {"dask_threads_per_worker": 1, "onnxruntime_intra_op_threads": 1, "OMP_NUM_THREADS": 1},
        "rounds": measured,
        "steps_wall_s_median": {"1 worker": one, "2 workers": two},
        "ratio_1_worker_over_2_workers": round(one / two, 2),
        "per_step": {
            "chain_steps": CHAIN_STEPS,
            **per_step,
            "dask_extra_wall_per_step_s": round(extra_per_step, 3),
            "load_average": _load_avg(),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    temporary.replace(RESULTS)
    print(json.dumps({k: result[k] for k in ("steps_wall_s_median", "ratio_1_worker_over_2_workers", "per_step")}, indent=2))
    del dataset
    shutil.rmtree(home, ignore_errors=True)  # the temporary store, instance and worker folders
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
