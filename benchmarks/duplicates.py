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
