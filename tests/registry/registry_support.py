"""Test helpers shared by the registry tests: a key and a tiny, deterministic ONNX model."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEY_HEX = "5f1d8a3c9e7b2046d1f0c4a8e96b3d27a1c5e9f3b7d2064c8e1a5f9b3d7c2e60"


def make_onnx(n_in: int = 4, n_out: int = 2, seed: int = 0, extra_floats: int = 0) -> bytes:
    """Y = X @ W + b, with an optional unused-but-stored padding initializer for size."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_in, n_out)).astype(np.float32)
    b = rng.normal(size=(n_out,)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["Y"]),
    ]
    if extra_floats:
        pad = rng.normal(size=(extra_floats,)).astype(np.float32)
        inits.append(numpy_helper.from_array(pad, "PAD"))
        nodes.append(helper.make_node("ReduceSum", ["PAD"], ["PADSUM"], keepdims=0))
        nodes.append(helper.make_node("Mul", ["PADSUM", "Zero"], ["PADZ"]))
        inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "Zero"))
        nodes.append(helper.make_node("Add", ["Y", "PADZ"], ["Y2"]))
        nodes.append(helper.make_node("Identity", ["Y2"], ["scores"]))
    else:
        nodes.append(helper.make_node("Identity", ["Y"], ["scores"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def expected_scores(x: np.ndarray, n_in: int = 4, n_out: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_in, n_out)).astype(np.float32)
    b = rng.normal(size=(n_out,)).astype(np.float32)
    return x.astype(np.float32) @ w + b
