"""ONNX export of the meta-labeler: LightGBM's P(win), then Platt scaling, in one graph.

Graph contract with the live bot: input ``features`` float32 ``[N, 55]`` (the 43
``FEATURE_NAMES`` in order, then a one-hot of the arm in ``ARM_NAMES`` order), output
``win_probability`` float32 ``[N, 1]`` = ``sigmoid(a * logit(clip(p, 1e-6, 1 - 1e-6)) + b)``
with ``p`` the tree ensemble's probability of a profitable trade. The column order, the arm
names and the Platt coefficients are in the model's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from pipelines.export.lgbm import float32_exact
from pipelines.export.onnx import converter_lock, write_canonical
from pipelines.features import FEATURE_NAMES
from pipelines.strategies import ARM_NAMES

INPUT_NAME = "features"
OUTPUT_NAME = "win_probability"
INPUT_COLUMNS: tuple[str, ...] = (*FEATURE_NAMES, *(f"arm={a}" for a in ARM_NAMES))


def input_columns(feature_names: Sequence[str] = FEATURE_NAMES) -> tuple[str, ...]:
    """The graph's input columns for these features (the 43, then any cross-asset and
    exogenous ones), then the arm one-hot: :data:`INPUT_COLUMNS` for the 43."""
    return (*feature_names, *(f"arm={a}" for a in ARM_NAMES))


def _platt_nodes(probabilities: str, a: float, b: float) -> tuple[list[Any], list[Any]]:
    """Nodes mapping the ensemble's [N, 2] probabilities to calibrated [N, 1] P(win)."""
    consts: dict[str, np.ndarray] = {
        "ml_col": np.array([1], dtype=np.int64),
        "ml_lo": np.array(1e-6, dtype=np.float32),
        "ml_hi": np.array(1.0 - 1e-6, dtype=np.float32),
        "ml_one": np.array(1.0, dtype=np.float32),
        "ml_a": np.array(a, dtype=np.float32),
        "ml_b": np.array(b, dtype=np.float32),
    }
    inits = [numpy_helper.from_array(v, name=k) for k, v in consts.items()]
    nodes = [
        helper.make_node("Gather", [probabilities, "ml_col"], ["ml_p"], axis=1),
        helper.make_node("Max", ["ml_p", "ml_lo"], ["ml_pl"]),  # Clip's inputs need opset 11
        helper.make_node("Min", ["ml_pl", "ml_hi"], ["ml_pc"]),
        helper.make_node("Sub", ["ml_one", "ml_pc"], ["ml_q"]),
        helper.make_node("Log", ["ml_pc"], ["ml_logp"]),
        helper.make_node("Log", ["ml_q"], ["ml_logq"]),
        helper.make_node("Sub", ["ml_logp", "ml_logq"], ["ml_logit"]),
        helper.make_node("Mul", ["ml_logit", "ml_a"], ["ml_scaled"]),
        helper.make_node("Add", ["ml_scaled", "ml_b"], ["ml_z"]),
        helper.make_node("Sigmoid", ["ml_z"], [OUTPUT_NAME]),
    ]
    return nodes, inits


def export_onnx(
    model: Any,
    a: float,
    b: float,
    path: Path,
    opset: int = 15,
    columns: Sequence[str] = INPUT_COLUMNS,
) -> Path:
    """Write the calibrated meta-labeler to ``path`` (``columns``: :func:`input_columns`).

    The columns between the 43 and the arm one-hot (cross-asset, exogenous) get float32-exact
    thresholds (:func:`pipelines.export.lgbm.float32_exact`)."""
    model, _ = float32_exact(model, range(len(FEATURE_NAMES), len(columns) - len(ARM_NAMES)))
    with converter_lock():  # also the first import: two threads importing it can deadlock
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        proto = onnxmltools.convert_lightgbm(
            model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, len(columns)]))],
            zipmap=False,
            target_opset=opset,
        )
    probabilities = proto.graph.output[1].name
    nodes, inits = _platt_nodes(probabilities, a, b)
    proto.graph.node.extend(nodes)
    proto.graph.initializer.extend(inits)
    del proto.graph.output[:]
    proto.graph.output.append(
        helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1])
    )
    metadata = {
        "input_columns": json.dumps(list(columns)),
        "arm_names": json.dumps(list(ARM_NAMES)),
        "platt": json.dumps({"a": a, "b": b}),
        "model": "metalabel",
    }
    return write_canonical(proto, path, "metalabel", metadata)
