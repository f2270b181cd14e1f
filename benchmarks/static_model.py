"""The static model (all-MiniLM-L6-v2-static) against the default it is distilled from.

Figures: build time (a fresh build into a temporary folder from the installed default), texts/s and
tokens/s of both on the same AG News texts (same process, back to back), STS-B Spearman, and map
quality: k-means AMI with the true class count on AG News and banking77 (test split), and the topic
AMI of the project's own topics (kNN graph, layout, build_topics, best depth) with each model's
vectors; and NP@15 of the static model's map against the default model's own neighbours.

    .venv/bin/python -m benchmarks.static_model [--skip-build] [--skip-topics]

Writes benchmarks/results/static_model.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import data

RESULTS = Path(__file__).resolve().parent / "results" / "static_model.json"
STATIC = "all-MiniLM-L6-v2-static"
DEFAULT = "all-MiniLM-L6-v2"


def sts_spearman(embedder) -> float:
    from scipy.stats import spearmanr

    pairs = data.sts_benchmark()
    first, second = embedder.embed_documents(pairs.first), embedder.embed_documents(pairs.second)
    return round(float(spearmanr((first * second).sum(axis=1), pairs.scores).statistic), 4)


def kmeans_ami(vectors: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score

    predicted = KMeans(len(np.unique(labels)), n_init=3, random_state=seed).fit_predict(vectors)
    return round(float(adjusted_mutual_info_score(labels, predicted)), 4)


def topic_ami(name: str, vectors: np.ndarray, labels: np.ndarray, texts: list[str]) -> tuple[float, np.ndarray]:
    """Best-depth AMI of the project's topics on these vectors (graph and layout as the pipeline makes
    them, benchmarks.topics.map_inputs, cached by name); also the 2-D map."""
    from sklearn.metrics import adjusted_mutual_info_score

    from atlas_assets.compute.topics import TopicParams, build_topics
    from benchmarks.topics import map_inputs

    graph, xy = map_inputs(name, vectors)
    model = build_topics(graph, xy, texts, TopicParams(), seed=0, vectors=vectors)
    best = max(adjusted_mutual_info_score(labels, model.assignments[:, depth]) for depth in range(model.assignments.shape[1]))
    return round(float(best), 4), xy


def throughput(embedder, texts: list[str], repeats: int = 3) -> dict:
    tokens = int(embedder.count_tokens(texts).sum())
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed_documents(texts)
        seconds.append(time.perf_counter() - start)
    median = float(np.median(seconds))
    return {"texts": len(texts), "tokens": tokens, "seconds": round(median, 3),
            "texts_per_s": round(len(texts) / median, 1), "tokens_per_s": round(tokens / median, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--skip-topics", action="store_true")
    args = parser.parse_args(argv)
    from resources.embedder import load_text_embedder
    from resources.model_store import install_model
    from resources.static_embedder import build_static_model

    result: dict = {"load_before": list(os.getloadavg())}
    if not args.skip_build:
        with tempfile.TemporaryDirectory() as folder:
            result["build"] = build_static_model(install_model(DEFAULT), Path(folder) / "static")
        print("build", result["build"], flush=True)
    static, default = load_text_embedder(STATIC), load_text_embedder(DEFAULT)
    news = data.ag_news()
    speed_static = throughput(static, news.texts[:1000] * 20)
    speed_default = throughput(default, news.texts[:1000], repeats=1)
    result["throughput"] = {"static": speed_static, "default": speed_default,
                            "static_over_default_texts_per_s": round(speed_static["texts_per_s"] / speed_default["texts_per_s"], 1)}
    print("throughput", result["throughput"], flush=True)
    result["sts_spearman"] = {"static": sts_spearman(static), "default": sts_spearman(default)}
    print("sts", result["sts_spearman"], flush=True)
    result["sets"] = {}
    for name in ("ag_news", "banking77"):
        labelled = data.LABELLED_SETS[name]()
        ours = static.embed_documents(labelled.texts)
        reference = data.cached_embeddings(name, labelled.texts)
        figures = {"rows": len(labelled.texts), "kmeans_ami_static": kmeans_ami(ours, labelled.labels),
                   "kmeans_ami_default": kmeans_ami(reference, labelled.labels)}
        if not args.skip_topics:
            from atlas_assets.compute.quality import neighbourhood_preservation

            figures["topic_ami_static"], points = topic_ami(f"{name}-static", ours, labelled.labels, labelled.texts)
            figures["topic_ami_default"], default_points = topic_ami(name, reference, labelled.labels, labelled.texts)
            figures["np15_default_map"] = round(float(neighbourhood_preservation(reference, default_points, k=15)), 4)
            figures["np15_static_map_vs_default_neighbours"] = round(float(neighbourhood_preservation(reference, points, k=15)), 4)
        result["sets"][name] = figures
        print(name, figures, flush=True)
    result["load_after"] = list(os.getloadavg())
    RESULTS.parent.mkdir(exist_ok=True)
    partial = RESULTS.with_suffix(".json.part")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(partial, RESULTS)


if __name__ == "__main__":
    main()
