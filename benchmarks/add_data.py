"""add_data of many text rows: wall time and peak memory (is the upload really streamed?).

Each case runs in a fresh subprocess so peak RSS is its own. Rows are the 7,600 ag_news texts
repeated with a counter appended (unique ids, realistic lengths). Reported: the RSS with the input
DataFrame built (before add_data), the peak RSS during add_data, their difference (what the upload
itself costs; peak RSS is reset just before add_data), Arrow's pool (pandas 3 keeps strings in Arrow,
so the input itself is in the pool) before and at its peak, and rows/s.

    .venv/bin/python -m benchmarks.add_data            # 100k and 1M rows, Arrow and object strings
    .venv/bin/python -m benchmarks.add_data 200000     # chosen sizes
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.memory import reset_peak_rss, status_mib

RESULTS = Path(__file__).resolve().parent / "results"


def _one_case(rows: int, kind: str = "arrow") -> dict:
    """Runs inside the child process."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from atlas_assets import AtlasDataset
    from benchmarks.data import SHARED_DATA

    news = pd.read_csv(SHARED_DATA / "ag_news" / "test.csv")
    texts = (news["title"].fillna("") + ". " + news["description"].fillna("")).to_numpy()
    index = np.arange(rows)
    frame = pd.DataFrame(
        {
            "id": [f"doc-{i}" for i in index],
            "text": [f"{texts[i % len(texts)]} #{i}" for i in index],
            "label": news["label"].to_numpy()[index % len(news)],
        }
    )
    if kind == "object":  # Python str objects, as pandas < 3 (or dtype=object) holds them
        frame = frame.astype({"id": object, "text": object})
    input_mib = frame.memory_usage(deep=True).sum() / 2**20
    dataset = AtlasDataset("bench/add-data", unique_id_field="id")
    rss_before = status_mib("VmRSS")
    reset_peak_rss()
    pool_before = pa.total_allocated_bytes()
    sampled = [pool_before]
    done = threading.Event()

    def sample() -> None:  # Arrow's pool peak cannot be reset: sample its level during add_data
        while not done.wait(0.002):
            sampled.append(pa.total_allocated_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    dataset.add_data(frame)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak = status_mib("VmHWM")
    assert dataset.total_datums == rows
    folder = dataset.store.dataset_dir(dataset.organisation, dataset.slug)
    stored = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20
    # Appending 10% more: the id check now also reads the stored ids, batch by batch.
    extra = frame.iloc[: rows // 10].assign(id=lambda f: "more-" + f["id"])
    start = time.perf_counter()
    dataset.add_data(extra)
    append_seconds = time.perf_counter() - start
    start = time.perf_counter()
    some = dataset.get_data([f"doc-{i}" for i in range(0, rows, max(rows // 100, 1))])
    get_seconds = time.perf_counter() - start
    assert len(some) == 100
    return {
        "rows": rows,
        "input": f"pandas, {kind} strings",
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "input_frame_mib": round(input_mib, 1),
        "rss_before_add_data_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak, 1),
        "add_data_extra_mib": round(peak - rss_before, 1),
        "arrow_pool_input_mib": round(pool_before / 2**20, 1),
        "arrow_pool_peak_during_add_mib": round(max(sampled) / 2**20, 1),
        "stored_mib": round(stored, 1),
        "append_10pct_seconds": round(append_seconds, 2),
        "get_data_100_ids_seconds": round(get_seconds, 3),
    }


def run_case(rows: int, kind: str) -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "ATLAS_HOME": home}
        code = f"import json, benchmarks.add_data as b; print(json.dumps(b._one_case({rows}, {kind!r})))"
        output = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        ).stdout
        return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    sizes = [int(arg) for arg in argv] or [100_000, 1_000_000]
    results = [run_case(rows, kind) for rows in sizes for kind in ("arrow", "object")]
    columns = list(results[0])
    print(" | ".join(columns))
    for result in results:
        print(" | ".join(str(result[column]) for column in columns))
    RESULTS.mkdir(exist_ok=True)
    load = os.getloadavg()[0]
    (RESULTS / "add_data.json").write_text(
        json.dumps({"cases": results, "load_average_1min": load, "cpus": os.cpu_count()}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
