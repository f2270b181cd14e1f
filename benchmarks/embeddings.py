"""Embedding engine benchmark: fidelity, STS-B, throughput (sorted vs unsorted, fp32 vs int8), memory.

Run: .venv/bin/python -m benchmarks.embeddings [--quick] [--baseline DIR]
Writes benchmarks/results/embeddings.json and prints a table. --baseline DIR times the graphs in DIR
(model.onnx, model.int8.onnx: e.g. an earlier builder's, see docs/models.md) right after the installed
ones under the same settings, so a builder change is judged by same-run ratios, and reports the cosine
of the installed graphs' vectors to the baseline's.

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
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

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


# --------------------------------------------------------------------------------------------------
# Throughput (each configuration in its own process, so peak memory is its own)


def throughput_texts(count: int) -> list[str]:
    """AG News items (title + description, ~50 tokens): news-length texts of varied length."""
    from benchmarks.data import ag_news

    return ag_news().texts[:count]


def _folder_with_graph(installed: Path, graph: Path, scratch: Path) -> Path:
    """A model folder in `scratch` whose model.onnx is `graph` (the installed tokenizer beside it)."""
    (scratch / "model.onnx").symlink_to(graph.resolve())
    (scratch / "tokenizer.json").symlink_to(installed / "tokenizer.json")
    return scratch


def baseline_embedder(graph: Path, scratch: Path, **options):
    """The default model's embedder running `graph` as it is (an fp32 or an already quantised file)."""
    from resources.embedder import TextEmbedder
    from resources.model_store import install_model, resolve_model

    spec = resolve_model(None)
    return TextEmbedder(_folder_with_graph(install_model(spec.name), graph, scratch), spec, precision="fp32", **options)


def _child(config: dict) -> dict:
    """Runs one configuration: warm-up, then `repeats` timed passes; reports the median and memory."""
    from resources.embedder import TextEmbedder
    from resources.model_store import install_model, resolve_model

    spec = resolve_model(None)
    options = {"threads": config["threads"], "batch_size": config["batch_size"], "sort_by_length": config["sorted"]}
    if config.get("graph_file"):
        with tempfile.TemporaryDirectory() as scratch:  # read only while the embedder loads
            embedder = baseline_embedder(Path(config["graph_file"]), Path(scratch), **options)
    else:
        embedder = TextEmbedder(install_model(spec.name), spec, precision=config["precision"], **options)
    texts = throughput_texts(config["texts"])
    tokens = int(embedder.count_tokens(texts).sum())
    embedder.embed_documents(texts[:64])  # warm-up: first-call allocations
    timings = []
    for _ in range(config["repeats"]):
        start = time.perf_counter()
        embedder.embed_documents(texts)
        timings.append(time.perf_counter() - start)
    seconds = float(np.median(timings))
    return {
        **config,
        "seconds_median": seconds,
        "seconds_all": timings,
        "texts_per_s": len(texts) / seconds,
        "tokens_per_s": tokens / seconds,
        "mean_tokens": tokens / len(texts),
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _graph(row: dict) -> str:
    return "baseline" if row.get("graph_file") else "installed"


def run_throughput(count: int, repeats: int, baseline: Path | None = None) -> list[dict]:
    configs = [
        {"precision": precision, "sorted": is_sorted, "batch_size": batch_size, "threads": 2, "texts": count, "repeats": repeats}
        for precision, is_sorted, batch_size in (
            ("fp32", True, 32), ("fp32", False, 32), ("int8", True, 32), ("int8", False, 32),
            ("fp32", True, 16), ("fp32", True, 64),
        )
    ]
    if baseline is not None:  # each baseline run right after its installed twin: the same load, near enough
        for position, precision in ((1, "fp32"), (4, "int8")):
            file = baseline / ("model.onnx" if precision == "fp32" else "model.int8.onnx")
            configs.insert(position, {**configs[position - 1], "graph_file": str(file.resolve())})
    rows = []
    for config in configs:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.embeddings", "--child", json.dumps(config)],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
        )
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"  {_graph(row):<9} {row['precision']} sorted={row['sorted']!s:<5} batch={row['batch_size']:<3} "
              f"{row['texts_per_s']:7.1f} texts/s {row['tokens_per_s']:8.0f} tokens/s  peak {row['peak_rss_mb']:.0f} MB", flush=True)
    return rows


def int8_agreement(count: int) -> dict[str, float]:
    """int8 against fp32 on the same texts: cosine, top-10 neighbours kept, batch dependence."""
    from resources.embedder import load_text_embedder

    texts = throughput_texts(count)
    fp32 = load_text_embedder(None).embed_documents(texts)
    int8_embedder = load_text_embedder(None, precision="int8")
    int8 = int8_embedder.embed_documents(texts)
    cosines = cosine_rows(fp32, int8)
    near_fp32 = np.argsort(-(fp32 @ fp32.T), axis=1)[:, 1:11]
    near_int8 = np.argsort(-(int8 @ int8.T), axis=1)[:, 1:11]
    kept = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(near_fp32, near_int8)])
    single = np.concatenate([int8_embedder.embed_documents([text]) for text in texts[:100]])
    alone = cosine_rows(single, int8[:100])
    return {
        "texts": count,
        "mean_cosine_to_fp32": float(cosines.mean()),
        "min_cosine_to_fp32": float(cosines.min()),
        "top10_neighbours_kept": float(kept),
        "min_cosine_alone_vs_in_batch": float(alone.min()),
    }


def baseline_agreement(baseline: Path, count: int) -> dict:
    """The installed graphs' vectors against the baseline's (fp32 against fp32, int8 against int8)."""
    from resources.embedder import load_text_embedder

    texts = throughput_texts(count)
    figures: dict = {"dir": str(baseline), "texts": count}
    for precision, file in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
        ours = load_text_embedder(None, precision=precision).embed_documents(texts)
        with tempfile.TemporaryDirectory() as scratch:
            theirs = baseline_embedder(baseline / file, Path(scratch)).embed_documents(texts)
        cosines = cosine_rows(ours, theirs)
        figures[precision] = {"mean_cosine": float(cosines.mean()), "min_cosine": float(cosines.min())}
    return figures


def render_digit(image: np.ndarray) -> Image.Image:
    """A scikit-learn 8x8 digit as a photo-sized picture: dark ink on white paper with a margin."""
    from PIL import Image

    ink = 255 - (image / 16 * 255).astype(np.uint8)
    digit = Image.fromarray(ink).resize((64, 64), Image.Resampling.BICUBIC)
    page = Image.new("L", (96, 96), 255)
    page.paste(digit, (16, 16))
    return page.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)


def neighbour_label_agreement(vectors: np.ndarray, labels: np.ndarray, k: int = 10, metric: str = "cosine") -> float:
    """Share of each point's k nearest neighbours (itself excluded) that carry its label."""
    from sklearn.neighbors import NearestNeighbors

    neighbours = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(vectors).kneighbors(vectors, return_distance=False)
    return float((labels[neighbours[:, 1:]] == labels[:, None]).mean())


def image_figures() -> dict[str, float]:
    """Digits rendered as images: 10-NN label agreement (embeddings vs raw pixels), images/s."""
    from sklearn.datasets import load_digits

    from resources.embedder import load_image_embedder

    digits = load_digits()
    images = [render_digit(image) for image in digits.images]
    figures: dict[str, float] = {}
    pixels = digits.images.reshape(len(images), -1)
    figures["pixels_euclidean_10nn_agreement"] = neighbour_label_agreement(pixels, digits.target, metric="euclidean")
    figures["pixels_cosine_10nn_agreement"] = neighbour_label_agreement(pixels, digits.target, metric="cosine")
    for name in ("efficientnet-lite0", "efficientnet-lite0-semantic"):
        embedder = load_image_embedder(name)
        embedder.embed_images(images[:16])  # warm-up
        start = time.perf_counter()
        vectors = embedder.embed_images(images)
        figures[f"{name}_images_per_s"] = len(images) / (time.perf_counter() - start)
        figures[f"{name}_10nn_agreement"] = neighbour_label_agreement(vectors, digits.target)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts and one timed pass")
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR",
        help="a folder with model.onnx and model.int8.onnx of an earlier builder, timed beside the installed graphs",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0

    from resources.embedder import load_text_embedder
    from resources.model_store import install_model

    count, repeats = (300, 1) if args.quick else (1000, 3)
    load_before = os.getloadavg()
    print("fidelity against the numpy reference ...", flush=True)
    reference = ReferenceMiniLM(install_model(None))
    fidelity = measure_fidelity(load_text_embedder(None), reference, fidelity_texts())
    fidelity_int8 = measure_fidelity(load_text_embedder(None, precision="int8"), reference, fidelity_texts())
    start = time.perf_counter()
    reference_texts = throughput_texts(50)
    reference.embed(reference_texts)
    reference_rate = len(reference_texts) / (time.perf_counter() - start)
    print("STS-B ...", flush=True)
    sts = {"fp32": sts_spearman(load_text_embedder(None)), "int8": sts_spearman(load_text_embedder(None, precision="int8")),
           "reference_published": 0.820}
    print("int8 agreement ...", flush=True)
    agreement = int8_agreement(1000 if not args.quick else 300)
    print("images (sklearn digits) ...", flush=True)
    images = image_figures()
    against_baseline = baseline_agreement(args.baseline, 1000 if not args.quick else 300) if args.baseline else None
    print(f"throughput on {count} AG News texts, median of {repeats}:", flush=True)
    throughput = run_throughput(count, repeats, args.baseline)

    by_key = {(_graph(row), row["precision"], row["sorted"], row["batch_size"]): row for row in throughput}

    def rate(precision: str, is_sorted: bool = True, graph: str = "installed") -> float:
        return by_key[(graph, precision, is_sorted, 32)]["texts_per_s"]

    ratios = {
        "sorted_over_unsorted_fp32": rate("fp32") / rate("fp32", False),
        "int8_over_fp32_sorted": rate("int8") / rate("fp32"),
    }
    if args.baseline:
        ratios["fp32_over_baseline_fp32_sorted"] = rate("fp32") / rate("fp32", graph="baseline")
        ratios["int8_over_baseline_int8_sorted"] = rate("int8") / rate("int8", graph="baseline")
        ratios["baseline_int8_over_baseline_fp32_sorted"] = rate("int8", graph="baseline") / rate("fp32", graph="baseline")
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": load_before,
                    "load_after": os.getloadavg(), "note": "2 cores, shared with whatever else runs: see the load averages"},
        "model": "all-MiniLM-L6-v2",
        "fidelity_fp32": fidelity,
        "fidelity_int8": fidelity_int8,
        "numpy_reference_texts_per_s": reference_rate,
        "sts_benchmark_spearman": sts,
        "int8_vs_fp32": agreement,
        "throughput": throughput,
        "images_digits": images,
        "ratios": ratios,
    }
    if against_baseline is not None:
        report["against_baseline"] = against_baseline
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    print()
    print(f"{'figure':<46} {'value':>12}")
    print(f"{'fidelity fp32 mean / min cosine':<46} {fidelity['mean_cosine']:.6f} / {fidelity['min_cosine']:.6f}")
    print(f"{'fidelity int8 mean / min cosine':<46} {fidelity_int8['mean_cosine']:.6f} / {fidelity_int8['min_cosine']:.6f}")
    print(f"{'STS-B Spearman fp32 / int8 (reference 0.820)':<46} {sts['fp32']:.4f} / {sts['int8']:.4f}")
    print(f"{'int8 vs fp32 mean / min cosine':<46} {agreement['mean_cosine_to_fp32']:.4f} / {agreement['min_cosine_to_fp32']:.4f}")
    print(f"{'int8 top-10 neighbours kept':<46} {agreement['top10_neighbours_kept']:.3f}")
    print(f"{'numpy reference texts/s (float64, one by one)':<46} {reference_rate:12.1f}")
    if against_baseline is not None:
        for precision in ("fp32", "int8"):
            figures = against_baseline[precision]
            label = f"{precision} vs baseline {precision} mean / min cosine"
            print(f"{label:<46} {figures['mean_cosine']:.7f} / {figures['min_cosine']:.7f}")
    for row in throughput:
        label = (f"{'baseline ' if row.get('graph_file') else ''}{row['precision']} "
                 f"{'sorted' if row['sorted'] else 'unsorted'} batch {row['batch_size']} texts/s | tokens/s | MB")
        print(f"{label:<46} {row['texts_per_s']:8.1f} | {row['tokens_per_s']:7.0f} | {row['peak_rss_mb']:.0f}")
    for name, value in images.items():
        print(f"{'digits ' + name:<46} {value:12.3f}")
    for name, value in report["ratios"].items():
        print(f"{name:<46} {value:12.2f}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
