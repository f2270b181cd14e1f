"""onnxruntime's execution providers: CUDA first when the GPU build offers it, CPU otherwise (the
tested default); a provider named in ATLAS_ONNX_PROVIDERS that is not there is a ModelError naming
the fix."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from atlas_assets.errors import ModelError
from resources.onnx_session import (
    CPU,
    CUDA,
    PROVIDERS_ENV,
    make_session,
    resolve_providers,
)

CPU_ONLY = ["AzureExecutionProvider", CPU]
GPU_BUILD = ["TensorrtExecutionProvider", CUDA, CPU]


@pytest.mark.parametrize("requested", ["", "auto", "AUTO"])
def test_auto_picks_cuda_then_cpu_when_the_gpu_build_offers_it(requested: str) -> None:
    assert resolve_providers(requested, GPU_BUILD) == [CUDA, CPU]
    assert resolve_providers(requested, CPU_ONLY) == [CPU]


def test_named_providers_keep_their_order_and_accept_short_names() -> None:
    assert resolve_providers("cuda, cpu", GPU_BUILD) == [CUDA, CPU]
    assert resolve_providers(f"{CPU}", GPU_BUILD) == [CPU]


def test_a_named_provider_that_is_missing_names_the_gpu_build_and_the_way_back() -> None:
    with pytest.raises(ModelError) as raised:
        resolve_providers(f"{CUDA},{CPU}", CPU_ONLY)
    message = str(raised.value)
    assert CUDA in message and "onnxruntime-gpu" in message and f"unset {PROVIDERS_ENV}" in message


def _tiny_model(folder) -> object:
    """A one-node ONNX graph (y = x + 1), built with onnx's helpers."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    path = folder / "tiny" / "model.onnx"
    path.parent.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_the_default_session_runs_on_cpu_and_says_so(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.delenv(PROVIDERS_ENV, raising=False)
    with caplog.at_level(logging.INFO, logger="resources.onnx_session"):
        session = make_session(_tiny_model(tmp_path), threads=1)
    assert session.get_providers() == [CPU]
    assert session.run(None, {"x": np.zeros((1, 2), np.float32)})[0].tolist() == [[1.0, 1.0]]
    assert f"on {CPU}" in caplog.text


def test_an_unavailable_provider_in_the_environment_fails_before_loading(tmp_path, monkeypatch) -> None:
    import onnxruntime

    if CUDA in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    monkeypatch.setenv(PROVIDERS_ENV, "cuda")
    with pytest.raises(ModelError, match="onnxruntime-gpu"):
        make_session(_tiny_model(tmp_path), threads=1)
