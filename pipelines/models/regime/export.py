"""ONNX export of the selected regime model, and its parity against the native model.

Graph contract with the live bot: one input ``features`` float32 ``[N, 43]`` (columns in
``FEATURE_NAMES`` order) and two outputs, ``label`` int64 ``[N]`` and ``probabilities`` float32
``[N, 4]`` (columns in ``REGIMES`` order; no ZipMap). The class order and feature names are
written into the model's metadata (``class_names``, ``feature_names`` as JSON) so the graph
documents itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.shape_inference

from pipelines.export.lgbm import float32_exact
from pipelines.export.onnx import converter_lock, make_session, write_canonical
from pipelines.features.names import FEATURE_NAMES

logger = logging.getLogger(__name__)

INPUT_NAME = "features"
OUTPUT_NAMES: tuple[str, str] = ("label", "probabilities")


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _rename_outputs(proto: onnx.ModelProto, mapping: dict[str, str]) -> None:
    """Rename graph outputs (and every reference to them) in place."""
    graph = proto.graph
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
    for out in graph.output:
        if out.name in mapping:
            out.name = mapping[out.name]


def _set_shape(value: onnx.ValueInfoProto, dims: Sequence[int | str]) -> None:
    """Declare an output's shape (onnxmltools declares LightGBM's ``label`` as [1])."""
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def _is_noop(node: onnx.NodeProto, types: dict[str, int], ones: set[str]) -> bool:
    """Identity, a Cast to the type its input already has, or a Mul by an all-ones constant."""
    if node.op_type == "Identity":
        return True
    if node.op_type == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        return to is not None and types.get(node.input[0]) == to
    if node.op_type == "Mul":
        return len(node.input) == 2 and node.input[1] in ones
    return False


def _prune_output_noops(proto: onnx.ModelProto) -> None:
    """Drop no-op nodes between the converter's estimator node and the graph outputs.

    onnxmltools ends a LightGBM graph with Identity -> Cast(int64 -> int64) on the label and
    Identity -> Mul(by 1.0) on the probabilities; each costs a kernel launch per call and
    changes no value. The producer of each no-op chain writes the graph output directly.
    """
    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    ones = {
        t.name
        for t in graph.initializer
        if onnx.numpy_helper.to_array(t).size and np.all(onnx.numpy_helper.to_array(t) == 1)
    }
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    for out in graph.output:
        node = producer.get(out.name)
        while node is not None and _is_noop(node, types, ones):
            src = node.input[0]
            upstream = producer.get(src)
            if upstream is None or consumers.get(src, 0) != 1:
                break  # a graph input or a value used elsewhere: keep the node
            graph.node.remove(node)
            upstream.output[list(upstream.output).index(src)] = out.name
            producer[out.name] = upstream
            node = upstream
    used = {name for node in graph.node for name in node.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


def to_onnx(
    model: Any, n_features: int, opset: int = 15, exact_columns: Sequence[int] = ()
) -> onnx.ModelProto:
    """Convert a fitted LightGBM or scikit-learn classifier to the contract graph.

    ``exact_columns``: input columns whose LightGBM thresholds are made float32-exact first
    (:func:`pipelines.export.lgbm.float32_exact`; the optional cross-asset and exogenous
    columns, which may be quoted on a grid)."""
    final = _final_estimator(model)
    # The converters' first import happens under the lock too: two threads importing
    # onnxmltools at once can end in importlib's _DeadlockError.
    if type(final).__module__.startswith("lightgbm"):
        model, lowered = float32_exact(model, exact_columns)
        if lowered:
            logger.info("lightgbm: %d threshold(s) lowered to float32-exact values", lowered)
        with converter_lock():
            import onnxmltools
            from onnxmltools.convert.common.data_types import FloatTensorType as CommonFloat

            proto = onnxmltools.convert_lightgbm(
                model,
                initial_types=[(INPUT_NAME, CommonFloat([None, n_features]))],
                zipmap=False,
                target_opset=opset,
            )
    else:
        with converter_lock():
            from skl2onnx import convert_sklearn
            from skl2onnx.common.data_types import FloatTensorType

            proto = convert_sklearn(
                model,
                initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                options={id(final): {"zipmap": False}},
                target_opset={"": opset, "ai.onnx.ml": 3},
            )
    outputs = [o.name for o in proto.graph.output]
    if len(outputs) != 2:
        raise ValueError(f"expected 2 graph outputs (label, probabilities), got {outputs}")
    _rename_outputs(proto, dict(zip(outputs, OUTPUT_NAMES, strict=True)))
    _prune_output_noops(proto)
    n_classes = len(_final_estimator(model).classes_)
    _set_shape(proto.graph.input[0], ["N", n_features])
    _set_shape(proto.graph.output[0], ["N"])
    _set_shape(proto.graph.output[1], ["N", n_classes])
    return proto


def export_onnx(
    model: Any,
    path: Path,
    feature_names: Sequence[str],
    class_names: Sequence[str],
    opset: int = 15,
) -> Path:
    """Write the contract graph to ``path`` with class order and feature names in its metadata.

    The columns after the 43 own-bar features get float32-exact thresholds (:func:`to_onnx`).
    """
    classes = np.asarray(_final_estimator(model).classes_)
    if not np.array_equal(classes, np.arange(len(class_names))):
        raise ValueError(
            f"model classes {classes.tolist()} must be 0..{len(class_names) - 1} "
            f"(one per class name {list(class_names)})"
        )
    exact = range(len(FEATURE_NAMES), len(feature_names))
    proto = to_onnx(model, len(feature_names), opset, exact)
    metadata = {
        "class_names": json.dumps(list(class_names)),
        "feature_names": json.dumps(list(feature_names)),
        "model": "regime",
    }
    write_canonical(proto, path, "regime", metadata)
    logger.info("exported %s to %s (opset %d)", type(model).__name__, path, opset)
    return path


def onnx_probabilities(path: Path, model: Any, X: np.ndarray) -> np.ndarray:
    """The graph's ``probabilities`` for float32 rows ``X``, after checking its ``label``
    output agrees with the native argmax wherever the top two native probabilities are not
    tied to within float32 noise (parity of the probabilities is measured by the caller)."""
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    session = make_session(path)
    label, proba = session.run(list(OUTPUT_NAMES), {INPUT_NAME: X32})
    native = np.asarray(model.predict_proba(X32), dtype=np.float64)
    top2 = np.sort(native, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-5
    mismatch = int((np.asarray(label)[clear] != native.argmax(axis=1)[clear]).sum())
    if mismatch:
        raise ValueError(f"ONNX label disagrees with native argmax on {mismatch} rows")
    return np.asarray(proba)


def read_metadata(path: Path) -> dict[str, Any]:
    """The export's metadata, JSON values decoded."""
    proto = onnx.load(str(path))
    out: dict[str, Any] = {}
    for p in proto.metadata_props:
        try:
            out[p.key] = json.loads(p.value)
        except json.JSONDecodeError:
            out[p.key] = p.value
    return out
