"""Builds an ONNX graph of a BERT sentence encoder from its safetensors weights (onnx.helper, opset 17).

Why our own builder: the default model is published offline only as safetensors weights (no ONNX
export), and torch must not be needed to run or to build it. The graph follows the BERT encoder
exactly: word + position (+ segment 0) embeddings, LayerNorm, N layers of masked multi-head
self-attention and an exact-erf GELU feed-forward block, then pooling weighted by the attention mask
and L2 normalisation inside the graph, so one session call returns finished sentence vectors.

Pitfalls handled here: opset 17 has LayerNormalization but no Gelu (built from Erf); the mask both
masks attention (additive bias) and weights the mean pooling; token_type_ids are folded into a
constant because single texts always use segment 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
SENTENCE_OUTPUT = "sentence_embedding"
TOKEN_OUTPUT = "last_hidden_state"


@dataclass(frozen=True)
class BertConfig:
    """The hyper-parameters of a BERT encoder, read from its Hugging Face config.json."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float
    max_positions: int

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        raw = json.loads(Path(path).read_text())
        if raw.get("model_type", "bert") != "bert" or raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: only BERT encoders with exact GELU are supported, got {raw.get('model_type')}")
        return cls(
            hidden_size=int(raw["hidden_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            max_positions=int(raw.get("max_position_embeddings", 512)),
        )


def ffn_output_matmul_names(config: BertConfig) -> list[str]:
    """Names of the feed-forward output MatMuls (kept fp32 by the int8 variant: they carry outliers)."""
    return [f"layer{index}.ffn_out.matmul" for index in range(config.num_layers)]


def weight_matmul_names(config: BertConfig) -> list[str]:
    """Names of every MatMul with a constant weight (the ones int8 quantisation may touch)."""
    names = []
    for index in range(config.num_layers):
        names += [f"layer{index}.{part}.matmul" for part in ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")]
    return names


class _Graph:
    """Accumulates nodes and initialisers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attributes: object) -> str:
        self._count += 1
        node_name = name or f"{op_type.lower()}_{self._count}"
        output = f"{node_name}:out"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=node_name, **attributes))
        return output


def _linear(graph: _Graph, x: str, weights: Mapping[str, np.ndarray], prefix: str, name: str) -> str:
    """x @ W^T + b with W stored pre-transposed (MatMul then Add, which onnxruntime fuses)."""
    weight = graph.constant(f"{name}.weight_t", weights[f"{prefix}.weight"].astype(np.float32).T)
    bias = graph.constant(f"{name}.bias", weights[f"{prefix}.bias"].astype(np.float32))
    return graph.op("Add", [graph.op("MatMul", [x, weight], name=f"{name}.matmul"), bias], name=f"{name}.add")


def _layer_norm(graph: _Graph, x: str, weights: Mapping[str, np.ndarray], prefix: str, name: str, eps: float) -> str:
    scale = graph.constant(f"{name}.scale", weights[f"{prefix}.weight"].astype(np.float32))
    bias = graph.constant(f"{name}.bias", weights[f"{prefix}.bias"].astype(np.float32))
    return graph.op("LayerNormalization", [x, scale, bias], name=name, axis=-1, epsilon=eps)


def _gelu_exact(graph: _Graph, x: str, name: str) -> str:
    """0.5 * x * (1 + erf(x / sqrt(2))): the exact GELU BERT was trained with."""
    inv_sqrt2 = graph.constant(f"{name}.inv_sqrt2", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))
    one = graph.constant(f"{name}.one", np.array(1.0, dtype=np.float32))
    half = graph.constant(f"{name}.half", np.array(0.5, dtype=np.float32))
    erf = graph.op("Erf", [graph.op("Mul", [x, inv_sqrt2])])
    return graph.op("Mul", [graph.op("Mul", [x, half]), graph.op("Add", [erf, one])], name=f"{name}.out")


def build_bert_graph(
    weights: Mapping[str, np.ndarray],
    config: BertConfig,
    pooling: str = "mean",
    normalize: bool = True,
    output: str = SENTENCE_OUTPUT,
) -> onnx.ModelProto:
    """The encoder as an ONNX model with int64 inputs `input_ids`, `attention_mask` (batch, tokens).

    output=SENTENCE_OUTPUT gives (batch, hidden) pooled (`pooling` "mean" or "cls") and, when
    `normalize`, unit-length vectors; output=TOKEN_OUTPUT gives the (batch, tokens, hidden) last hidden
    state instead, the layout most hub ONNX exports have (pooling then happens outside the graph).
    """
    if pooling not in ("mean", "cls"):
        raise ValueError(f"unknown pooling {pooling!r}")
    hidden, heads = config.hidden_size, config.num_heads
    head_size = hidden // heads
    graph = _Graph()

    # Embeddings: word + (position + segment-0) table; positions are 0..tokens-1.
    word_table = graph.constant("embeddings.word", weights["embeddings.word_embeddings.weight"].astype(np.float32))
    position_plus_segment = (
        weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
    ).astype(np.float32)
    position_table = graph.constant("embeddings.position_plus_segment0", position_plus_segment)
    tokens = graph.op("Shape", ["input_ids"], name="token_count", start=1, end=2)  # 1-D [tokens]
    zero_1d = graph.constant("const.zero_1d", np.array([0], dtype=np.int64))
    positions = graph.op("Slice", [position_table, zero_1d, tokens, zero_1d], name="embeddings.position_rows")
    x = graph.op(
        "Add",
        [graph.op("Gather", [word_table, "input_ids"], name="embeddings.word_lookup", axis=0), positions],
        name="embeddings.sum",
    )
    x = _layer_norm(graph, x, weights, "embeddings.LayerNorm", "embeddings.layer_norm", config.layer_norm_eps)

    # Additive attention bias: 0 on real tokens, a large negative number on padding.
    mask_float = graph.op("Cast", ["attention_mask"], name="mask_float", to=TensorProto.FLOAT)
    one_float = graph.constant("const.one_float", np.array(1.0, dtype=np.float32))
    big_negative = graph.constant("const.mask_negative", np.array(-1e9, dtype=np.float32))
    bias = graph.op("Mul", [graph.op("Sub", [one_float, mask_float]), big_negative], name="mask_bias_flat")
    bias = graph.op("Unsqueeze", [bias, graph.constant("const.axes_1_2", np.array([1, 2], dtype=np.int64))], name="mask_bias")

    split_shape = graph.constant("const.split_heads", np.array([0, 0, heads, head_size], dtype=np.int64))
    merge_shape = graph.constant("const.merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = graph.constant("const.attention_scale", np.array(1.0 / math.sqrt(head_size), dtype=np.float32))

    for index in range(config.num_layers):
        prefix = f"encoder.layer.{index}"
        name = f"layer{index}"

        def heads_of(part: str, perm: list[int]) -> str:
            projected = _linear(graph, x, weights, f"{prefix}.attention.self.{part}", f"{name}.{part}")
            return graph.op("Transpose", [graph.op("Reshape", [projected, split_shape])], perm=perm)

        query = heads_of("query", [0, 2, 1, 3])  # (b, h, t, d)
        key = heads_of("key", [0, 2, 3, 1])  # (b, h, d, t)
        value = heads_of("value", [0, 2, 1, 3])  # (b, h, t, d)
        scores = graph.op("Mul", [graph.op("MatMul", [query, key], name=f"{name}.scores"), scale])
        probabilities = graph.op("Softmax", [graph.op("Add", [scores, bias])], name=f"{name}.softmax", axis=-1)
        context = graph.op("MatMul", [probabilities, value], name=f"{name}.context")
        context = graph.op("Reshape", [graph.op("Transpose", [context], perm=[0, 2, 1, 3]), merge_shape])
        attended = _linear(graph, context, weights, f"{prefix}.attention.output.dense", f"{name}.attn_out")
        x = _layer_norm(
            graph, graph.op("Add", [attended, x]), weights, f"{prefix}.attention.output.LayerNorm",
            f"{name}.attn_norm", config.layer_norm_eps,
        )
        inner = _gelu_exact(graph, _linear(graph, x, weights, f"{prefix}.intermediate.dense", f"{name}.ffn_in"), f"{name}.gelu")
        outer = _linear(graph, inner, weights, f"{prefix}.output.dense", f"{name}.ffn_out")
        x = _layer_norm(
            graph, graph.op("Add", [outer, x]), weights, f"{prefix}.output.LayerNorm", f"{name}.ffn_norm",
            config.layer_norm_eps,
        )

    if output == TOKEN_OUTPUT:
        graph.nodes.append(helper.make_node("Identity", [x], [TOKEN_OUTPUT], name="output"))
        output_info = helper.make_tensor_value_info(TOKEN_OUTPUT, TensorProto.FLOAT, ["batch", "tokens", hidden])
    elif output == SENTENCE_OUTPUT:
        if pooling == "mean":
            mask3 = graph.op("Unsqueeze", [mask_float, graph.constant("const.axis_2", np.array([2], dtype=np.int64))])
            axis_1 = graph.constant("const.axis_1", np.array([1], dtype=np.int64))
            summed = graph.op("ReduceSum", [graph.op("Mul", [x, mask3]), axis_1], name="pool.sum", keepdims=0)
            counts = graph.op("ReduceSum", [mask3, axis_1], name="pool.count", keepdims=0)
            counts = graph.op("Max", [counts, graph.constant("const.count_floor", np.array(1e-9, dtype=np.float32))])
            pooled = graph.op("Div", [summed, counts], name="pool.mean")
        else:
            zero = graph.constant("const.zero", np.array(0, dtype=np.int64))
            pooled = graph.op("Gather", [x, zero], name="pool.cls", axis=1)
        if normalize:
            norm = graph.op("ReduceL2", [pooled], name="normalize.norm", axes=[1], keepdims=1)
            norm = graph.op("Max", [norm, graph.constant("const.norm_floor", np.array(1e-12, dtype=np.float32))])
            pooled = graph.op("Div", [pooled, norm], name="normalize.div")
        graph.nodes.append(helper.make_node("Identity", [pooled], [SENTENCE_OUTPUT], name="output"))
        output_info = helper.make_tensor_value_info(SENTENCE_OUTPUT, TensorProto.FLOAT, ["batch", hidden])
    else:
        raise ValueError(f"unknown output {output!r}")

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
    ]
    onnx_graph = helper.make_graph(graph.nodes, "bert_sentence_encoder", inputs, [output_info], graph.initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="atlas-assets")
    model.ir_version = 8  # readable by every onnxruntime >= 1.17
    onnx.checker.check_model(model)
    return model


def build_bert_onnx(
    safetensors_path: Path,
    config_path: Path,
    output_path: Path,
    pooling: str = "mean",
    normalize: bool = True,
    output: str = SENTENCE_OUTPUT,
) -> Path:
    """Reads the weights and config, builds the graph and writes it to `output_path`."""
    from safetensors.numpy import load_file

    weights = load_file(str(safetensors_path))
    # Some exports prefix every tensor with "bert."; the graph expects the bare names.
    weights = {key.removeprefix("bert."): value for key, value in weights.items()}
    model = build_bert_graph(weights, BertConfig.from_json(config_path), pooling, normalize, output)
    onnx.save_model(model, str(output_path))
    return output_path


def quantize_int8(model_path: Path, output_path: Path, config: BertConfig) -> Path:
    """An int8 variant that keeps fidelity: per-channel int8 weights, FFN-output MatMuls left fp32.

    Naive dynamic quantisation of every MatMul measured only ~0.956 mean cosine to fp32 here; the
    feed-forward output projections carry the activation outliers, so they stay fp32 and only the
    other weight MatMuls (Q, K, V, attention output, FFN input) are quantised, per output channel.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_fp32 = set(ffn_output_matmul_names(config))
    quantize_dynamic(
        str(model_path),
        str(output_path),
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=[name for name in weight_matmul_names(config) if name not in keep_fp32],
    )
    return Path(output_path)
