"""The BERT graph builder: onnxruntime's fused ops in every layer, and an int8 variant that keeps the
feed-forward output MatMuls fp32. (Fidelity to the numpy reference is tested in test_embedder.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from safetensors.numpy import load_file

from resources.model_store import install_model
from resources.onnx_builder import (
    CONTRIB_DOMAIN,
    SENTENCE_OUTPUT,
    TOKEN_OUTPUT,
    BertConfig,
    build_bert_graph,
    ffn_output_matmul_names,
    quantize_int8,
)


@pytest.fixture(scope="module")
def weights_and_config() -> tuple[dict[str, np.ndarray], BertConfig]:
    folder = install_model() / "weights"
    weights = {key.removeprefix("bert."): value for key, value in load_file(str(folder / "model.safetensors")).items()}
    return weights, BertConfig.from_json(folder / "config.json")


def _op_counts(model: onnx.ModelProto) -> Counter:
    return Counter((node.domain or "", node.op_type) for node in model.graph.node)


def _run(model: onnx.ModelProto, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


# Two texts of 5 and 3 tokens ([CLS] ... [SEP]), the second padded.
IDS = np.array([[101, 7592, 2088, 999, 102], [101, 7592, 102, 0, 0]], dtype=np.int64)
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=np.int64)


@pytest.mark.parametrize("output", [SENTENCE_OUTPUT, TOKEN_OUTPUT])
def test_every_layer_is_written_in_onnxruntimes_fused_ops(weights_and_config, output: str) -> None:
    weights, config = weights_and_config
    model = build_bert_graph(weights, config, output=output)
    counts = _op_counts(model)
    layers = config.num_layers
    assert counts[(CONTRIB_DOMAIN, "Attention")] == layers
    assert counts[(CONTRIB_DOMAIN, "SkipLayerNormalization")] == 2 * layers
    assert counts[(CONTRIB_DOMAIN, "BiasGelu")] == layers
    # Nothing of the plain-op form is left: no hand-built attention, GELU or residual LayerNorm.
    for plain in ("Softmax", "Erf", "Transpose", "Reshape"):
        assert counts[("", plain)] == 0, plain
    assert counts[("", "LayerNormalization")] == 1  # the embeddings' only
    assert counts[("", "MatMul")] == 3 * layers  # attention output, FFN input, FFN output
    assert {(entry.domain, entry.version) for entry in model.opset_import} == {("", 17), (CONTRIB_DOMAIN, 1)}
    attention = next(node for node in model.graph.node if node.op_type == "Attention")
    weight = next(item for item in model.graph.initializer if item.name == attention.input[1])
    assert tuple(weight.dims) == (config.hidden_size, 3 * config.hidden_size)  # Q, K, V side by side


def test_the_three_outputs_agree_with_each_other(weights_and_config) -> None:
    """Mean pooling inside the graph == the token output pooled outside; CLS == the first token's row."""
    weights, config = weights_and_config
    tokens = _run(build_bert_graph(weights, config, output=TOKEN_OUTPUT), IDS, MASK)
    assert tokens.shape == (2, 5, config.hidden_size)
    pooled = (tokens * MASK[:, :, None]).sum(1) / MASK.sum(1, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    sentence = _run(build_bert_graph(weights, config), IDS, MASK)
    assert np.abs(sentence - pooled).max() < 1e-6
    cls = _run(build_bert_graph(weights, config, pooling="cls", normalize=False), IDS, MASK)
    assert cls.shape == (2, config.hidden_size) and np.abs(cls - tokens[:, 0]).max() < 1e-6


def test_padding_changes_nothing(weights_and_config) -> None:
    """The mask reaches Attention: a text alone equals the same text padded in a batch."""
    weights, config = weights_and_config
    model = build_bert_graph(weights, config)
    alone = _run(model, IDS[1:, :3], MASK[1:, :3])
    assert np.abs(_run(model, IDS, MASK)[1] - alone[0]).max() < 1e-6


def test_int8_quantises_attention_and_keeps_the_ffn_output_matmuls_fp32(weights_and_config, tmp_path: Path) -> None:
    weights, config = weights_and_config
    onnx.save_model(build_bert_graph(weights, config), tmp_path / "model.onnx")
    quantize_int8(tmp_path / "model.onnx", tmp_path / "model.int8.onnx", config)
    model = onnx.load(tmp_path / "model.int8.onnx")
    counts = _op_counts(model)
    assert counts[(CONTRIB_DOMAIN, "QAttention")] == config.num_layers
    assert counts[(CONTRIB_DOMAIN, "Attention")] == 0
    assert counts[("", "MatMulInteger")] == 2 * config.num_layers  # attention output and FFN input
    initializers = {item.name: item for item in model.graph.initializer}
    float_matmuls = sorted(node.name for node in model.graph.node if node.op_type == "MatMul")
    assert float_matmuls == sorted(ffn_output_matmul_names(config))
    for node in model.graph.node:
        if node.op_type == "MatMul":
            assert initializers[node.input[1]].data_type == onnx.TensorProto.FLOAT
            assert numpy_helper.to_array(initializers[node.input[1]]).shape == (config.intermediate_size, config.hidden_size)
    vectors = _run(model, IDS, MASK)
    assert vectors.shape == (2, config.hidden_size) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
