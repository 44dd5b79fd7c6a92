"""Small ONNX graphs with the real models' input/output contracts, and a signed test store.

The graphs are linear maps (plus the contract's softmax / tanh-to-[0.1, 2.0] / sigmoid), so
every output can be recomputed with numpy in a test: regime ``features`` [N, 43] ->
``label``, ``probabilities`` [N, 4]; bandit ``features`` [N, 43] -> ``arm_values`` [N, 12];
sizer ``observation`` [N, 44] -> ``multiplier`` [N, 1]; metalabel ``features`` [N, 55] ->
``p_win`` [N, 1].
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pipelines.registry import FileStore, HmacKey, KeyRing, publish_model

KEY_ID = "bot-test"
KEY = hashlib.sha256(b"edgeflow bot tests").digest()


def keyring() -> KeyRing:
    return KeyRing([HmacKey(KEY_ID, KEY)], signing_key_id=KEY_ID)


@dataclass(frozen=True)
class Linear:
    """``x @ w + b`` with the weights a graph was built from (to recompute its output)."""

    w: np.ndarray
    b: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32) @ self.w + self.b


def _linear(n_in: int, n_out: int, seed: int, scale: float) -> Linear:
    rng = np.random.default_rng(seed)
    w = (rng.normal(size=(n_in, n_out)) * scale).astype(np.float32)
    b = (rng.normal(size=(n_out,)) * scale).astype(np.float32)
    return Linear(w, b)


def _model(nodes: list, inputs: list, outputs: list, inits: list) -> bytes:
    graph = helper.make_graph(nodes, "edgeflow-test", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _io(name: str, n: int, elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, ["N", n] if n else ["N"])


def regime_onnx(seed: int = 1) -> tuple[bytes, Linear]:
    lin = _linear(43, 4, seed, 0.3)
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    inits = [numpy_helper.from_array(lin.w, "W"), numpy_helper.from_array(lin.b, "B")]
    out = [_io("label", 0, TensorProto.INT64), _io("probabilities", 4)]
    return _model(nodes, [_io("features", 43)], out, inits), lin


def bandit_onnx(seed: int = 2) -> tuple[bytes, Linear]:
    lin = _linear(43, 12, seed, 0.3)
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["arm_values"]),
    ]
    inits = [numpy_helper.from_array(lin.w, "W"), numpy_helper.from_array(lin.b, "B")]
    return _model(nodes, [_io("features", 43)], [_io("arm_values", 12)], inits), lin


def sizer_onnx(seed: int = 3) -> tuple[bytes, Linear]:
    """tanh action mapped to [0.1, 2.0] as the exported sizer maps it, then clamped."""
    lin = _linear(44, 1, seed, 0.3)
    consts = {
        "one": np.array(1.0, np.float32),
        "slope": np.array(0.95, np.float32),
        "lo": np.array(0.1, np.float32),
        "hi": np.array(2.0, np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["observation", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["a"]),
        helper.make_node("Add", ["a", "one"], ["a1"]),
        helper.make_node("Mul", ["a1", "slope"], ["scaled"]),
        helper.make_node("Add", ["scaled", "lo"], ["m"]),
        helper.make_node("Clip", ["m", "lo", "hi"], ["multiplier"]),
    ]
    inits = [numpy_helper.from_array(lin.w, "W"), numpy_helper.from_array(lin.b, "B")]
    inits += [numpy_helper.from_array(v, k) for k, v in consts.items()]
    return _model(nodes, [_io("observation", 44)], [_io("multiplier", 1)], inits), lin


def metalabel_onnx(seed: int = 4, bias: float | None = None) -> tuple[bytes, Linear]:
    """sigmoid(x @ w + b); ``bias`` with zero weights gives a constant P(win)."""
    lin = _linear(55, 1, seed, 0.05)
    if bias is not None:
        lin = Linear(np.zeros_like(lin.w), np.array([bias], np.float32))
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p_win"]),
    ]
    inits = [numpy_helper.from_array(lin.w, "W"), numpy_helper.from_array(lin.b, "B")]
    return _model(nodes, [_io("features", 55)], [_io("p_win", 1)], inits), lin


def publish(store: FileStore, model: str, blob: bytes, **metrics: float) -> str:
    """Publish one model file through the public API; returns its version."""
    done = publish_model(
        store,
        model,
        {"model.onnx": blob},
        keyring(),
        metrics={"onnx_max_abs_diff": 0.0, **metrics},
        lineage={
            "mlflow_run_id": "test",
            "git_commit": "test",
            "data_hash": "x",
            "config_hash": "x",
        },
    )
    return done.version


def publish_all(root: Path, *, metalabel: bool = False) -> tuple[FileStore, dict[str, Linear]]:
    """A file store holding regime, bandit (default arm 2) and sizer (and metalabel)."""
    store = FileStore(root)
    regime, r = regime_onnx()
    bandit, b = bandit_onnx()
    sizer, s = sizer_onnx()
    publish(store, "regime", regime)
    publish(store, "bandit", bandit, **{"train/default_arm_index": 2.0})
    publish(store, "sizer", sizer)
    lins = {"regime": r, "bandit": b, "sizer": s}
    if metalabel:
        meta, m = metalabel_onnx()
        publish(store, "metalabel", meta)
        lins["metalabel"] = m
    return store, lins


def mlp_onnx(
    input_name: str,
    output_name: str,
    sizes: tuple[int, ...],
    *,
    activation: str = "Relu",
    head: str = "none",
    seed: int = 0,
) -> bytes:
    """A dense network of the real models' sizes (weights random): for latency figures.

    ``head``: ``none`` (raw outputs), ``sizer`` (tanh -> [0.1, 2.0]) or ``sigmoid``. The
    input is standardised first, as the exported bandit and sizer do inside their graphs.
    """
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(size=sizes[0]).astype(np.float32), "mu"),
        numpy_helper.from_array((1.0 + rng.random(sizes[0])).astype(np.float32), "sd"),
    ]
    nodes = [
        helper.make_node("Sub", [input_name, "mu"], ["c0"]),
        helper.make_node("Div", ["c0", "sd"], ["h0"]),
    ]
    prev = "h0"
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = (rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"W{i}"),
            numpy_helper.from_array(np.zeros(b, np.float32), f"B{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"B{i}"], [f"z{i}"]),
        ]
        prev = f"z{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node(activation, [prev], [f"a{i}"]))
            prev = f"a{i}"
    if head == "sizer":
        for k, v in {"one": 1.0, "slope": 0.95, "lo": 0.1, "hi": 2.0}.items():
            inits.append(numpy_helper.from_array(np.array(v, np.float32), k))
        nodes += [
            helper.make_node("Tanh", [prev], ["t"]),
            helper.make_node("Add", ["t", "one"], ["t1"]),
            helper.make_node("Mul", ["t1", "slope"], ["t2"]),
            helper.make_node("Add", ["t2", "lo"], ["t3"]),
            helper.make_node("Clip", ["t3", "lo", "hi"], [output_name]),
        ]
    elif head == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", [prev], [output_name]))
    else:
        nodes.append(helper.make_node("Identity", [prev], [output_name]))
    return _model(nodes, [_io(input_name, sizes[0])], [_io(output_name, sizes[-1])], inits)
