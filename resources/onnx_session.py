"""The onnxruntime session every model runs in (text and image embedders alike)."""

from __future__ import annotations

from pathlib import Path

from atlas_assets.errors import ModelError


def make_session(model_path: Path, threads: int | None):
    """An onnxruntime CPU session with full graph optimisation (about 20% faster than none).

    threads None/0 = onnxruntime's default (all physical cores). Spinning is off: idle worker threads
    would otherwise burn the cores that other pipeline steps need between batches.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or 0)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise ModelError(f"onnxruntime cannot load {model_path}: {error}; reinstall with `atlas models install`") from None
