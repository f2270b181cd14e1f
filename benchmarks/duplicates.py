"""Duplicate detection quality and speed.

Quality: precision / recall / F1 of duplicate pairs on mrpc and paws_wiki (each labelled pair is a
two-row corpus question: are these two duplicates at the cutoff?) at the default cutoff 0.1 and at
the best cutoff; and on a planted corpus (real ag_news texts plus edited copies: case, punctuation,
two words swapped, one word replaced), where pairs flagged by `find_duplicates` (same cluster) are
compared with the pairs of copies of the same original.
Speed: `find_duplicates` given the graph at 100k and 1M synthetic rows (384-d Gaussian mixture with
planted copies).

Run: .venv/bin/python -m benchmarks.duplicates [--quick]   (writes benchmarks/results/duplicates.json)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks import data

RESULTS = data.REPO_ROOT / "benchmarks" / "results"
EDITS = ("case", "punctuation", "swap", "replace")


@dataclass(frozen=True)
class PlantedCorpus:
    texts: list[str]
    origin: np.ndarray  # per row: index of the original text it copies (itself for originals)
    edit: list[str]  # per row: "original" or the edits applied, joined by "+"


def _edit(text: str, kind: str, rng: random.Random, vocabulary: Sequence[str]) -> str:
    words = text.split()
    if kind == "case":
        return rng.choice([text.lower(), text.upper(), text.title()])
    if kind == "punctuation":
        marks = [match.start() for match in re.finditer(r"[^\w\s]", text)]
        if marks and rng.random() < 0.5:
            drop = rng.choice(marks)
            return text[:drop] + text[drop + 1 :]
        return text.rstrip(".!?") + rng.choice(("!", "?", "...", ";"))
    if len(words) < 3:
        return text + " " + rng.choice(vocabulary)
    position = rng.randrange(len(words) - 1)
    if kind == "swap":
        words[position], words[position + 1] = words[position + 1], words[position]
    else:
        words[position] = rng.choice(vocabulary)
    return " ".join(words)


def plant_near_duplicates(
    base_texts: Sequence[str], n_originals: int, copies_per_original: int = 1, seed: int = 0
) -> PlantedCorpus:
    """Distinct base texts plus edited copies of `n_originals` of them (one or two edits each)."""
    rng = random.Random(seed)
    distinct = list(dict.fromkeys(text.strip() for text in base_texts if text.strip()))
    vocabulary = sorted({word for text in distinct[:2000] for word in re.findall(r"[a-z]{4,}", text)})
    texts = list(distinct)
    origin = list(range(len(distinct)))
    edit = ["original"] * len(distinct)
    for original in rng.sample(range(len(distinct)), n_originals):
        for _ in range(copies_per_original):
            kinds = rng.sample(EDITS, rng.choice((1, 2)))
            copy = distinct[original]
            for kind in kinds:
                copy = _edit(copy, kind, rng, vocabulary)
            texts.append(copy)
            origin.append(original)
            edit.append("+".join(kinds))
    return PlantedCorpus(texts, np.asarray(origin), edit)


def _pairs_within(groups: np.ndarray) -> int:
    _, sizes = np.unique(groups, return_counts=True)
    return int((sizes * (sizes - 1) // 2).sum())


def pair_scores(cluster_id: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision / recall / F1 of same-cluster pairs against same-truth-group pairs.

    cluster_id -1 (singleton) never pairs with anything.
    """
    predicted = np.where(cluster_id >= 0, cluster_id, -1 - np.arange(len(cluster_id)))
    both = _pairs_within(np.unique(np.column_stack([predicted, truth]), axis=0, return_inverse=True)[1].ravel())
    flagged, true = _pairs_within(predicted), _pairs_within(truth)
    precision = both / flagged if flagged else 1.0
    recall = both / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "flagged_pairs": flagged, "true_pairs": true}


BASE_MARGIN = 0.2  # base texts closer than this (cosine distance) to an earlier one are left out


def planted_corpus(
    n_base: int, n_originals: int, copies_per_original: int = 1, seed: int = 0, cache: bool = False
) -> tuple[PlantedCorpus, np.ndarray]:
    """Planted corpus over ag_news and its embeddings (project's default model).

    The base is first cleared of its own near-duplicates (texts within BASE_MARGIN of an earlier
    one: the same story from two agencies), so the planted copies are the only true duplicates.
    """
    from resources.embedder import load_text_embedder

    from atlas_assets.compute.search import search_vectors

    base = list(dict.fromkeys(text.strip() for text in data.ag_news().texts if text.strip()))[:n_base]
    embed = (
        (lambda name, texts: data.cached_embeddings(name, texts))
        if cache
        else (lambda name, texts: load_text_embedder("NomicEmbed").embed_documents(texts))
    )
    base_vectors = np.asarray(embed("planted-base", base), dtype=np.float32)
    neighbours, distances = search_vectors(base_vectors, base_vectors, k=min(10, len(base)))
    keep = np.ones(len(base), dtype=bool)
    for row in range(len(base)):
        close = neighbours[row][(distances[row] <= BASE_MARGIN) & (neighbours[row] != row)]
        if keep[row]:
            keep[close[close > row]] = False
    base = [text for text, kept in zip(base, keep, strict=True) if kept]
    base_vectors = base_vectors[keep]
    corpus = plant_near_duplicates(base, n_originals, copies_per_original, seed)
    copies = corpus.texts[len(base) :]
    copy_vectors = np.asarray(embed(f"planted-copies-{seed}", copies), dtype=np.float32)
    return corpus, np.vstack([base_vectors, copy_vectors])


CUTOFFS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
DEFAULT_CUTOFF = 0.1


def _scores_at(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    true_positive = int((flagged & truth).sum())
    precision = true_positive / flagged.sum() if flagged.sum() else 1.0
    recall = true_positive / truth.sum() if truth.sum() else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def labelled_pairs(name: str) -> dict:
    """A pair is flagged when find_duplicates puts both sentences in one cluster of the corpus of
    all sentences of the set (so transitive joins count), and, for the cutoff sweep, when the pair's
    own cosine distance is within the cutoff."""
    from sklearn.metrics import average_precision_score

    from atlas_assets.compute.duplicates import find_duplicates
    from atlas_assets.compute.knn import build_graph

    pairs = getattr(data, name)()
    first = np.asarray(data.cached_embeddings(f"{name}-first", pairs.first), dtype=np.float32)
    second = np.asarray(data.cached_embeddings(f"{name}-second", pairs.second), dtype=np.float32)
    unit = lambda v: v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    distance = 1.0 - np.einsum("ij,ij->i", unit(first), unit(second))
    truth = pairs.scores.astype(int) == 1
    sweep = {f"{cutoff:.2f}": _scores_at(distance <= cutoff, truth) for cutoff in CUTOFFS}
    thresholds = np.unique(np.round(distance, 3))
    best_cutoff = max(thresholds, key=lambda c: _scores_at(distance <= c, truth)["f1"])
    corpus = np.vstack([first, second])
    started = time.perf_counter()
    graph = build_graph(corpus, k=15, metric="cosine")
    result = find_duplicates(graph, corpus, DEFAULT_CUTOFF)
    seconds = time.perf_counter() - started
    n_pairs = len(first)
    same = (result.cluster_id[:n_pairs] >= 0) & (result.cluster_id[:n_pairs] == result.cluster_id[n_pairs:])
    return {
        "pairs": n_pairs, "positives": int(truth.sum()),
        "default_cutoff_find_duplicates": _scores_at(same, truth),
        "default_cutoff_pair_distance": sweep[f"{DEFAULT_CUTOFF:.2f}"],
        "best_cutoff": round(float(best_cutoff), 3),
        "best": _scores_at(distance <= best_cutoff, truth),
        "average_precision": round(float(average_precision_score(truth, -distance)), 4),
        "sweep": sweep,
        "graph_and_duplicates_seconds": round(seconds, 1),
    }


def planted(n_base: int = 7600, n_originals: int = 1500, copies: int = 2) -> dict:
    from atlas_assets.compute.duplicates import find_duplicates
    from atlas_assets.compute.knn import build_graph

    corpus, vectors = planted_corpus(n_base, n_originals, copies, seed=0, cache=True)
    graph = build_graph(vectors, k=15, metric="cosine")
    sweep = {}
    for cutoff in CUTOFFS:
        result = find_duplicates(graph, vectors, cutoff)
        scores = pair_scores(result.cluster_id, corpus.origin)
        sweep[f"{cutoff:.2f}"] = {
            **{key: round(value, 4) for key, value in scores.items()},
            "deletion_share": round(float(np.mean(result.duplicate_class == "deletion candidate")), 4),
        }
    best = max(sweep, key=lambda c: sweep[c]["f1"])
    copy_rows = np.arange(len(corpus.texts)) != corpus.origin
    edits = sorted(set(np.asarray(corpus.edit)[copy_rows]))
    result = find_duplicates(graph, vectors, DEFAULT_CUTOFF)
    by_edit = {}
    for edit in edits:
        rows = np.nonzero(np.asarray(corpus.edit) == edit)[0]
        found = (result.cluster_id[rows] >= 0) & (result.cluster_id[rows] == result.cluster_id[corpus.origin[rows]])
        by_edit[edit] = {"copies": int(len(rows)), "recall": round(float(found.mean()), 4)}
    return {
        "rows": len(corpus.texts), "originals_copied": n_originals, "copies_each": copies,
        "default": sweep[f"{DEFAULT_CUTOFF:.2f}"], "best_cutoff": float(best), "best": sweep[best],
        "sweep": sweep, "recall_by_edit_at_default": by_edit,
    }


def synthetic_graph(n_rows: int, dimensions: int, seed: int = 0):
    """Gaussian-mixture vectors with 2% planted near-copies and 0.5% exact copies (10 each), and a
    15-neighbour graph holding the copies plus random far rows (building a true 1M kNN graph is
    the knn benchmark's job; this measures find_duplicates given a graph)."""
    from atlas_assets.compute.graph import NeighbourGraph

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (1000, dimensions)).astype(np.float32)
    vectors = centres[rng.integers(0, 1000, n_rows)] + rng.normal(0, 0.6, (n_rows, dimensions)).astype(np.float32)
    near = rng.choice(n_rows, n_rows // 50, replace=False)
    vectors[near] = vectors[(near + 1) % n_rows] + rng.normal(0, 0.05, (len(near), dimensions)).astype(np.float32)
    exact_sources = rng.choice(n_rows, n_rows // 2000, replace=False)
    for source in exact_sources:
        vectors[rng.choice(n_rows, 10, replace=False)] = vectors[source]
    indices = rng.integers(0, n_rows, (n_rows, 15))
    indices[near, 0] = (near + 1) % n_rows
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    distances = np.empty((n_rows, 15), dtype=np.float32)
    for start in range(0, n_rows, 20_000):
        stop = min(n_rows, start + 20_000)
        distances[start:stop] = 1.0 - np.einsum("ikd,id->ik", unit[indices[start:stop]], unit[start:stop])
    order = np.argsort(distances, axis=1)
    return NeighbourGraph(np.take_along_axis(indices, order, 1), np.take_along_axis(distances, order, 1), "cosine"), vectors


def speed(sizes: Sequence[int], dimensions: int = 384) -> list[dict]:
    from atlas_assets.compute.duplicates import find_duplicates

    rows = []
    for n_rows in sizes:
        graph, vectors = synthetic_graph(n_rows, dimensions)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            result = find_duplicates(graph, vectors, DEFAULT_CUTOFF)
            timings.append(time.perf_counter() - started)
        rows.append({
            "rows": n_rows, "dimensions": dimensions, "median_seconds": round(float(np.median(timings)), 2),
            "clusters": int(result.cluster_id.max() + 1),
        })
        print(rows[-1], flush=True)
        del graph, vectors
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--speed-sizes", default="100000,1000000")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "duplicates.json"
    report: dict = {"note": "shared 2-core machine with other jobs running: times are noisy",
                    "default_cutoff": DEFAULT_CUTOFF}
    for name in ("mrpc", "paws_wiki"):
        report[name] = labelled_pairs(name)
        r = report[name]
        print(f"{name:10} default {r['default_cutoff_find_duplicates']}  best cutoff {r['best_cutoff']} "
              f"{r['best']}  AP {r['average_precision']}", flush=True)
    report["planted"] = planted()
    p = report["planted"]
    print(f"planted    default {p['default']}  best cutoff {p['best_cutoff']} {p['best']}", flush=True)
    print(f"           recall by edit: {p['recall_by_edit_at_default']}", flush=True)
    path.write_text(json.dumps(report, indent=1))
    if not args.skip_speed:
        report["speed"] = speed([int(s) for s in args.speed_sizes.split(",")])
        path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
