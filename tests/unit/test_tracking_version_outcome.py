"""Every registered model version says what became of it, in the real local MLflow store."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from mlflow import MlflowClient
from onnx import TensorProto, helper

from pipelines.evaluation.gates import Gate
from pipelines.export.onnx import OnnxExport, describe
from pipelines.models.base import ModelResult
from tasks.tracking import REASON_TAG, STATUS_TAG, Tracker, default_tracking_uri


def _identity_onnx(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _result(tmp_path: Path, name: str, *passed: bool) -> ModelResult:
    path = _identity_onnx(tmp_path / f"{name}.onnx")
    gates = [
        Gate(f"lift_{i}", 1.0 if ok else -1.0, 0.0, ok, description="beats the baseline")
        for i, ok in enumerate(passed)
    ]
    return ModelResult(name, OnnxExport(path, 0.0, describe(path)), {}, gates)


def test_a_blocked_version_is_tagged_blocked_with_its_reason_and_no_mlflow_print(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    tracker = Tracker(default_tracking_uri(tmp_path / "wd"), "edgeflow-test", tmp_path / "art")
    # the registry too: an earlier test may have pointed mlflow's global registry elsewhere
    client = MlflowClient(tracking_uri=tracker.tracking_uri, registry_uri=tracker.tracking_uri)
    parent = tracker.start_run("parent")
    capfd.readouterr()

    blocked_run = tracker.start_run("regime", parent_id=parent)
    blocked = tracker.log_model(blocked_run, _result(tmp_path, "regime", True, False))
    passed_run = tracker.start_run("sizer", parent_id=parent)
    passed = tracker.log_model(passed_run, _result(tmp_path, "sizer", True))
    # a second version of a registered model: the name exists, the version is new
    again = tracker.log_model(passed_run, _result(tmp_path, "sizer", True))

    out = capfd.readouterr()
    assert "Successfully registered model" not in out.err + out.out
    assert "Created version" not in out.err + out.out

    mv = client.get_model_version("edgeflow-test-regime", blocked.registered_version)
    assert mv.tags[STATUS_TAG] == "blocked"
    assert mv.tags[REASON_TAG].startswith("gate(s) lift_1 failed; first: lift_1 failed")
    assert mv.run_id == blocked_run  # the version still links to its model's run
    mv = client.get_model_version("edgeflow-test-sizer", passed.registered_version)
    assert mv.tags == {STATUS_TAG: "passed", REASON_TAG: "passed every gate"}
    assert mv.run_id == passed_run
    assert (passed.registered_version, again.registered_version) == ("1", "2")

    # the publish settles a passed version: published (or publish-failed), with the detail
    tracker.set_version_outcome(passed, "published", "version v1 (sequence 1)")
    mv = client.get_model_version("edgeflow-test-sizer", passed.registered_version)
    assert mv.tags == {STATUS_TAG: "published", REASON_TAG: "version v1 (sequence 1)"}
    assert blocked.pyfunc_max_abs_diff == 0.0
