"""``make_session``: the one way the published graphs are opened for inference."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from pipelines.export.session import make_session, session_options


def _graph() -> bytes:
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.zeros(1, 3),),
            buf,  # type: ignore[arg-type]
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


def test_path_and_bytes_give_the_same_answers(tmp_path: Path) -> None:
    blob = _graph()
    path = tmp_path / "m.onnx"
    path.write_bytes(blob)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    a = make_session(path).run(None, {"x": x})[0]
    b = make_session(blob).run(None, {"x": x})[0]
    c = make_session(str(path), threads=2).run(None, {"x": x})[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, rtol=1e-6)
    assert make_session(blob).get_providers() == ["CPUExecutionProvider"]


def test_options() -> None:
    opts = session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert session_options(4).intra_op_num_threads == 4
    with pytest.raises(ValueError, match="threads must be >= 1"):
        session_options(0)
