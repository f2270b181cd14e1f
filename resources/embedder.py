"""The embedding runtime: onnxruntime sessions + `tokenizers`, no torch, no network at run time.

`load_text_embedder(name)` installs the model on first use (the only step that may download) and
keeps one embedder per (model, settings) for the life of the process, because a session costs a
second to build and ~100 MB of memory. `resources.embedder_resource.EmbedderResource` hands them to
Dagster assets; this module knows no Dagster (the map read model and the web map use it too).

Speed comes from length-sorted batches padded only to their own longest text (see
atlas_assets/compute/embed.py), run two at a time, each on half the cores (`BATCHES_IN_FLIGHT`); memory
stays bounded on huge inputs because texts are tokenised and embedded chunk by chunk
(`iter_embed_documents`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from atlas_assets.compute.embed import (
    input_order_batches,
    l2_normalise,
    length_sorted_batches,
    matryoshka_truncate,
    pad_batch,
    pool,
    scatter_to_input_order,
)
from atlas_assets.config import models_home
from atlas_assets.errors import InvalidDataError, ModelError
from resources.model_store import (
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelSpec,
    install_model,
    int8_model_path,
    resolve_model,
)
from resources.onnx_session import make_session

if TYPE_CHECKING:
    from resources.image_model import ImageEmbedder

DEFAULT_BATCH_SIZE = 32
DEFAULT_CHUNK_ROWS = 4096
# Caps rows x tokens of one batch so 32 texts of 8k tokens (nomic-embed) do not take gigabytes.
DEFAULT_MAX_BATCH_TOKENS = 32 * 256
PRECISIONS = ("fp32", "int8")
BATCHES_IN_FLIGHT = 2
"""Batches a text embedder runs at once, each session call on its share of the threads. A batch of
short texts is a few small matrix products per layer, and one session spreading each of them over
every core waits at a barrier after each: 10,000 Stack Overflow titles on 2 cores took 13.0-13.3 s
with one batch on 2 threads and 12.2-12.4 s with two batches on 1 thread each (alternating runs,
idle machine), the same vectors to 1e-7."""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _as_texts(texts: Iterable[object]) -> Iterator[str]:
    for position, text in enumerate(texts):
        if text is None:
            yield ""
        elif isinstance(text, str):
            yield text
        else:
            raise InvalidDataError(f"text at position {position} is a {type(text).__name__}, not a string; convert it first")


class TextEmbedder:
    """Turns texts into vectors with one ONNX text model (plain Python, safe to share across threads)."""

    def __init__(
        self,
        folder: Path,
        spec: ModelSpec,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = "fp32",
        dimensionality: int | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        sort_by_length: bool = True,
        batches_in_flight: int = BATCHES_IN_FLIGHT,
    ) -> None:
        """threads: onnxruntime threads in all (None: every core), shared by `batches_in_flight`
        batches run at once (each session call gets threads // batches_in_flight, at least 1)."""
        from tokenizers import Tokenizer

        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.spec = spec
        self.folder = Path(folder)
        self.model_name = spec.name
        self.batch_size = batch_size
        self.precision = precision
        self.max_batch_tokens = max_batch_tokens
        self.sort_by_length = sort_by_length  # False only to measure what sorting buys
        self.dimensionality = self._check_dimensionality(spec, dimensionality)
        self.dimension = self.dimensionality or spec.dimension

        tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        # tokenizer.json files often ship fixed padding / a short truncation: override both.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=spec.max_length)
        self.tokenizer = tokenizer
        self.pad_id = self._pad_id(tokenizer)

        model_path = int8_model_path(spec.name) if precision == "int8" else self.folder / MODEL_FILE
        total_threads = threads or _cores()
        self.batches_in_flight = max(1, min(batches_in_flight, total_threads))
        self.session = make_session(model_path, max(1, total_threads // self.batches_in_flight))
        self._pool = (
            ThreadPoolExecutor(self.batches_in_flight, thread_name_prefix="atlas-embed")
            if self.batches_in_flight > 1 else None
        )
        self.input_names = [item.name for item in self.session.get_inputs()]
        missing = {"input_ids", "attention_mask"} - set(self.input_names)
        if missing:
            raise ModelError(f"{model_path} lacks inputs {sorted(missing)}; it has {self.input_names}")
        output = self.session.get_outputs()[0]
        self.output_name = output.name
        self.token_level_output = len(output.shape) == 3
        width = output.shape[-1]
        if isinstance(width, int) and width != spec.dimension:
            raise ModelError(f"{model_path} outputs {width}-d vectors but its settings say {spec.dimension}")

    @staticmethod
    def _check_dimensionality(spec: ModelSpec, dimensionality: int | None) -> int | None:
        if dimensionality is None or dimensionality == spec.dimension:
            return None
        if dimensionality not in spec.matryoshka_dimensions:
            sizes = ", ".join(str(size) for size in spec.matryoshka_dimensions) or f"only {spec.dimension}"
            raise ModelError(
                f"model {spec.name!r} cannot give {dimensionality}-d vectors; Matryoshka sizes it was trained for: {sizes}"
            )
        return dimensionality

    @staticmethod
    def _pad_id(tokenizer) -> int:
        for token in ("[PAD]", "<pad>", "<PAD>"):
            found = tokenizer.token_to_id(token)
            if found is not None:
                return int(found)
        return 0

    # ---------------------------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> np.ndarray:
        """Token count of each text after truncation (what the model actually computes on)."""
        return np.array([len(item.ids) for item in self.tokenizer.encode_batch(list(_as_texts(texts)))], dtype=np.int64)

    def _run(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        input_ids, attention_mask = pad_batch(token_ids, self.pad_id)
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        try:
            output = self.session.run([self.output_name], feed)[0]
        except Exception as error:
            raise ModelError(f"model {self.model_name!r} failed on a batch of {len(token_ids)} texts: {error}") from None
        if self.token_level_output:
            output = pool(output, attention_mask, self.spec.pooling)
        return np.asarray(output, dtype=np.float32)

    def _finish(self, vectors: np.ndarray) -> np.ndarray:
        if self.dimensionality is not None:
            return matryoshka_truncate(
                vectors, self.dimensionality, normalise=True, layer_norm_first=self.spec.layer_norm_before_truncate
            )
        return l2_normalise(vectors) if self.spec.normalize else vectors

    def _embed_chunk(self, texts: list[str], on_rows=None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        token_ids = [item.ids for item in encodings]
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
        if self.sort_by_length:
            batches = length_sorted_batches(lengths, self.batch_size, self.max_batch_tokens)
        else:
            batches = input_order_batches(len(texts), self.batch_size)

        def run(batch: np.ndarray) -> np.ndarray:
            return self._run([token_ids[index] for index in batch])

        # onnxruntime releases the GIL inside a run and a session takes concurrent runs; map keeps order
        outputs = self._pool.map(run, batches) if self._pool is not None and len(batches) > 1 else map(run, batches)
        results = []
        for batch, output in zip(batches, outputs):
            results.append(output)
            if on_rows is not None:
                on_rows(len(batch))
        return self._finish(scatter_to_input_order(batches, results, len(texts)))

    def iter_embed_documents(
        self, texts: Iterable[str], chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False, prefix: str | None = None
    ) -> Iterator[np.ndarray]:
        """Embeddings of `texts` chunk by chunk, in input order; memory is bounded by chunk_rows.

        Accepts any iterable (a generator over millions of rows works); each yielded array is
        (rows of that chunk, dimension) float32.
        """
        from tqdm import tqdm

        prefix = self.spec.document_prefix if prefix is None else prefix
        total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
        stream = _as_texts(texts)
        with tqdm(total=total, unit="text", desc=f"embedding ({self.model_name})", disable=not progress) as bar:
            while True:
                chunk = list(itertools.islice(stream, chunk_rows))
                if not chunk:
                    return
                if prefix:
                    chunk = [prefix + text for text in chunk]
                yield self._embed_chunk(chunk, on_rows=bar.update)

    def embed_documents(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """(n, dimension) float32 embeddings in input order, L2-normalised when the model says so."""
        texts = list(texts) if not isinstance(texts, Sequence) else texts
        output = np.empty((len(texts), self.dimension), dtype=np.float32)
        start = 0
        for vectors in self.iter_embed_documents(texts, progress=progress):
            output[start : start + len(vectors)] = vectors
            start += len(vectors)
        return output

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Like embed_documents, with the model's query prefix (e.g. `search_query: `)."""
        output = [vectors for vectors in self.iter_embed_documents(texts, prefix=self.spec.query_prefix)]
        return np.concatenate(output) if output else np.zeros((0, self.dimension), dtype=np.float32)

    def __repr__(self) -> str:
        return f"TextEmbedder({self.model_name!r}, dimension={self.dimension}, precision={self.precision!r})"


_CACHE: dict[tuple, object] = {}
_CACHE_LOCK = threading.Lock()


def load_text_embedder(
    name: str | None = None,
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: str = "fp32",
    dimensionality: int | None = None,
) -> TextEmbedder:
    """The process-wide embedder of a text model (installed first when missing).

    name: a model name or alias ("NomicEmbed" = the default all-MiniLM-L6-v2) or a model folder.
    precision "int8" is the quantised variant (faster, mean cosine ~0.99+ to fp32 but batch-dependent:
    not for caching or exact-duplicate work). dimensionality picks a Matryoshka size.
    """
    spec = resolve_model(name, kind="text")
    key = ("text", spec.name, spec.source, str(models_home()), threads or 0, batch_size, precision, dimensionality)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            folder = install_model(spec.source.path if _is_folder_model(spec) else spec.name)  # type: ignore[union-attr]
            if spec.runtime == "static":  # a token table (resources/static_embedder.py), no ONNX session
                from resources.static_embedder import StaticEmbedder

                if precision != "fp32" or dimensionality not in (None, spec.dimension):
                    raise ModelError(f"model {spec.name!r} is static: no int8 variant and no Matryoshka sizes")
                cached = StaticEmbedder(folder, spec, batch_size)
            else:
                cached = TextEmbedder(folder, spec, threads, batch_size, precision, dimensionality)
            _CACHE[key] = cached
    return cached  # type: ignore[return-value]


def _is_folder_model(spec: ModelSpec) -> bool:
    from resources.model_store import LocalFolderSource

    return isinstance(spec.source, LocalFolderSource)


def load_image_embedder(name: str | None = None, threads: int | None = None, batch_size: int = 16) -> "ImageEmbedder":
    """The process-wide embedder of an image model (installed first when missing)."""
    from resources.image_model import ImageEmbedder

    spec = resolve_model(name, kind="image")
    key = ("image", spec.name, spec.source, str(models_home()), threads or 0, batch_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            folder = install_model(spec.source.path if _is_folder_model(spec) else spec.name)  # type: ignore[union-attr]
            cached = ImageEmbedder(folder, spec, threads, batch_size)
            _CACHE[key] = cached
    return cached  # type: ignore[return-value]


def clear_embedder_cache() -> None:
    """Forgets every loaded embedder (tests, or after reinstalling a model)."""
    with _CACHE_LOCK:
        _CACHE.clear()
