"""Embedding engine benchmark: fidelity, STS-B, throughput (sorted vs unsorted, fp32 vs int8), memory.

Run: .venv/bin/python -m benchmarks.embeddings [--quick]
Writes benchmarks/results/embeddings.json and prints a table.

The fidelity reference is a deliberately plain numpy implementation of the BERT encoder, written from
the model card's architecture and run one text at a time in float64 from the same safetensors
weights: no padding, no batching, no ONNX. It is what the ONNX graph must reproduce.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "embeddings.json"
REFERENCE_MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length of all-MiniLM-L6-v2


# --------------------------------------------------------------------------------------------------
# Reference implementation (plain numpy, float64, one text at a time)


class ReferenceMiniLM:
    """sentence-transformers' all-MiniLM-L6-v2 forward pass written out in numpy."""

    def __init__(self, model_folder: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.weights = {key: value.astype(np.float64) for key, value in load_file(str(model_folder / "weights" / "model.safetensors")).items()}
        self.config = json.loads((model_folder / "weights" / "config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(model_folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=REFERENCE_MAX_TOKENS)

    def _layer_norm(self, x: np.ndarray, prefix: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        normalised = (x - mean) / np.sqrt(variance + self.config["layer_norm_eps"])
        return normalised * self.weights[f"{prefix}.weight"] + self.weights[f"{prefix}.bias"]

    def _dense(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ self.weights[f"{prefix}.weight"].T + self.weights[f"{prefix}.bias"]

    def embed_one(self, text: str) -> np.ndarray:
        from scipy.special import erf

        ids = np.array(self.tokenizer.encode(text).ids)
        w = self.weights
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
        x = self._layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        heads = self.config["num_attention_heads"]
        size = self.config["hidden_size"] // heads
        for layer in range(self.config["num_hidden_layers"]):
            prefix = f"encoder.layer.{layer}"
            q, k, v = (
                self._dense(x, f"{prefix}.attention.self.{part}").reshape(len(ids), heads, size).transpose(1, 0, 2)
                for part in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            attention = scores / scores.sum(axis=-1, keepdims=True)
            context = (attention @ v).transpose(1, 0, 2).reshape(len(ids), heads * size)
            x = self._layer_norm(self._dense(context, f"{prefix}.attention.output.dense") + x, f"{prefix}.attention.output.LayerNorm")
            inner = self._dense(x, f"{prefix}.intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / math.sqrt(2.0)))
            x = self._layer_norm(self._dense(inner, f"{prefix}.output.dense") + x, f"{prefix}.output.LayerNorm")
        pooled = x.mean(axis=0)
        return pooled / max(np.linalg.norm(pooled), 1e-12)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.embed_one(text) for text in texts]).astype(np.float32)


def fidelity_texts() -> list[str]:
    """Varied texts: empty, whitespace, very long, non-ASCII scripts, emoji, code, numbers, repeats."""
    from benchmarks.data import newsgroups, sts_benchmark

    long_posts = sorted(newsgroups().texts[:400], key=len)[-2:]
    sts = sts_benchmark()
    return [
        "",
        "   ",
        "a",
        "Hello, world!",
        "Ünïcödé àccents: crème brûlée, naïve façade, Straße, smörgåsbord",
        "東京は日本の首都です。北京是中国的首都。",
        "مرحبا بالعالم، هذه جملة باللغة العربية",
        "Привет, мир! Это предложение на русском языке.",
        "emoji only 🎉🔥🚀👍🏽 and a family 👨‍👩‍👧‍👦 🇫🇷",
        "def embed(texts: list[str]) -> np.ndarray:  # code with symbols {}[]<>",
        "3.14159 2.71828 1e-9 0x1F 42% $100 #hashtag @mention https://example.org/a?b=c",
        "word " * 1000,
        *long_posts,
        *sts.first[:12],
        *sts.second[:12],
    ]


def cosine_rows(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    left = left / np.maximum(np.linalg.norm(left, axis=1, keepdims=True), 1e-12)
    right = right / np.maximum(np.linalg.norm(right, axis=1, keepdims=True), 1e-12)
    return (left * right).sum(axis=1)


def measure_fidelity(embedder, reference: ReferenceMiniLM, texts: list[str]) -> dict[str, float]:
    ours = embedder.embed_documents(texts)
    theirs = reference.embed(texts)
    cosines = cosine_rows(ours, theirs)
    return {"texts": len(texts), "mean_cosine": float(cosines.mean()), "min_cosine": float(cosines.min())}


def sts_spearman(embedder) -> float:
    from scipy.stats import spearmanr

    from benchmarks.data import sts_benchmark

    pairs = sts_benchmark()
    first = embedder.embed_documents(pairs.first)
    second = embedder.embed_documents(pairs.second)
    return float(spearmanr(cosine_rows(first, second), pairs.scores).statistic)
