"""A static text model distilled from the default model: one vector per token, no network, no ONNX at
run time (the model2vec idea).

Build (`build_static_model`, run by `atlas models install all-MiniLM-L6-v2-static`, offline from the
installed default model): every vocabulary token is run through the default model's ONNX graph on its
own (`[CLS] token [SEP]`, mean-pooled, unit length), the table is reduced with PCA (384 -> 256), and
each token's row is scaled by its SIF weight a / (a + p(token)) (a = 1e-4, p from token frequencies of
an offline corpus: the docstrings of the standard library). The folder is in
model2vec's layout (`model.safetensors` with the `embeddings` table, `tokenizer.json`, `config.json`),
so `model2vec.StaticModel.from_pretrained(folder)` loads it too.

Run (`StaticEmbedder`, same interface as resources.embedder.TextEmbedder): tokenise without special
tokens, gather the rows, sum per text with one sparse count-matrix product (no Python loop per text), unit
length. The weights are baked into the rows, so the sum's direction is the SIF-weighted mean's.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from atlas_assets.errors import InvalidDataError, ModelError

STATIC_MODEL_FILE = "model.safetensors"
STATIC_CONFIG_FILE = "config.json"  # model2vec's config (ours stays in atlas_model.json)
TABLE_KEY = "embeddings"
MEAN_KEY, AXES_KEY, WEIGHTS_KEY = "pca_mean", "pca_axes", "sif_weights"  # ours, for index-time fits
SIF_A = 1e-4
DEFAULT_CHUNK_ROWS = 16384


def _as_texts(texts: Iterable[object]) -> Iterator[str]:
    for position, text in enumerate(texts):
        if text is None:
            yield ""
        elif isinstance(text, str):
            yield text
        else:
            raise InvalidDataError(f"text at position {position} is a {type(text).__name__}, not a string; convert it first")


# --------------------------------------------------------------------------------------------------
# Build


def token_vectors(base_model: Path, batch_size: int = 512, threads: int | None = None) -> np.ndarray:
    """(vocabulary, dim) float32: each token alone through the base ONNX graph ([CLS] token [SEP])."""
    from tokenizers import Tokenizer

    from resources.onnx_session import make_session

    tokenizer = Tokenizer.from_file(str(Path(base_model) / "tokenizer.json"))
    size = tokenizer.get_vocab_size()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ModelError(f"{base_model}: the static build needs a BERT vocabulary with [CLS] and [SEP]")
    session = make_session(Path(base_model) / "model.onnx", threads)
    output = session.get_outputs()[0]
    if len(output.shape) != 2:
        raise ModelError(f"{base_model}: the static build needs a pooled (batch, dim) output")
    table = np.empty((size, output.shape[-1]), dtype=np.float32)
    for start in range(0, size, batch_size):
        ids = np.arange(start, min(start + batch_size, size), dtype=np.int64)
        batch = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
        table[start : start + len(ids)] = session.run([output.name], {"input_ids": batch, "attention_mask": np.ones_like(batch)})[0]
    return table


def pca_basis(table: np.ndarray, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, axes): the table's mean row and its first `dimension` principal axes (dimension x width)."""
    mean = table.astype(np.float64).mean(axis=0)
    _, _, axes = np.linalg.svd(table.astype(np.float64) - mean, full_matrices=False)
    return mean, axes[: min(dimension, axes.shape[0])]


def pca_reduce(table: np.ndarray, dimension: int) -> np.ndarray:
    """The table centred and projected on its first `dimension` principal axes (float32)."""
    mean, axes = pca_basis(table, dimension)
    return ((table.astype(np.float64) - mean) @ axes.T).astype(np.float32)


def sif_weights(counts: np.ndarray, a: float = SIF_A) -> np.ndarray:
    """a / (a + p) per token, p its smoothed frequency (add-one): rare tokens ~1, frequent ones ~0."""
    counts = np.asarray(counts, dtype=np.float64)
    p = (counts + 1.0) / (counts.sum() + len(counts))
    return (a / (a + p)).astype(np.float32)


def token_counts(tokenizer, texts: Sequence[str]) -> np.ndarray:
    counts = np.zeros(tokenizer.get_vocab_size(), dtype=np.int64)
    for start in range(0, len(texts), 4096):
        encodings = tokenizer.encode_batch_fast(list(texts[start : start + 4096]), add_special_tokens=False)
        flat = np.fromiter(itertools.chain.from_iterable(item.ids for item in encodings), dtype=np.int64)
        counts += np.bincount(flat, minlength=len(counts))
    return counts


def offline_corpus(limit: int = 20000) -> list[str]:
    """Texts every installation has: docstrings of the standard library (not of site-packages, so the
    build does not depend on what else is installed), in a stable order."""
    from resources.demo_corpus import iter_docstrings, library_roots

    docs = sorted(iter_docstrings(library_roots()[:1]), key=lambda doc: doc.id)
    return [doc.text for doc in docs[:limit]]


def build_static_model(
    base_model: Path, folder: Path, dimension: int = 256, corpus: Sequence[str] | None = None, sif_a: float = SIF_A
) -> dict:
    """Writes the static model's files into `folder` (a temporary build folder: the caller renames it)."""
    import time

    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    started = time.perf_counter()
    base_model, folder = Path(base_model), Path(folder)
    vectors = token_vectors(base_model)
    mean, axes = pca_basis(vectors, dimension)
    table = ((vectors.astype(np.float64) - mean) @ axes.T).astype(np.float32)
    tokenizer = Tokenizer.from_file(str(base_model / "tokenizer.json"))
    weights = sif_weights(token_counts(tokenizer, corpus if corpus is not None else offline_corpus()), sif_a)
    for special in ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"):
        found = tokenizer.token_to_id(special)
        if found is not None:
            weights[found] = 0.0  # never pooled (UNK: an unknown character says nothing about meaning)
    folder.mkdir(parents=True, exist_ok=True)
    # The PCA basis and the weights ride along (model2vec reads only `embeddings`): an index-time fit
    # needs them to take the full model's vectors into the table's space (compute/static_fit.py).
    save_file(
        {
            TABLE_KEY: np.ascontiguousarray(table * weights[:, None]),
            MEAN_KEY: mean.astype(np.float32), AXES_KEY: np.ascontiguousarray(axes, dtype=np.float32),
            WEIGHTS_KEY: weights,
        },
        str(folder / STATIC_MODEL_FILE),
    )
    (folder / "tokenizer.json").write_bytes((base_model / "tokenizer.json").read_bytes())
    config = {
        "model_type": "model2vec", "architectures": ["StaticModel"], "hidden_dim": int(table.shape[1]),
        "normalize": True, "apply_pca": int(dimension), "sif_coefficient": sif_a, "seq_length": 1000000,
        "tokenizer_name": f"{base_model.name} (distilled by atlas-assets)",
    }
    (folder / STATIC_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return {"seconds": round(time.perf_counter() - started, 1), "vocabulary": int(table.shape[0]), "dimension": int(table.shape[1])}


# --------------------------------------------------------------------------------------------------
# Run


class StaticEmbedder:
    """Texts to vectors with a token table: the same methods as TextEmbedder, ~100x+ faster, rougher."""

    precision = "fp32"

    def __init__(self, folder: Path, spec, batch_size: int = 32) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.folder, self.spec, self.model_name = Path(folder), spec, spec.name
        self.batch_size = batch_size  # unused: kept for the TextEmbedder interface
        try:
            stored = load_file(str(self.folder / STATIC_MODEL_FILE))
            self.table = stored[TABLE_KEY].astype(np.float32)
        except (OSError, KeyError) as error:
            raise ModelError(f"cannot read the static model {self.folder}: {error}; reinstall with `atlas models install {spec.name}`") from None
        # What an index-time fit needs (absent from model2vec folders made elsewhere: those run unfitted).
        self.basis = (stored[MEAN_KEY], stored[AXES_KEY], stored[WEIGHTS_KEY]) if WEIGHTS_KEY in stored else None
        self.fitted_rows = 0  # rows replaced by an index's fit (0: the table as shipped)
        self.dimension = int(self.table.shape[1])
        if self.dimension != spec.dimension:
            raise ModelError(f"{self.folder} holds {self.dimension}-d vectors but its settings say {spec.dimension}")
        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=spec.max_length)
        self.tokenizer = tokenizer

    def with_fitted_rows(self, token_ids: np.ndarray, rows: np.ndarray, components: np.ndarray | None = None) -> StaticEmbedder:
        """A copy whose table has these rows replaced and the fit's common `components` (k x dim, unit
        rows; None: none, as in tables fitted before they existed) removed from every row (an index's
        fitted table); this one is unchanged."""
        import copy

        from atlas_assets.compute.static_fit import FittedRows, apply_rows

        if rows.ndim != 2 or rows.shape[1] != self.dimension or len(token_ids) != len(rows):
            raise ModelError(f"a fitted table of {self.model_name} must hold {self.dimension}-d rows; got {rows.shape}")
        if len(token_ids) and (token_ids.min() < 0 or token_ids.max() >= len(self.table)):
            raise ModelError(f"a fitted table names tokens outside {self.model_name}'s vocabulary; fit it again")
        if components is not None:
            components = np.asarray(components, dtype=np.float32)
            if components.ndim != 2 or components.shape[1] != self.dimension or len(components) >= self.dimension \
                    or not np.isfinite(components).all():
                raise ModelError(f"a fitted table of {self.model_name} must remove {self.dimension}-d components; "
                                 f"got {components.shape}; fit it again")
        fitted = copy.copy(self)
        fitted.table = apply_rows(self.table, FittedRows(np.asarray(token_ids, dtype=np.int64), rows, components))
        fitted.fitted_rows = len(token_ids)
        return fitted

    def count_matrix(self, texts: Sequence[str]):
        """(texts x vocabulary) sparse token counts (scipy CSR, float32), what pooling multiplies."""
        import scipy.sparse as sp

        flat, lengths = self._ids(list(_as_texts(texts)))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        counts = sp.csr_matrix((np.ones(len(flat), dtype=np.float32), flat, indptr), shape=(len(lengths), len(self.table)))
        counts.sum_duplicates()
        return counts

    def fit_rows(self, texts: Sequence[str], targets: np.ndarray, ridge: float | None = None):
        """The table rows fitted toward `targets` (the full model's unit vectors of `texts`, in the full
        model's space) and the sample's common component: compute/static_fit.py (`FittedRows`; put them
        in with `with_fitted_rows(fitted.token_ids, fitted.rows, fitted.components)`). Needs a folder
        built here (with the PCA basis)."""
        from atlas_assets.compute.static_fit import (
            DEFAULT_RIDGE,
            fit_token_rows,
            into_table_space,
        )

        if self.basis is None:
            raise ModelError(f"{self.folder} has no PCA basis to fit with; reinstall with `atlas models install {self.model_name}`")
        mean, axes, weights = self.basis
        if targets.shape[1] != axes.shape[1]:
            raise ModelError(f"{self.model_name} fits toward {axes.shape[1]}-d vectors of its base model, got {targets.shape[1]}-d")
        counts = self.count_matrix(texts)
        return fit_token_rows(counts, weights, self.table, into_table_space(targets, mean, axes), DEFAULT_RIDGE if ridge is None else ridge)

    def _ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        lengths = np.fromiter((len(item.ids) for item in encodings), dtype=np.int64, count=len(encodings))
        flat = np.fromiter(itertools.chain.from_iterable(item.ids for item in encodings), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def count_tokens(self, texts: Sequence[str]) -> np.ndarray:
        return self._ids(list(_as_texts(texts)))[1]

    def _embed_chunk(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import scipy.sparse as sp

        flat, lengths = self._ids(texts)
        # One sparse (texts x vocabulary) count matrix times the table: the sums of every text's rows
        # without materialising a (tokens x dim) array (5-10x faster than gather + reduceat).
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        counts = sp.csr_matrix((np.ones(len(flat), dtype=np.float32), flat, indptr), shape=(len(texts), len(self.table)))
        output = np.asarray(counts @ self.table, dtype=np.float32)
        norms = np.linalg.norm(output, axis=1, keepdims=True)
        return np.divide(output, norms, out=output, where=norms > 1e-12)  # empty text: the zero vector

    def iter_embed_documents(
        self, texts: Iterable[str], chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False, prefix: str | None = None
    ) -> Iterator[np.ndarray]:
        from tqdm import tqdm

        prefix = self.spec.document_prefix if prefix is None else prefix
        total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
        stream = _as_texts(texts)
        with tqdm(total=total, unit="text", desc=f"embedding ({self.model_name})", disable=not progress) as bar:
            while chunk := list(itertools.islice(stream, chunk_rows)):
                yield self._embed_chunk([prefix + text for text in chunk] if prefix else chunk)
                bar.update(len(chunk))

    def embed_documents(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        chunks = list(self.iter_embed_documents(texts, progress=progress))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dimension), dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        chunks = list(self.iter_embed_documents(texts, prefix=self.spec.query_prefix))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dimension), dtype=np.float32)

    def __repr__(self) -> str:
        fitted = f", fitted_rows={self.fitted_rows}" if self.fitted_rows else ""
        return f"StaticEmbedder({self.model_name!r}, dimension={self.dimension}{fitted})"
