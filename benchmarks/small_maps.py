"""Small maps: what a map of 2,000 titles costs beyond embedding them (issue 20, item 3).

Each round uses a fresh ATLAS_HOME and a fresh numba cache folder (NUMBA_CACHE_DIR), and runs, each
in its own fresh process:

1. **first map**: `add_data` + `create_index(indexed_field="text")` of N Stack Overflow titles in the
   empty ATLAS_HOME (a new Dagster instance is created, every numba kernel compiles and is cached):
   what a new user pays once;
2. **second map**: the same in the same ATLAS_HOME, another dataset (instance and caches warm): what
   every later small map costs;
3. **embedding alone**: the same texts through `load_text_embedder().embed_documents` (session load
   and embedding timed apart), the floor a map cannot go below.

The model folder is the shared one (ATLAS_MODELS): no run downloads or builds a model. For each map,
`create_index` is split into the stages' own `seconds` (asset metadata) and "Dagster + IO" (the
rest), and that rest into: before the first run (record, definitions, instance, partitions), inside
the runs but outside the stages (run start, step events, IO manager reads/writes, checks), between
runs, and after the last run. Medians over rounds.

    .venv/bin/python -m benchmarks.small_maps                 # 2,000 rows, 3 rounds
    .venv/bin/python -m benchmarks.small_maps --rows 2000 --rounds 2

Target: second map create_index <= embedding alone (session + embedding) + 5 s.
Writes benchmarks/results/small_maps.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "small_maps.json"
ROOT = Path(__file__).resolve().parent.parent
TARGET_MARGIN_S = 5.0


# --------------------------------------------------------------------------------------------------
# Children


def _peak_rss_mib() -> float:
    from benchmarks.memory import status_mib

    return round(status_mib("VmHWM"), 1)


def _run_windows(instance, dataset_tag: str) -> list[tuple[float, float]]:
    """(start, end) wall-clock times of this dataset's runs, oldest first (from the run records)."""
    import dagster as dg

    runs = instance.get_run_records(filters=dg.RunsFilter(tags={"atlas/dataset": dataset_tag}))
    windows = [(record.start_time, record.end_time) for record in runs if record.start_time and record.end_time]
    return sorted(windows)


def run_map(rows: int, slug: str) -> dict:
    start_process = time.perf_counter()
    from atlas_assets import AtlasDataset
    from benchmarks.end_to_end import _stage_seconds, _titles
    from resources.instance import get_instance

    frame = _titles(rows)
    result: dict = {"imports_s": round(time.perf_counter() - start_process, 2)}
    dataset = AtlasDataset(f"bench/{slug}", unique_id_field="id")
    start = time.perf_counter()
    dataset.add_data(frame)
    result["add_data_s"] = round(time.perf_counter() - start, 2)
    wall_start = time.time()
    start = time.perf_counter()
    dataset.create_index(name="titles", indexed_field="text")
    result["create_index_s"] = round(time.perf_counter() - start, 2)
    wall_end = time.time()
    instance = get_instance()
    stages = _stage_seconds(dataset, instance)
    result["stages_s"] = stages
    result["dagster_and_io_s"] = round(result["create_index_s"] - sum(stages.values()), 2)
    windows = _run_windows(instance, f"bench/{slug}")
    if windows:
        in_runs = sum(end - begin for begin, end in windows)
        between = sum(max(0.0, windows[i + 1][0] - windows[i][1]) for i in range(len(windows) - 1))
        result["overhead_s"] = {
            "before_first_run": round(windows[0][0] - wall_start, 2),
            "in_runs_outside_stages": round(in_runs - sum(stages.values()), 2),
            "between_runs": round(between, 2),
            "after_last_run": round(wall_end - windows[-1][1], 2),
        }
        result["runs"] = len(windows)
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def run_embed(rows: int) -> dict:
    start_process = time.perf_counter()
    from benchmarks.end_to_end import _titles
    from resources.embedder import load_text_embedder

    texts = _titles(rows)["text"].tolist()
    result: dict = {"imports_s": round(time.perf_counter() - start_process, 2)}
    start = time.perf_counter()
    embedder = load_text_embedder()
    result["load_session_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    embedder.embed_documents(texts)
    result["embed_s"] = round(time.perf_counter() - start, 2)
    result["total_s"] = round(result["load_session_s"] + result["embed_s"], 2)
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


# --------------------------------------------------------------------------------------------------
# Parent


def run_child(home: Path, *arguments: str) -> dict:
    env = {**os.environ, "ATLAS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "NUMBA_CACHE_DIR": str(home / "numba-cache")}
    env.setdefault("ATLAS_MODELS", str(Path.home() / ".atlas" / "models"))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "benchmarks.small_maps", "--child", *arguments],
                               env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{arguments} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update(process_wall_s=round(wall, 2), load_1min_at_start=round(load, 2),
                  load_1min_at_end=round(os.getloadavg()[0], 2))
    return result


def one_round(rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="atlas-small-") as folder:
        home = Path(folder)
        first = run_child(home, "map", str(rows), "first-map")
        second = run_child(home, "map", str(rows), "second-map")
        embed = run_child(home, "embed", str(rows))
    return {"first_map": first, "second_map": second, "embedding_alone": embed}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def summarise(rows: int, rounds: list[dict]) -> dict:
    def med(part: str, key: str) -> float:
        return _median([r[part][key] for r in rounds])

    summary = {
        "rows": rows,
        "rounds": len(rounds),
        "first_map_create_index_s": med("first_map", "create_index_s"),
        "first_map_process_wall_s": med("first_map", "process_wall_s"),
        "second_map_create_index_s": med("second_map", "create_index_s"),
        "second_map_process_wall_s": med("second_map", "process_wall_s"),
        "second_map_dagster_and_io_s": med("second_map", "dagster_and_io_s"),
        "second_map_embeddings_stage_s": _median([r["second_map"]["stages_s"].get("embeddings", 0.0) for r in rounds]),
        "embedding_alone_s": med("embedding_alone", "total_s"),
        "embedding_alone_session_s": med("embedding_alone", "load_session_s"),
        "embedding_alone_process_wall_s": med("embedding_alone", "process_wall_s"),
        "second_map_peak_rss_mib": med("second_map", "peak_rss_mib"),
    }
    for part in ("first_map", "second_map"):
        stages = sorted({stage for r in rounds for stage in r[part]["stages_s"]})
        summary[f"{part}_stages_s"] = {s: _median([r[part]["stages_s"].get(s, 0.0) for r in rounds]) for s in stages}
        keys = sorted({key for r in rounds for key in r[part].get("overhead_s", {})})
        summary[f"{part}_overhead_s"] = {k: _median([r[part]["overhead_s"].get(k, 0.0) for r in rounds]) for k in keys}
    summary["second_map_minus_embedding_alone_s"] = round(
        summary["second_map_create_index_s"] - summary["embedding_alone_s"], 2)
    summary["target_met"] = summary["second_map_minus_embedding_alone_s"] <= TARGET_MARGIN_S
    return summary


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        kind = argv[1]
        result = run_map(int(argv[2]), argv[3]) if kind == "map" else run_embed(int(argv[2]))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="current", help="key under which this measurement is stored")
    args = parser.parse_args(argv)

    rounds = []
    for number in range(args.rounds):
        rounds.append(one_round(args.rows))
        last = rounds[-1]
        print(f"round {number + 1}: first map {last['first_map']['create_index_s']} s, second map "
              f"{last['second_map']['create_index_s']} s (stages {last['second_map']['stages_s']}), embedding alone "
              f"{last['embedding_alone']['total_s']} s; load {last['first_map']['load_1min_at_start']}", flush=True)
    summary = summarise(args.rows, rounds)
    print(json.dumps(summary, indent=1))
    document = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"measurements": {}}
    document["measurements"][args.label] = {"summary": summary, "rounds": rounds}
    _write(document)


def _write(document: dict) -> None:
    import platform

    document["data"] = "stackoverflow_titles (shared set), shuffled with seed 0 (benchmarks.end_to_end._titles)"
    document["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "note": "2 shared cores; other engineers' jobs ran at the same time (see load_1min_* per run)"}
    RESULTS.parent.mkdir(exist_ok=True)
    partial = RESULTS.with_suffix(".json.part")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, RESULTS)


if __name__ == "__main__":
    main(sys.argv[1:])
