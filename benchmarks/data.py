"""The real evaluation sets of ../shared/data, read in place, and their cached embeddings.

Embeddings of a set are computed once with the project's default model and cached as .npy under
`$ATLAS_BENCH_CACHE` (default ~/.cache/atlas-assets-bench), keyed by set name and model.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ATLAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("ATLAS_BENCH_CACHE", Path.home() / ".cache" / "atlas-assets-bench"))


@dataclass(frozen=True)
class LabelledTexts:
    name: str
    texts: list[str]
    labels: np.ndarray  # int class per text


@dataclass(frozen=True)
class TextPairs:
    name: str
    first: list[str]
    second: list[str]
    scores: np.ndarray  # gold similarity (STS) or 0/1 paraphrase label


def _codes(values: pd.Series) -> np.ndarray:
    return pd.factorize(values, sort=True)[0].astype(np.int64)


def ag_news() -> LabelledTexts:
    frame = pd.read_csv(SHARED_DATA / "ag_news" / "test.csv")
    texts = (frame["title"].fillna("") + ". " + frame["description"].fillna("")).tolist()
    return LabelledTexts("ag_news", texts, _codes(frame["label"]))


def newsgroups() -> LabelledTexts:
    folder = SHARED_DATA / "20newsgroups"
    frame = pd.concat(
        [pd.read_csv(folder / name) for name in ("train_part1.csv", "train_part2.csv", "test.csv")],
        ignore_index=True,
    )
    texts = (frame["subject"].fillna("") + "\n\n" + frame["body"].fillna("")).tolist()
    return LabelledTexts("20newsgroups", texts, _codes(frame["label"]))


def stackoverflow_titles() -> LabelledTexts:
    frame = pd.read_csv(SHARED_DATA / "stackoverflow_titles" / "stackoverflow_titles.csv")
    return LabelledTexts("stackoverflow_titles", frame["title"].fillna("").tolist(), _codes(frame["label"]))


def banking77() -> LabelledTexts:
    frame = pd.read_csv(SHARED_DATA / "banking77" / "test.csv")
    return LabelledTexts("banking77", frame["text"].fillna("").tolist(), _codes(frame["category"]))


def banking77_all() -> LabelledTexts:
    """Both splits (13,083 queries; the train split is unbalanced, 35-187 per intent)."""
    frame = pd.concat([pd.read_csv(SHARED_DATA / "banking77" / f"{split}.csv") for split in ("train", "test")])
    return LabelledTexts("banking77_all", frame["text"].fillna("").tolist(), _codes(frame["category"]))


LABELLED_SETS = {
    "ag_news": ag_news,
    "20newsgroups": newsgroups,
    "stackoverflow_titles": stackoverflow_titles,
    "banking77": banking77,
    "banking77_all": banking77_all,
}


def sts_benchmark() -> TextPairs:
    frame = pd.read_csv(SHARED_DATA / "sts_benchmark" / "sts-test.csv", dtype={"sid": str})
    return TextPairs(
        "sts_benchmark",
        frame["sentence1"].fillna("").tolist(),
        frame["sentence2"].fillna("").tolist(),
        frame["score"].astype(float).to_numpy(),
    )


def mrpc() -> TextPairs:
    frame = pd.read_csv(SHARED_DATA / "mrpc" / "msr_paraphrase_test.csv")
    return TextPairs(
        "mrpc",
        frame["sentence1"].fillna("").tolist(),
        frame["sentence2"].fillna("").tolist(),
        frame["label"].to_numpy(),
    )


def paws_wiki() -> TextPairs:
    frame = pd.read_csv(SHARED_DATA / "paws_wiki" / "test.csv")
    return TextPairs(
        "paws_wiki",
        frame["sentence1"].fillna("").tolist(),
        frame["sentence2"].fillna("").tolist(),
        frame["label"].to_numpy(),
    )


def cached_embeddings(name: str, texts: list[str], model: str = "NomicEmbed") -> np.ndarray:
    """Embeddings of `texts` with the project's embedder, computed once and cached on disk."""
    digest = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{name}-{model}-{digest}.npy"
    if path.exists():
        return np.load(path)
    from resources.embedder import load_text_embedder

    vectors = load_text_embedder(model).embed_documents(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npy")
    np.save(temporary, vectors)
    temporary.replace(path)
    return vectors
