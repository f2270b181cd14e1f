"""create_index and update_indices end to end: wall time, time per stage, peak memory.

Each size runs in a fresh subprocess (its own ATLAS_HOME and Dagster instance, the shared model
cache) so the peak RSS is its own. Rows are real Stack Overflow titles (20,000 in the shared set;
sizes above that repeat them with a counter appended). Steps measured:

1. add_data of N rows;
2. create_index(indexed_field="text") with topics and duplicates (the whole asset family);
3. add_data of 1% more rows, then update_indices() (one new embeddings partition; incremental graph,
   stable layout update, new rows join existing topics).

Per-stage seconds come from the `seconds` metadata each asset records in the Dagster instance; the
rest of the wall time is Dagster's run overhead and reading/writing Parquet.

    .venv/bin/python -m benchmarks.end_to_end            # 10,000 rows
    .venv/bin/python -m benchmarks.end_to_end 2000 10000
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.memory import reset_peak_rss, status_mib
from atlas_assets.pipeline.naming import STAGES

RESULTS = Path(__file__).resolve().parent / "results"


def _titles(rows: int, start: int = 0):
    import numpy as np
    import pandas as pd

    from benchmarks.data import SHARED_DATA

    frame = pd.read_csv(SHARED_DATA / "stackoverflow_titles" / "stackoverflow_titles.csv")
    order = np.random.default_rng(0).permutation(len(frame))
    titles = frame["title"].fillna("").to_numpy()[order]
    labels = frame["label_name"].astype(str).to_numpy()[order]
    index = np.arange(start, start + rows)
    base = index % len(frame)
    texts = [titles[b] if i < len(frame) else f"{titles[b]} #{i}" for i, b in zip(index, base)]
    return pd.DataFrame({"id": [f"so-{i}" for i in index], "text": texts, "tag": labels[base]})


def _stage_seconds(dataset, instance) -> dict[str, float]:
    """The `seconds` metadata of the latest materialisation of each stage (embeddings: summed)."""
    import dagster as dg

    from atlas_assets.pipeline.naming import DatasetNames

    names = DatasetNames(dataset.organisation, dataset.slug)
    index = dataset.indices[0]
    found: dict[str, float] = {}
    for stage in STAGES:
        key = names.stage(index.asset_name, stage)
        if stage == "embeddings":
            records = instance.fetch_materializations(dg.AssetKey(key.path), limit=1000).records
            latest_run = records[0].run_id if records else None
            total = sum(
                float(r.asset_materialization.metadata["seconds"].value)
                for r in records
                if r.run_id == latest_run and "seconds" in r.asset_materialization.metadata
            )
            found[stage] = round(total, 2)
        else:
            event = instance.get_latest_materialization_event(key)
            if event is not None and event.asset_materialization is not None:
                value = event.asset_materialization.metadata.get("seconds")
                if value is not None:
                    found[stage] = round(float(value.value), 2)
    return found


def _one_case(rows: int) -> dict:
    """Runs inside the child process."""
    from atlas_assets import AtlasDataset
    from resources.instance import get_instance

    frame = _titles(rows)
    extra = _titles(max(rows // 100, 1), start=rows)
    dataset = AtlasDataset("bench/end-to-end", unique_id_field="id")
    result: dict = {"rows": rows, "added_rows": len(extra)}

    start = time.perf_counter()
    dataset.add_data(frame)
    result["add_data_s"] = round(time.perf_counter() - start, 2)

    instance = get_instance()
    rss_before = status_mib("VmRSS")
    reset_peak_rss()
    start = time.perf_counter()
    atlas_map = dataset.create_index(name="titles", indexed_field="text")
    result["create_index_s"] = round(time.perf_counter() - start, 2)
    result["create_index_peak_rss_mib"] = round(status_mib("VmHWM"), 1)
    result["rss_before_create_index_mib"] = round(rss_before, 1)
    result["create_index_stages_s"] = _stage_seconds(dataset, instance)
    result["topics_depth_1"] = int(atlas_map.topics.metadata.query("depth == 1").shape[0])

    dataset.add_data(extra)
    reset_peak_rss()
    start = time.perf_counter()
    dataset.update_indices()
    result["update_indices_s"] = round(time.perf_counter() - start, 2)
    result["update_indices_peak_rss_mib"] = round(status_mib("VmHWM"), 1)
    result["update_indices_stages_s"] = _stage_seconds(dataset, instance)
    result["map_rows_after_update"] = len(atlas_map.embeddings.projected)
    return result


def run_case(rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="atlas-e2e-") as home:
        env = {**os.environ, "ATLAS_HOME": home, "DAGSTER_HOME": str(Path(home) / "dagster")}
        env.setdefault("ATLAS_MODELS", str(Path.home() / ".atlas" / "models"))
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.end_to_end", "--child", str(rows)],
            env=env,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        if completed.returncode != 0:
            raise RuntimeError(completed.stderr[-3000:])
        return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(_one_case(int(argv[1]))))
        return
    sizes = [int(a) for a in argv] or [10_000]
    load_before = os.getloadavg()
    cases = []
    for rows in sizes:
        case = run_case(rows)
        cases.append(case)
        stages = case["create_index_stages_s"]
        print(
            f"{rows:>8} rows  create_index {case['create_index_s']:>7.1f} s  peak {case['create_index_peak_rss_mib']:>7.0f} MiB  "
            f"| update (+{case['added_rows']}) {case['update_indices_s']:>6.1f} s  peak {case['update_indices_peak_rss_mib']:>6.0f} MiB"
        )
        print("          stages (create): " + "  ".join(f"{k} {v:.1f}s" for k, v in stages.items()))
        print("          stages (update): " + "  ".join(f"{k} {v:.1f}s" for k, v in case["update_indices_stages_s"].items()))
    # Sizes measured earlier (other invocations) are kept unless measured again.
    previous = RESULTS / "end_to_end.json"
    if previous.exists():
        kept = [c for c in json.loads(previous.read_text()).get("cases", []) if c["rows"] not in sizes]
        cases = sorted(kept + cases, key=lambda c: c["rows"])
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": list(load_before),
            "load_after": list(os.getloadavg()),
            "note": "2 shared cores; several other processes (other helpers' tests and benchmarks) were running",
        },
        "data": "stackoverflow_titles (shared set), shuffled with seed 0",
        "cases": cases,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "end_to_end.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
