"""The exported safe-scoring graph is small and computes what the posterior says.

The module folds the division by the feature std into its first layer, turns phi's constant
1 into head biases and folds ``z`` into the projection; it must still equal ``mean - z * std``
of ``advantage_moments`` (computed from the unfolded network in float64), keep the baseline at
exactly 0, and export to a graph of the centring Sub, Gemm/Relu and the per-arm norm (no
Concat, ConstantOfShape, Shape, Slice or Div; two Constant nodes hold the reshape's shape and
the reduction's axes).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pipelines.export.onnx import make_session, max_abs_diff, run
from pipelines.models.bandit import NeuralBandit
from pipelines.models.bandit.export import export_onnx

torch.set_num_threads(1)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # features at very different levels and spreads, as the real ones are
    x = rng.normal(size=(n, 6)) * [1.0, 0.01, 30.0, 1.0, 0.2, 5.0] + [0, 2, -40, 0.5, 0, 9]
    r = rng.normal(size=(n, 3)) + np.where(x[:, :1] > 0, 1.0, -1.0) * [0.0, 1.0, 0.0]
    return x.astype(np.float32), r


@pytest.mark.parametrize("hidden", [(16, 8), ()])
@pytest.mark.parametrize("z", [0.0, 1.5])
def test_scoring_graph_equals_posterior_and_is_small(
    hidden: tuple[int, ...], z: float, tmp_path: Path
) -> None:
    x, r = _data(800, 1)
    bandit = NeuralBandit(hidden=hidden, dropout=0.1, epochs=3, seed=0).fit_full_information(
        x, r, baseline_arm=0
    )
    module = bandit.safe_scoring_module(0, z)
    with torch.no_grad():
        values = module(torch.from_numpy(x)).numpy()
    mean, std = bandit.advantage_moments(x, 0)
    np.testing.assert_allclose(values, mean - z * std, atol=1e-5, rtol=1e-5)
    assert np.all(values[:, 0] == 0.0)
    path = export_onnx(module, x.shape[1], tmp_path / "m.onnx")
    want = module.eval()(torch.from_numpy(x)).detach().numpy()
    assert max_abs_diff(run(make_session(path), x)[0], want) <= 1e-5
    np.testing.assert_array_equal(run(make_session(path), x)[0][:, 0], 0.0)
    ops = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    layers = max(len(hidden), 1)
    small = {"Sub": 2, "Reshape": 1, "Mul": 1, "ReduceSum": 1, "Sqrt": 1, "Constant": 2}
    assert ops == Counter({"Gemm": layers + 2, "Relu": len(hidden), **small})
