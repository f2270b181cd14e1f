"""Neighbour graph + 2-D layout against umap-learn on the same kNN graph, in the same run.

    .venv/bin/python -m benchmarks.layout                      # digits, 3 real text sets, 100k synthetic
    .venv/bin/python -m benchmarks.layout --sets digits,ag_news --repeats 3
    .venv/bin/python -m benchmarks.layout --million            # 1M x 384: graph + layout, time + peak memory
    .venv/bin/python -m benchmarks.layout --compile            # first-run numba compile cost (cold cache)
    .venv/bin/python -m benchmarks.layout --stability-only     # +5% rows: update vs rebuild, seeds 0-2

Per set: graph build time and recall@15 (exact brute force on a 2,000-row sample); layout wall time of
ours and of umap-learn (0.5, `precomputed_knn` = our graph with the row itself prepended, n_neighbors =
k + 1 so both use the same 15 neighbours; no random_state so umap-learn runs its parallel, fastest path),
both warmed up so numba compile time stays out; NP@10, NP@15, trustworthiness(15), random triplet
accuracy of both maps; stability of adding 5% rows (extend_graph + update_layout against a full rebuild).
Timings on this shared 2-core machine are noisy: the time ratio comes from runs interleaved in one
process (median over --repeats); quality figures are means over the repeats (seed = repeat). Results merge into benchmarks/results/layout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from atlas_assets.compute import knn
from atlas_assets.compute.graph import Metric, NeighbourGraph
from atlas_assets.compute.knn import build_graph, extend_graph
from atlas_assets.compute.layout import LayoutParams, compute_layout, resolve_layout_params, update_layout
from atlas_assets.compute.quality import (
    graph_recall,
    mean_displacement,
    neighbourhood_preservation,
    random_triplet_accuracy,
    trustworthiness_score,
)
from resources.kernel_cache import enable_kernel_caches

RESULTS = Path(__file__).resolve().parent / "results" / "layout.json"
DEFAULT_SETS = ("digits", "ag_news", "20newsgroups", "stackoverflow_titles", "synthetic_100k")
K = 15


def gaussian_mixture(n_rows: int, dims: int = 384, n_clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors like normalised text embeddings, float32: n_clusters Gaussian clusters whose
    centres sit in 10 super-clusters (global structure to keep); inside a cluster the spread lies
    mostly in a random 8-d subspace (low intrinsic dimension, so neighbours mean something) plus a
    little isotropic noise."""
    rng = np.random.default_rng(seed)
    supers = rng.normal(size=(10, dims)).astype(np.float32)
    centres = supers[rng.integers(0, 10, n_clusters)] + 0.8 * rng.normal(size=(n_clusters, dims)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.normal(scale=0.35 / np.sqrt(8 * dims) * np.sqrt(dims), size=(n_clusters, 8, dims)).astype(np.float32)
    bases /= np.sqrt(dims)
    vectors = np.empty((n_rows, dims), dtype=np.float32)
    chunk = 100_000
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        labels = rng.integers(0, n_clusters, stop - start)
        block = centres[labels] + rng.normal(scale=0.1 / np.sqrt(dims), size=(stop - start, dims)).astype(np.float32)
        for cluster in range(n_clusters):
            rows = np.nonzero(labels == cluster)[0]
            block[rows] += rng.normal(size=(rows.size, 8)).astype(np.float32) @ bases[cluster]
        vectors[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def load_set(name: str) -> tuple[np.ndarray, Metric]:
    """Vectors of a benchmark set and the metric they are compared with."""
    if name == "digits":
        from sklearn.datasets import load_digits

        return load_digits().data.astype(np.float32), "euclidean"
    if name.startswith("synthetic_"):
        size = name.removeprefix("synthetic_").lower().replace("k", "000").replace("m", "000000")
        return gaussian_mixture(int(size)), "cosine"
    from benchmarks import data

    texts = data.LABELLED_SETS[name]().texts
    return np.asarray(data.cached_embeddings(name, texts), dtype=np.float32), "cosine"


def _timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def umap_layout(graph: NeighbourGraph, vectors: np.ndarray, n_epochs: int | None = None) -> np.ndarray:
    """umap-learn on our graph: the row itself prepended at distance 0, as umap-learn expects."""
    import umap

    n = graph.n_rows
    indices = np.concatenate([np.arange(n)[:, None], graph.neighbour_indices], axis=1)
    distances = np.concatenate([np.zeros((n, 1), np.float32), graph.neighbour_distances], axis=1)
    model = umap.UMAP(
        n_neighbors=graph.k + 1,
        precomputed_knn=(indices, distances, None),
        metric=graph.metric,
        n_epochs=n_epochs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit_transform(vectors).astype(np.float32)


def map_quality(vectors: np.ndarray, xy: np.ndarray, metric: Metric) -> dict[str, float]:
    return {
        "np10": neighbourhood_preservation(vectors, xy, 10, metric),
        "np15": neighbourhood_preservation(vectors, xy, 15, metric),
        "trustworthiness15": trustworthiness_score(vectors, xy, 15, metric),
        "triplet_accuracy": random_triplet_accuracy(vectors, xy, metric=metric),
    }


def warm_up() -> None:
    """Compile every numba kernel (ours, umap-learn's, pynndescent's) on a small input."""
    enable_kernel_caches()
    vectors = gaussian_mixture(600, dims=16)
    graph = build_graph(vectors, K, "cosine")
    build_graph(vectors, K, "cosine", method="nndescent")
    params = resolve_layout_params(None, len(vectors))
    xy = compute_layout(graph, LayoutParams(**{**params.__dict__, "n_epochs": 5}))
    previous = xy.copy()
    previous[-30:] = np.nan
    update_layout(graph, previous, params)
    umap_layout(graph, vectors, n_epochs=5)


def stability(vectors: np.ndarray, metric: Metric, params: LayoutParams, seed: int = 0) -> dict[str, float]:
    """Add 5% rows to a map: old points' mean move / extent, NP@15 of the update vs a rebuild."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    order = rng.permutation(n)
    n_old = int(round(n / 1.05))
    old_vectors = vectors[order[:n_old]]
    current = vectors[order]
    old_graph = build_graph(old_vectors, K, metric, seed=seed)
    old_map = compute_layout(old_graph, params, seed=seed, vectors=old_vectors)
    previous_row = np.concatenate([np.arange(n_old), np.full(n - n_old, -1)])
    (graph, graph_seconds) = _timed(lambda: extend_graph(current, old_graph, previous_row, seed=seed))
    previous = np.full((n, 2), np.nan)
    previous[:n_old] = old_map
    updated, update_seconds = _timed(lambda: update_layout(graph, previous, params, seed=seed))
    rebuilt, rebuild_seconds = _timed(lambda: compute_layout(graph, params, seed=seed, vectors=current))
    return {
        "old_mean_displacement_over_extent": mean_displacement(old_map, updated[:n_old]),
        "np15_updated": neighbourhood_preservation(current, updated, 15, metric),
        "np15_rebuilt": neighbourhood_preservation(current, rebuilt, 15, metric),
        "np15_new_rows_updated": _np_of_rows(current, updated, np.arange(n_old, n), metric),
        "np15_new_rows_rebuilt": _np_of_rows(current, rebuilt, np.arange(n_old, n), metric),
        "extend_graph_recall15": graph_recall(graph, current, sample=2000, seed=seed),
        "extend_graph_seconds": graph_seconds,
        "update_layout_seconds": update_seconds,
        "rebuild_layout_seconds": rebuild_seconds,
    }


STABILITY_SEEDS = (0, 1, 2)


def mean_stability(vectors: np.ndarray, metric: Metric, params: LayoutParams) -> dict[str, Any]:
    """stability() averaged over STABILITY_SEEDS: a single rebuild's NP@15 moves by about 0.006
    between seeds (ag_news 0.345 at seed 0, 0.339 at seed 1), as much as the gap being measured."""
    runs = [stability(vectors, metric, params, seed=seed) for seed in STABILITY_SEEDS]
    mean: dict[str, Any] = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}
    mean["seeds"] = list(STABILITY_SEEDS)
    mean["np15_gap_per_seed"] = [run["np15_rebuilt"] - run["np15_updated"] for run in runs]
    return mean


def graph_update(vectors: np.ndarray, metric: Metric, rebuild_seconds: float, seed: int = 0) -> dict[str, float]:
    """extend_graph in the approximate regime: 5% rows added and 1% deleted, recall and time."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    order = rng.permutation(n)
    n_old = int(round(n / 1.05))
    old_graph = build_graph(vectors[order[:n_old]], K, metric, seed=seed)
    deleted = rng.choice(n_old, size=n_old // 100, replace=False)
    kept = np.setdiff1d(np.arange(n_old), deleted)
    current = np.concatenate([vectors[order[kept]], vectors[order[n_old:]]])
    previous_row = np.concatenate([kept, np.full(n - n_old, -1)])
    graph, seconds = _timed(lambda: extend_graph(current, old_graph, previous_row, seed=seed))
    figures = {"extend_seconds": seconds, "rebuild_seconds": rebuild_seconds,
               "extend_recall15": graph_recall(graph, current, sample=2000, seed=seed)}
    print(f"   extend_graph (+5% / -1% rows): {seconds:.1f} s (rebuild {rebuild_seconds:.1f} s), "
          f"recall@15 {figures['extend_recall15']:.3f}", flush=True)
    return figures


def _np_of_rows(vectors: np.ndarray, xy: np.ndarray, rows: np.ndarray, metric: Metric, k: int = 15) -> float:
    """NP@k over the given rows (neighbours searched among all rows)."""
    from scipy.spatial import cKDTree

    rows = rows[:2000]
    high, _ = knn.exact_neighbours(vectors, vectors[rows], k, metric, exclude=rows)
    _, low = cKDTree(xy).query(xy[rows], k=k + 1)
    return float(np.mean([np.intersect1d(h, l[l != r][:k]).size / k for h, l, r in zip(high, low, rows)]))


def run_set(name: str, repeats: int, with_stability: bool) -> dict[str, Any]:
    vectors, metric = load_set(name)
    n = len(vectors)
    print(f"\n== {name}: {n} x {vectors.shape[1]} ({metric})", flush=True)
    graph, graph_seconds = _timed(lambda: build_graph(vectors, K, metric))
    recall = graph_recall(graph, vectors, sample=2000)
    result: dict[str, Any] = {
        "rows": n, "dims": int(vectors.shape[1]), "metric": metric,
        "graph_seconds": graph_seconds, "graph_recall15": recall,
        "graph_engine": "exact" if n <= knn.EXACT_MAX_ROWS else "nndescent",
    }
    if n <= knn.EXACT_MAX_ROWS:
        # pynndescent as well, for its recall on this data (it takes over above EXACT_MAX_ROWS)
        nnd, nnd_seconds = _timed(lambda: build_graph(vectors, K, metric, method="nndescent"))
        result["nndescent_seconds"], result["nndescent_recall15"] = nnd_seconds, graph_recall(nnd, vectors, 2000)
    if n > knn.EXACT_MAX_ROWS:
        result["graph_update"] = graph_update(vectors, metric, graph_seconds)
    params = resolve_layout_params(None, n)
    result["params"] = {key: value for key, value in params.__dict__.items()}
    ours_times, umap_times, ours_quality, umap_quality = [], [], [], []
    for repeat in range(repeats):
        # seed varies per repeat: single-seed triplet accuracy moves by +-0.015 on small sets
        ours_xy, seconds = _timed(lambda: compute_layout(graph, params, seed=repeat, vectors=vectors))
        ours_times.append(seconds)
        umap_xy, seconds = _timed(lambda: umap_layout(graph, vectors))
        umap_times.append(seconds)
        print(f"   repeat {repeat}: ours {ours_times[-1]:.1f} s, umap-learn {umap_times[-1]:.1f} s", flush=True)
        ours_quality.append(map_quality(vectors, ours_xy, metric))
        umap_quality.append(map_quality(vectors, umap_xy, metric))
    result["repeats"] = repeats
    result["ours_seconds"] = float(np.median(ours_times))
    result["umap_seconds"] = float(np.median(umap_times))
    result["time_ratio"] = result["ours_seconds"] / result["umap_seconds"]
    result["ours"] = {key: float(np.mean([q[key] for q in ours_quality])) for key in ours_quality[0]}
    result["umap"] = {key: float(np.mean([q[key] for q in umap_quality])) for key in umap_quality[0]}
    if with_stability:
        result["stability"] = mean_stability(vectors, metric, params)
    _print_set(name, result)
    return result


def _print_set(name: str, result: dict[str, Any]) -> None:
    print(f"   graph: {result['graph_seconds']:.1f} s, recall@15 {result['graph_recall15']:.3f} ({result['graph_engine']})")
    if "nndescent_recall15" in result:
        print(f"   pynndescent: {result['nndescent_seconds']:.1f} s, recall@15 {result['nndescent_recall15']:.3f}")
    print(f"   {'':10} {'NP@10':>7} {'NP@15':>7} {'T(15)':>7} {'triplet':>8} {'seconds':>8}")
    for who, seconds in (("ours", result["ours_seconds"]), ("umap", result["umap_seconds"])):
        q = result[who]
        print(f"   {who:10} {q['np10']:7.3f} {q['np15']:7.3f} {q['trustworthiness15']:7.3f} {q['triplet_accuracy']:8.3f} {seconds:8.1f}")
    print(f"   time ratio ours / umap-learn: {result['time_ratio']:.2f}")
    if "stability" in result:
        s = result["stability"]
        print(
            f"   +5% rows: old points moved {100 * s['old_mean_displacement_over_extent']:.2f}% of extent; "
            f"NP@15 updated {s['np15_updated']:.3f} vs rebuilt {s['np15_rebuilt']:.3f} (mean of seeds "
            f"{s['seeds']}); "
            f"extend recall {s['extend_graph_recall15']:.3f}"
        )


MILLION_SCRIPT = """
import json, resource, sys, time
import numpy as np
from benchmarks.layout import gaussian_mixture
from atlas_assets.compute.knn import build_graph
from atlas_assets.compute.layout import compute_layout, resolve_layout_params
from atlas_assets.compute.quality import graph_recall, neighbourhood_preservation
from resources.kernel_cache import enable_kernel_caches

enable_kernel_caches()

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

n = int(sys.argv[1])
vectors = gaussian_mixture(n)
wall, used = time.perf_counter(), cpu()
graph = build_graph(vectors, 15, "cosine", progress=True)
graph_seconds, graph_cpu = time.perf_counter() - wall, cpu() - used
print(f"graph {graph_seconds:.0f} s wall, {graph_cpu:.0f} s cpu", file=sys.stderr, flush=True)
wall, used = time.perf_counter(), cpu()
xy = compute_layout(graph, resolve_layout_params(None, n), progress=True, vectors=vectors)
layout_seconds, layout_cpu = time.perf_counter() - wall, cpu() - used
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
print(json.dumps({"rows": n, "graph_seconds": graph_seconds, "layout_seconds": layout_seconds,
    "total_seconds": graph_seconds + layout_seconds, "graph_cpu_seconds": graph_cpu,
    "layout_cpu_seconds": layout_cpu, "peak_rss_gb": peak,
    "graph_recall15": graph_recall(graph, vectors, sample=1000),
    "np15": neighbourhood_preservation(vectors, xy, 15, "cosine", sample=1000)}))
"""


def run_million(rows: int) -> dict[str, Any]:
    """Graph + layout of `rows` synthetic 384-d rows in a child process (its own peak memory);
    numba caches are warm (run the benchmark once before), generation time excluded. CPU time is
    reported too: on a machine shared with other jobs it says what the run would need alone."""
    print(f"\n== synthetic {rows} x 384: graph + layout in a child process", flush=True)
    completed = subprocess.run(
        [sys.executable, "-c", MILLION_SCRIPT, str(rows)], stdout=subprocess.PIPE, text=True, check=True
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    print(
        f"   graph {result['graph_seconds']:.0f} s + layout {result['layout_seconds']:.0f} s = "
        f"{result['total_seconds'] / 60:.1f} min, peak {result['peak_rss_gb']:.2f} GB, "
        f"recall@15 {result['graph_recall15']:.3f}, NP@15 {result['np15']:.3f}; cpu time graph "
        f"{result['graph_cpu_seconds']:.0f} s + layout {result['layout_cpu_seconds']:.0f} s (with 2 idle "
        "cores the wall time would be between half the cpu time and the cpu time)"
    )
    return result


COMPILE_SCRIPT = """
import time
t0 = time.perf_counter()
import numpy as np
from atlas_assets.compute.knn import build_graph
from atlas_assets.compute.layout import compute_layout, resolve_layout_params, update_layout
from resources.kernel_cache import enable_kernel_caches
vectors = np.random.default_rng(0).normal(size=(2000, 32)).astype(np.float32)
graph = build_graph(vectors, 15, "cosine")
t1 = time.perf_counter()
params = resolve_layout_params(None, 2000)
xy = compute_layout(graph, params)
t2 = time.perf_counter()
enable_kernel_caches()
build_graph(vectors, 15, "cosine", method="nndescent")
t3 = time.perf_counter()
print(t2 - t1, t3 - t2)
"""


def compile_cost() -> dict[str, float]:
    """First call of compute_layout / pynndescent in a fresh process: with an empty numba cache (what
    a new user pays once) and with the cache filled (every later process)."""
    figures = {}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold_cache", "warm_cache"):
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], capture_output=True, text=True, env=env, check=True)
            layout_seconds, nndescent_seconds = (float(v) for v in out.stdout.split())
            figures[f"layout_first_call_seconds_{label}"] = layout_seconds
            figures[f"pynndescent_first_call_seconds_{label}"] = nndescent_seconds
    print("\n== first-call cost (2,000 rows):", ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-stability", action="store_true")
    parser.add_argument("--stability-only", action="store_true", help="only the +5%% rows stability figures")
    parser.add_argument("--million", action="store_true", help="only the 1M x 384 graph + layout run")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the --million run")
    parser.add_argument("--compile", action="store_true", help="only the first-call compile cost")
    args = parser.parse_args(argv)
    fresh: dict[str, Any] = {"sets": {}}
    load = os.getloadavg()
    if args.million:
        fresh[f"synthetic_{args.rows}_graph_and_layout"] = {**run_million(args.rows), "load_average": load}
    elif args.compile:
        fresh["first_call"] = compile_cost()
    elif args.stability_only:
        previous = json.loads(RESULTS.read_text()).get("sets", {}) if RESULTS.exists() else {}
        for name in args.sets.split(","):
            vectors, metric = load_set(name)
            figures = mean_stability(vectors, metric, resolve_layout_params(None, len(vectors)))
            print(f"{name}: NP@15 updated {figures['np15_updated']:.4f} vs rebuilt {figures['np15_rebuilt']:.4f}, "
                  f"gap per seed {[round(g, 4) for g in figures['np15_gap_per_seed']]}", flush=True)
            fresh["sets"][name] = {**previous.get(name, {}), "stability": figures}
    else:
        warm_up()
        for name in args.sets.split(","):
            fresh["sets"][name] = {
                **run_set(name, args.repeats, not args.no_stability and not name.startswith("synthetic")),
                "load_average_at_start": load,
                "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
    # merge into the file as it is now (several benchmark runs may write it)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("sets", {}).update(fresh.pop("sets"))
    results.update(fresh)
    results["machine"] = {"cpus": os.cpu_count(), "note": "2 cores shared with other jobs: timings noisy"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
