"""Safe policy improvement: full-information advantage model and its exported LCB policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.export.onnx import make_session, max_abs_diff, run
from pipelines.models.bandit import NeuralBandit
from pipelines.models.bandit.export import export_onnx
from pipelines.models.bandit.train import safety_z

torch.set_num_threads(1)


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Arm 0 is the baseline everywhere; arm 1 beats it by 2 where x0 > 0 and loses by 2
    elsewhere; arm 2 is arm 0 plus pure noise (no true advantage anywhere)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    market = rng.normal(scale=3.0, size=n)  # shared by all arms: cancels in the advantage
    r = np.empty((n, 3))
    r[:, 0] = 1.0 + market
    r[:, 1] = 1.0 + market + np.where(x[:, 0] > 0, 2.0, -2.0) + rng.normal(scale=0.5, size=n)
    r[:, 2] = 1.0 + market + rng.normal(scale=1.0, size=n)
    return x, r


def _fit(seed: int = 0) -> NeuralBandit:
    x, r = _toy(1500, seed)
    return NeuralBandit(
        hidden=(16,), dropout=0.0, epochs=40, patience=5, seed=seed
    ).fit_full_information(x, r, baseline_arm=0)


def test_safe_policy_deviates_only_where_advantage_is_confident(tmp_path: Path) -> None:
    bandit = _fit()
    x, _ = _toy(600, 99)
    module = bandit.safe_scoring_module(0, z=safety_z(0.9, 6))
    with torch.no_grad():
        values = module(torch.from_numpy(x)).numpy()
    assert np.all(values[:, 0] == 0.0)  # the baseline's value is exactly 0
    choice = values.argmax(axis=1)
    assert set(np.unique(choice)) <= {0, 1}  # the noise arm is never picked
    far_pos, far_neg = x[:, 0] > 0.5, x[:, 0] < -0.5
    assert np.mean(choice[far_pos] == 1) > 0.9
    assert np.all(choice[far_neg] == 0)
    # z = 0 is the plain greedy argmax of the posterior mean advantage
    mean, std = bandit.advantage_moments(x, 0)
    greedy = bandit.safe_scoring_module(0, z=0.0)
    with torch.no_grad():
        g = greedy(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(g, mean, atol=1e-5)
    np.testing.assert_allclose(values, mean - safety_z(0.9, 6) * std, atol=1e-5)
    assert np.all(std[:, 0] == 0.0) and np.all(std[:, 1:] > 0)
    # the exported graph is the policy
    path = export_onnx(module, x.shape[1], tmp_path / "safe.onnx")
    assert (
        max_abs_diff(
            run(make_session(path), x)[0], module.eval()(torch.from_numpy(x)).detach().numpy()
        )
        <= 1e-5
    )
    onnx_values = run(make_session(path), x)[0]
    np.testing.assert_array_equal(onnx_values.argmax(axis=1), choice)


def test_safe_policy_contract_and_determinism() -> None:
    a, b = _fit(3), _fit(3)
    x, _ = _toy(50, 5)
    np.testing.assert_array_equal(a.advantage_moments(x, 0)[0], b.advantage_moments(x, 0)[0])
    with pytest.raises(ValueError, match="fitted against arm 0"):
        a.safe_scoring_module(1, 1.0)
    with pytest.raises(ValueError, match="z must be"):
        a.safe_scoring_module(0, -1.0)
    with pytest.raises(RuntimeError, match="not fitted"):
        NeuralBandit().safe_scoring_module(0, 1.0)
    with pytest.raises(ValueError, match="baseline_arm"):
        NeuralBandit().fit_full_information(x, np.zeros((50, 3)), 3)


def test_safe_rule_on_a_reward_model_sums_the_arm_variances() -> None:
    """Logged feedback: the advantage posterior is the difference of two independent arms'."""
    x, r = _toy(1200, 1)
    rng = np.random.default_rng(0)
    arm = rng.integers(0, 3, len(x))
    bandit = NeuralBandit(hidden=(16,), dropout=0.0, epochs=5, seed=0).fit(
        x, arm, r[np.arange(len(x)), arm], 3
    )
    full_mean, full_std = bandit._posterior_moments(x[:20])
    mean, std = bandit.advantage_moments(x[:20], 2)
    scale = bandit.reward_scale_
    np.testing.assert_allclose(mean, (full_mean - full_mean[:, [2]]) * scale, atol=1e-9)
    np.testing.assert_allclose(std[:, 2], 0.0)
    np.testing.assert_allclose(
        std[:, 0], np.sqrt(full_std[:, 0] ** 2 + full_std[:, 2] ** 2) * scale, rtol=1e-9
    )


def test_safety_z() -> None:
    assert safety_z(0.5, 6) == pytest.approx(0.0, abs=1e-12)
    assert safety_z(0.9, 1) == pytest.approx(1.2815516, rel=1e-6)
    assert safety_z(0.9, 4) == pytest.approx(2 * 1.2815516, rel=1e-6)
    with pytest.raises(ValueError):
        safety_z(1.0, 6)
