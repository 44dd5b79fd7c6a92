"""The regime export drops the converter's no-op tail nodes and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from configs import load_config
from pipelines.data.schema import REGIMES
from pipelines.export.onnx import make_session
from pipelines.features import FEATURE_NAMES
from pipelines.models.regime.candidates import make_candidate
from pipelines.models.regime.export import _prune_output_noops, export_onnx


def test_lightgbm_graph_is_one_node_with_the_contract_outputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, len(FEATURE_NAMES))).astype(np.float32)
    y = rng.integers(0, len(REGIMES), 600)
    cfg = load_config("demo", environ={}).regime.model_copy(
        update={
            "lightgbm": load_config("demo", environ={}).regime.lightgbm.model_copy(
                update={"n_estimators": 5}
            )
        }
    )
    model = make_candidate("lightgbm", cfg, 0).fit(X, y)
    path = export_onnx(model, tmp_path / "r.onnx", FEATURE_NAMES, REGIMES)
    proto = onnx.load(str(path))
    assert [n.op_type for n in proto.graph.node] == ["TreeEnsembleClassifier"]
    assert [o.name for o in proto.graph.output] == ["label", "probabilities"]
    label, prob = make_session(path).run(None, {"features": X})
    assert label.dtype == np.int64 and prob.dtype == np.float32
    np.testing.assert_array_equal(label, model.predict(X))
    np.testing.assert_allclose(prob, model.predict_proba(X), atol=1e-5)


def test_prune_keeps_a_cast_that_changes_the_type_and_a_mul_by_non_ones() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Identity", ["r"], ["i"]),
            helper.make_node("Cast", ["i"], ["a"], to=TensorProto.INT64),
            helper.make_node("Relu", ["x"], ["s"]),
            helper.make_node("Mul", ["s", "two"], ["b"]),
            helper.make_node("Relu", ["x"], ["t"]),
            helper.make_node("Mul", ["t", "one"], ["c"]),
        ],
        "g",
        [x],
        [
            helper.make_tensor_value_info("a", TensorProto.INT64, ["N", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 2]),
        ],
        initializer=[
            helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0]),
            helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _prune_output_noops(proto)
    ops = [(n.op_type, list(n.output)) for n in proto.graph.node]
    # the float -> int64 Cast stays (and with it the Identity before it), Mul by 2 stays,
    # Mul by 1 goes and its producer writes ``c``; the unused ``one`` is dropped
    assert ("Cast", ["a"]) in ops and ("Mul", ["b"]) in ops
    assert ("Relu", ["c"]) in ops and all(op != "Mul" or out != ["c"] for op, out in ops)
    assert [t.name for t in proto.graph.initializer] == ["two"]
    onnx.checker.check_model(proto)
