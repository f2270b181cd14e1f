"""The neighbour-graph stage against pynndescent alone, on the same vectors (issue 20, item 4).

Each side runs in its own fresh process on the same vectors, after a warm-up pair that fills numba's
disk caches (compile time is reported apart by the warm-up, never in the figures):

- **stage**: what the `neighbour_graph` asset does once its inputs are loaded by the IO manager: the
  embeddings as Arrow tables of 50,000 rows (one per upload batch) -> `live_vectors` (concatenate,
  order by row) -> `neighbour_graph.graph_output` (knn.build_graph: pynndescent with the stage's
  parameters, self removed; the Arrow output table; the recall sample shown in the UI);
- **library**: `pynndescent.NNDescent(vectors, ...)` with the same parameters (metric cosine,
  n_neighbors = k + NNDESCENT_EXTRA_NEIGHBOURS, max_candidates 60, delta 0.001, low_memory,
  compressed, random_state 0) and its `neighbor_graph`: nothing else.

Wall time of the timed part, and peak RSS (VmHWM) of the process, whose baseline (interpreter,
imports and the vectors themselves) is reported too. Recall@k on 500 sampled rows against exact
search is measured after the timing for both.

Vectors: a synthetic 384-d mixture with cluster structure (2,000 Gaussian clusters of random sizes
around random unit centres, per-cluster spread, then unit-normalised), seeded, made in each child:
no real embedded set of this project reaches 50k rows (the largest cached one is 8,000), and
embedding 1M texts takes hours on 2 cores.

    .venv/bin/python -m benchmarks.graph_stage --sizes 50000
    .venv/bin/python -m benchmarks.graph_stage --sizes 1000000 --no-warmup   # long

Writes benchmarks/results/graph_stage.json (sizes measured earlier are kept unless run again).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "graph_stage.json"
ROOT = Path(__file__).resolve().parent.parent
K = 15
BATCH_ROWS = 50_000
CLUSTERS = 2_000


def synthetic_vectors(rows: int, dims: int = 384, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dims)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.pareto(1.5, CLUSTERS) + 1.0
    labels = rng.choice(CLUSTERS, size=rows, p=weights / weights.sum())
    spread = rng.uniform(0.02, 0.06, CLUSTERS).astype(np.float32)
    vectors = np.empty((rows, dims), dtype=np.float32)
    for start in range(0, rows, 100_000):
        block = labels[start : start + 100_000]
        noise = rng.standard_normal((len(block), dims), dtype=np.float32) * spread[block, None]
        vectors[start : start + len(block)] = centres[block] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _status() -> dict:
    from benchmarks.memory import status_mib

    return {"rss_mib": round(status_mib("VmRSS"), 1), "peak_rss_mib": round(status_mib("VmHWM"), 1)}


def run_stage(rows: int) -> tuple[dict, np.ndarray]:
    import pyarrow as pa

    from atlas_assets.compute.arrays import matrix_to_arrow
    from atlas_assets.pipeline.assets.common import ROW_ID, StageOutput, live_vectors
    from atlas_assets.pipeline.assets.neighbour_graph import graph_output

    vectors = synthetic_vectors(rows)
    row_ids = np.arange(len(vectors), dtype=np.int64)
    embeddings = {
        f"batch-{start}": StageOutput(pa.table({ROW_ID: pa.array(row_ids[start : start + BATCH_ROWS]),
                                                "embedding": matrix_to_arrow(vectors[start : start + BATCH_ROWS])}))
        for start in range(0, len(vectors), BATCH_ROWS)
    }
    del vectors  # the stage holds the tables (as the IO manager hands them), not a second matrix
    baseline = _status()
    start = time.perf_counter()
    loaded = live_vectors(embeddings, row_ids)
    loaded_s = time.perf_counter() - start
    output, metadata = graph_output(loaded, row_ids, K)
    seconds = time.perf_counter() - start
    after = _status()
    from atlas_assets.compute.arrays import arrow_to_matrix

    indices = arrow_to_matrix(output.table["neighbour_indices"], np.int64)
    return {"seconds": round(seconds, 2), "load_vectors_s": round(loaded_s, 2), "baseline": baseline, **after,
            "stage_recall_metadata": metadata.get(f"recall_at_{K}_sample")}, indices


def run_library(vectors: np.ndarray) -> tuple[dict, np.ndarray]:
    from pynndescent import NNDescent

    from atlas_assets.compute.knn import NNDESCENT_EXTRA_NEIGHBOURS
    from resources.kernel_cache import enable_pynndescent_kernel_cache

    enable_pynndescent_kernel_cache()
    baseline = _status()
    start = time.perf_counter()
    index = NNDescent(vectors, metric="cosine", n_neighbors=K + NNDESCENT_EXTRA_NEIGHBOURS, random_state=0,
                      max_candidates=60, delta=0.001, low_memory=True, compressed=True)
    indices, _ = index.neighbor_graph
    seconds = time.perf_counter() - start
    after = _status()
    # the row itself is usually first: keep the K nearest others, as the stage does
    others = np.array([row[row != i][:K] for i, row in enumerate(indices)]) if len(indices) <= 200_000 else indices[:, 1 : K + 1]
    return {"seconds": round(seconds, 2), "baseline": baseline, **after}, others


def recall(vectors: np.ndarray, indices: np.ndarray, sample: int = 500) -> float:
    from atlas_assets.compute.knn import exact_neighbours

    rows = np.random.default_rng(1).choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    truth, _ = exact_neighbours(vectors, vectors[rows], K, "cosine", exclude=rows)
    return round(float(np.mean([np.intersect1d(truth[i], indices[row]).size / K for i, row in enumerate(rows)])), 4)


def child(side: str, rows: int) -> dict:
    if side == "stage":  # it makes its vectors itself and keeps only the Arrow tables of them
        result, indices = run_stage(rows)
        vectors = synthetic_vectors(rows)  # again, for the recall, after the timing
    else:
        vectors = synthetic_vectors(rows)
        result, indices = run_library(vectors)
    result["recall_at_15_sample"] = recall(vectors, indices)
    return result


def run_child(side: str, rows: int) -> dict:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "benchmarks.graph_stage", "--child", side, str(rows)],
                               capture_output=True, text=True, cwd=ROOT, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{side} at {rows} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update(process_wall_s=round(time.perf_counter() - started, 2), load_1min_at_start=round(load, 2),
                  load_1min_at_end=round(os.getloadavg()[0], 2))
    return result


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(child(argv[1], int(argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000])
    parser.add_argument("--no-warmup", action="store_true")
    args = parser.parse_args(argv)
    document = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"sizes": {}}
    if not args.no_warmup:
        document["warmup"] = {side: run_child(side, 25_000) for side in ("library", "stage")}
        print("warm-up:", {side: r["process_wall_s"] for side, r in document["warmup"].items()}, flush=True)
    for rows in args.sizes:
        library = run_child("library", rows)
        stage = run_child("stage", rows)
        summary = {
            "rows": rows, "k": K, "vectors": f"synthetic 384-d, {CLUSTERS} clusters, unit-normalised",
            "stage_s": stage["seconds"], "library_s": library["seconds"],
            "stage_over_library": round(stage["seconds"] / library["seconds"], 2),
            "stage_peak_rss_mib": stage["peak_rss_mib"], "library_peak_rss_mib": library["peak_rss_mib"],
            "stage_peak_over_baseline_mib": round(stage["peak_rss_mib"] - stage["baseline"]["rss_mib"], 1),
            "library_peak_over_baseline_mib": round(library["peak_rss_mib"] - library["baseline"]["rss_mib"], 1),
            "stage_recall": stage["recall_at_15_sample"], "library_recall": library["recall_at_15_sample"],
        }
        document["sizes"][str(rows)] = {"summary": summary, "stage": stage, "library": library}
        print(json.dumps(summary, indent=1), flush=True)
        _write(document)


def _write(document: dict) -> None:
    document["machine"] = {"cpus": os.cpu_count(), "note": "2 shared cores; see load_1min_* per run"}
    document["sizes"] = dict(sorted(document["sizes"].items(), key=lambda item: int(item[0])))
    RESULTS.parent.mkdir(exist_ok=True)
    partial = RESULTS.with_suffix(".json.part")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, RESULTS)


if __name__ == "__main__":
    main(sys.argv[1:])
