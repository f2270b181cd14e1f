"""The static model (all-MiniLM-L6-v2-static) against the default it is distilled from.

Figures: build time (a fresh build into a temporary folder from the installed default), texts/s and
tokens/s of both on the same AG News texts (same process, back to back), STS-B Spearman, and map
quality: k-means AMI with the true class count on AG News and banking77 (test split), and the topic
AMI of the project's own topics (kNN graph, layout, build_topics, best depth) with each model's
vectors; and NP@15 of the static model's map against the default model's own neighbours.

Three variants: the static model as shipped, the static model with the index-time fit the pipeline
makes (`static_table`: a seeded 2,000-row sample of the set embedded with the default model, the
token table fitted toward it with one scale per text, and the sample's common component removed
from every row: compute/static_fit.py), and the default. k-means AMI is also given on
the rows outside the fitting sample ("held out"), since a small set is mostly sample. STS-B for the
fitted model: fitted on a 2,000-sentence sample of STS-B's own sentences (as an index of them would
be); also without the common-component removal (`two_fold_without_common_component`). Also measured:
SIF weights from the set's own token frequencies instead of the shipped ones (`dataset_weights`; not
kept: it lowered AMI).

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


def fitted_embedder(static, texts: list[str], reference: np.ndarray, weights: np.ndarray | None = None, common: bool = True):
    """The static model fitted as the pipeline fits an index (same sample size and seed); with
    `weights`, SIF weights replaced first (the table's rows rescaled); `common=False`: without the
    common-component removal. Returns (embedder, sample)."""
    import copy

    from atlas_assets.pipeline.assets.static_table import (
        SAMPLE_ROWS,
        SAMPLE_SEED,
        sample_positions,
    )

    base = static
    if weights is not None:
        mean, axes, shipped = static.basis
        scale = np.divide(weights, shipped, out=np.zeros_like(weights), where=shipped > 0)
        base = copy.copy(static)
        base.table = (static.table * scale[:, None]).astype(np.float32)
        base.basis = (mean, axes, np.where(shipped > 0, weights, 0.0).astype(np.float32))
    sample = sample_positions(len(texts), SAMPLE_ROWS, SAMPLE_SEED)
    fitted = base.fit_rows([texts[i] for i in sample], reference[sample])
    return base.with_fitted_rows(fitted.token_ids, fitted.rows, fitted.components if common else None), sample


def dataset_weights(static, texts: list[str]) -> np.ndarray:
    from resources.static_embedder import sif_weights

    counts = np.asarray(static.count_matrix(texts).sum(axis=0)).ravel()
    return sif_weights(counts)


def sts_spearman_fitted(static) -> dict:
    """STS-B Spearman of the static model fitted on STS-B's own sentences (as an index of them would
    be): "in_sample", fitted on a seeded 2,000-sentence sample of all of them; "two_fold", the pairs
    split in two halves, each half scored with the table fitted on the other half's sentences only
    (pairs sharing a sentence with the fitting half are left out), the halves' Spearman averaged; and
    two-fold again without the common-component removal."""
    from scipy.stats import spearmanr

    pairs = data.sts_benchmark()
    sentences = list(dict.fromkeys(pairs.first + pairs.second))
    reference = data.cached_embeddings("sts_benchmark-sentences", sentences)
    row_of = {sentence: row for row, sentence in enumerate(sentences)}

    def spearman(fitted, chosen: np.ndarray) -> float:
        first = fitted.embed_documents([pairs.first[i] for i in chosen])
        second = fitted.embed_documents([pairs.second[i] for i in chosen])
        return float(spearmanr((first * second).sum(axis=1), pairs.scores[chosen]).statistic)

    fitted, _ = fitted_embedder(static, sentences, reference)
    order = np.random.default_rng(0).permutation(len(pairs.scores))
    halves = [np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])]
    folds, plain = [], []
    for fit_half, score_half in (halves, halves[::-1]):
        used = list(dict.fromkeys([pairs.first[i] for i in fit_half] + [pairs.second[i] for i in fit_half]))
        rows = np.array([row_of[sentence] for sentence in used])
        seen = set(used)
        clean = np.array([i for i in score_half if pairs.first[i] not in seen and pairs.second[i] not in seen])
        half_fit, _ = fitted_embedder(static, used, reference[rows])
        folds.append((spearman(half_fit, clean), len(clean)))
        plain.append(spearman(fitted_embedder(static, used, reference[rows], common=False)[0], clean))
    return {
        "in_sample": round(spearman(fitted, np.arange(len(pairs.scores))), 4),
        "two_fold": round(float(np.mean([value for value, _ in folds])), 4),
        "two_fold_scored_pairs": [count for _, count in folds],
        "two_fold_without_common_component": round(float(np.mean(plain)), 4),
    }


def sts_spearman_fitted_elsewhere(static, name: str = "ag_news") -> float:
    """STS-B Spearman of the static model fitted on another set's sample (a news index's table)."""
    labelled = data.LABELLED_SETS[name]()
    fitted, _ = fitted_embedder(static, labelled.texts, data.cached_embeddings(name, labelled.texts))
    return sts_spearman(fitted)


def _map_name(name: str, vectors: np.ndarray) -> str:
    """benchmarks.topics caches maps by name: the vectors' digest keeps variants apart."""
    import hashlib

    return f"{name}-{hashlib.sha256(vectors.tobytes()).hexdigest()[:10]}"


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
    parser.add_argument("--sts-only", action="store_true", help="measure STS-B again and update only that part of the results")
    args = parser.parse_args(argv)
    if args.sts_only:
        from resources.embedder import load_text_embedder

        static, default = load_text_embedder(STATIC), load_text_embedder(DEFAULT)
        result = json.loads(RESULTS.read_text())
        result["sts_spearman"] = {"static": sts_spearman(static), "static_fitted_on_sts": sts_spearman_fitted(static),
                                  "static_fitted_on_ag_news_sample": sts_spearman_fitted_elsewhere(static),
                                  "default": sts_spearman(default), "load": list(os.getloadavg())}
        print("sts", result["sts_spearman"], flush=True)
        _write(result)
        return
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
    fitted_news, _ = fitted_embedder(static, news.texts, data.cached_embeddings("ag_news", news.texts))
    speed_fitted = throughput(fitted_news, news.texts[:1000] * 20)
    result["throughput"] = {"static": speed_static, "static_fitted": speed_fitted, "default": speed_default,
                            "static_fitted_over_default_texts_per_s": round(speed_fitted["texts_per_s"] / speed_default["texts_per_s"], 1),
                            "static_over_default_texts_per_s": round(speed_static["texts_per_s"] / speed_default["texts_per_s"], 1)}
    print("throughput", result["throughput"], flush=True)
    result["sts_spearman"] = {"static": sts_spearman(static), "static_fitted_on_sts": sts_spearman_fitted(static),
                              "static_fitted_on_ag_news_sample": sts_spearman_fitted_elsewhere(static),
                              "default": sts_spearman(default)}
    print("sts", result["sts_spearman"], flush=True)
    result["sets"] = {}
    for name in ("ag_news", "banking77"):
        labelled = data.LABELLED_SETS[name]()
        labels = labelled.labels
        ours = static.embed_documents(labelled.texts)
        reference = data.cached_embeddings(name, labelled.texts)
        started = time.perf_counter()
        fitted, sample = fitted_embedder(static, labelled.texts, reference)
        fit_seconds = time.perf_counter() - started
        tuned = fitted.embed_documents(labelled.texts)
        held = np.setdiff1d(np.arange(len(labels)), sample)
        reweighted, _ = fitted_embedder(static, labelled.texts, reference, dataset_weights(static, labelled.texts))
        figures = {
            "rows": len(labelled.texts), "fit_sample_rows": len(sample), "fit_seconds_without_sample_embedding": round(fit_seconds, 2),
            "fitted_rows": fitted.fitted_rows,
            "kmeans_ami_static": kmeans_ami(ours, labels), "kmeans_ami_static_fitted": kmeans_ami(tuned, labels),
            "kmeans_ami_default": kmeans_ami(reference, labels),
            "kmeans_ami_held_out_static": kmeans_ami(ours[held], labels[held]),
            "kmeans_ami_held_out_static_fitted": kmeans_ami(tuned[held], labels[held]),
            "kmeans_ami_held_out_default": kmeans_ami(reference[held], labels[held]),
            "kmeans_ami_static_fitted_dataset_weights": kmeans_ami(reweighted.embed_documents(labelled.texts), labels),
        }
        print(name, figures, flush=True)
        if not args.skip_topics:
            from atlas_assets.compute.quality import neighbourhood_preservation

            figures["topic_ami_static"], points = topic_ami(_map_name(f"{name}-static", ours), ours, labels, labelled.texts)
            figures["topic_ami_static_fitted"], fitted_points = topic_ami(_map_name(f"{name}-fitted", tuned), tuned, labels, labelled.texts)
            figures["topic_ami_default"], default_points = topic_ami(name, reference, labels, labelled.texts)
            figures["np15_default_map"] = round(float(neighbourhood_preservation(reference, default_points, k=15)), 4)
            figures["np15_static_map_vs_default_neighbours"] = round(float(neighbourhood_preservation(reference, points, k=15)), 4)
            figures["np15_static_fitted_map_vs_default_neighbours"] = round(
                float(neighbourhood_preservation(reference, fitted_points, k=15)), 4)
        result["sets"][name] = figures
        print(name, figures, flush=True)
    result["load_after"] = list(os.getloadavg())
    _write(result)


def _write(result: dict) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    partial = RESULTS.with_suffix(".json.part")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(partial, RESULTS)


if __name__ == "__main__":
    main()
