from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.data.schema import REGIMES
from pipelines.export.onnx import make_session, max_abs_diff, run
from pipelines.models.bandit import BetaThompson, NeuralBandit, proxy_regimes
from pipelines.models.bandit.export import export_onnx
from pipelines.models.bandit.neural import SeededDropout

torch.set_num_threads(1)


def _contextual_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arm 0 pays when x0 > 0, arm 1 when x0 < 0, arm 2 never: uniform logging."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 43)).astype(np.float32)
    means = np.stack([x[:, 0], -x[:, 0], np.full(n, -0.5)], axis=1)
    action = rng.integers(0, 3, n)
    reward = means[np.arange(n), action] + rng.normal(0, 0.3, n)
    return x, action, reward, means


def _small(seed: int = 0) -> NeuralBandit:
    return NeuralBandit(hidden=(32, 16), epochs=30, patience=30, batch_size=128, seed=seed)


@pytest.mark.slow
def test_neural_bandit_learns_the_contextual_rule() -> None:
    x, a, r, _ = _contextual_problem(2000, 0)
    model = _small().fit(x, a, r, n_arms=3)
    assert model is not None and hasattr(model, "net_")
    xt, _, _, means = _contextual_problem(1000, 1)
    values = model.predict(xt)
    assert values.shape == (1000, 3) and values.dtype == np.float32
    chosen = np.argmax(values, axis=1)
    assert (chosen == np.argmax(means, axis=1)).mean() > 0.9
    # Thompson draws vary but concentrate on the right arm where the context is clear
    rng = np.random.default_rng(0)
    dist = model.action_distribution(xt, rng, 32)
    assert np.allclose(dist.sum(axis=1), 1.0)
    clear = np.abs(xt[:, 0]) > 1.5
    assert (dist[clear, np.argmax(means[clear], axis=1)] > 0.8).mean() > 0.9
    assert model.select_action(xt[:5], explore=False).tolist() == chosen[:5].tolist()


def test_neural_bandit_contract() -> None:
    x, a, r, _ = _contextual_problem(400, 2)
    with pytest.raises(RuntimeError, match="not fitted"):
        _small().predict(x)
    with pytest.raises(ValueError, match="actions"):
        _small().fit(x, a + 3, r, n_arms=3)
    with pytest.raises(ValueError, match="finite"):
        _small().fit(np.where(x > 3, np.nan, x), a, r, n_arms=3)
    small = NeuralBandit(hidden=(16,), epochs=3, seed=5)
    assert small.epochs == 3 and not hasattr(small, "net_")  # __init__ only stores
    p1 = NeuralBandit(hidden=(16,), epochs=3, seed=5).fit(x, a, r, 3).predict(x)
    p2 = NeuralBandit(hidden=(16,), epochs=3, seed=5).fit(x, a, r, 3).predict(x)
    p3 = NeuralBandit(hidden=(16,), epochs=3, seed=6).fit(x, a, r, 3).predict(x)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)


def test_bot_shape_and_onnx_parity(tmp_path: Path) -> None:
    x, a, r, _ = _contextual_problem(600, 3)
    model = NeuralBandit(epochs=2, seed=1).fit(x, a, r, n_arms=3)
    module = model.scoring_module()
    widths = [m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 64, 3]
    drops = [m.p for m in module.modules() if isinstance(m, SeededDropout)]
    assert drops == [0.2, 0.2]
    path = export_onnx(module, 43, tmp_path / "m.onnx")
    assert (
        max_abs_diff(
            run(make_session(path), x)[0], module.eval()(torch.from_numpy(x)).detach().numpy()
        )
        <= 1e-5
    )
    sess = make_session(path)
    assert sess.get_inputs()[0].name == "features"
    assert sess.get_outputs()[0].name == "arm_values"
    single = run(sess, x[:1])[0]
    np.testing.assert_allclose(single[0], model.predict(x[:1])[0], atol=1e-5)


def test_beta_thompson_by_hand() -> None:
    action = np.array([0, 0, 1, 1, 1, 0])
    regime = np.array([0, 0, 0, 2, 2, 2])
    reward = np.array([0.1, -0.2, 0.3, 0.5, 0.4, -0.1])
    ts = BetaThompson(n_arms=2, n_regimes=4, prior_a=1.0, prior_b=2.0).fit(action, regime, reward)
    np.testing.assert_array_equal(ts.alpha_[0], [2.0, 2.0])
    np.testing.assert_array_equal(ts.beta_[0], [3.0, 2.0])
    np.testing.assert_array_equal(ts.alpha_[2], [1.0, 3.0])
    np.testing.assert_array_equal(ts.beta_[2], [3.0, 2.0])
    assert ts.posterior_mean(np.array([2]))[0].tolist() == pytest.approx([0.25, 0.6])
    assert ts.greedy(np.array([2, 0])).tolist() == [1, 1]
    ts.update(0, 2, 1.0)
    assert ts.alpha_[2, 0] == 2.0
    rng = np.random.default_rng(0)
    picks = ts.select_action(np.full(2000, 2), rng)
    assert 0.5 < (picks == 1).mean() < 0.95  # samples, not argmax
    with pytest.raises(RuntimeError, match="not fitted"):
        BetaThompson(2).greedy(np.array([0]))


def test_proxy_regimes_causal_and_valid(small_bars: pd.DataFrame) -> None:
    reg = proxy_regimes(small_bars)
    assert reg.index.equals(small_bars.index)
    assert set(reg.unique()) <= set(range(len(REGIMES)))
    prefix = small_bars.groupby("symbol").head(500)
    pd.testing.assert_series_equal(proxy_regimes(prefix), reg.loc[prefix.index])
