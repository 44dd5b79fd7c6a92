from __future__ import annotations

import numpy as np
import pytest

from pipelines.evaluation.ope import (
    block_bootstrap_indices,
    block_bootstrap_starts,
    estimate_dr,
    estimate_ips,
    estimate_snips,
    evaluate_policies,
    fit_reward_model,
    resample_means,
)

# Three decisions, two arms: small enough to work out by hand.
REWARD = np.array([1.0, 0.0, 2.0])
ACTION = np.array([0, 1, 1])
PSCORE = np.array([0.5, 0.25, 0.75])
PI = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
Q = np.array([[0.8, 0.1], [0.3, 0.2], [1.0, 1.5]])


def test_estimators_by_hand() -> None:
    w = np.array([1.0 / 0.5, 1.0 / 0.25, 0.5 / 0.75])
    assert estimate_ips(REWARD, ACTION, PSCORE, PI) == pytest.approx(np.mean(w * REWARD))
    assert estimate_snips(REWARD, ACTION, PSCORE, PI) == pytest.approx(
        np.sum(w * REWARD) / np.sum(w)
    )
    direct = np.array([0.8, 0.2, 1.25])
    resid = np.array([1.0 - 0.8, 0.0 - 0.2, 2.0 - 1.5])
    assert estimate_dr(REWARD, ACTION, PSCORE, PI, Q) == pytest.approx(np.mean(direct + w * resid))


def test_dr_with_perfect_model_is_the_direct_method() -> None:
    rng = np.random.default_rng(0)
    n, k = 500, 4
    q = rng.normal(size=(n, k))
    action = rng.integers(0, k, n)
    reward = q[np.arange(n), action]  # noise-free: the model is exact
    pi = np.eye(k)[rng.integers(0, k, n)]
    dr = estimate_dr(reward, action, np.full(n, 1 / k), pi, q)
    assert dr == pytest.approx(np.mean(np.sum(pi * q, axis=1)))


def test_estimators_recover_a_known_policy_value() -> None:
    """Uniform logging on a known reward table: all three land near the true value."""
    rng = np.random.default_rng(1)
    n, k = 20_000, 3
    means = np.array([0.1, 0.5, 0.2])
    action = rng.integers(0, k, n)
    reward = means[action] + rng.normal(0, 0.5, n)
    pi = np.tile([0.0, 1.0, 0.0], (n, 1))
    x = rng.normal(size=(n, 2))
    q = fit_reward_model(x, action, reward, k, alpha=1.0)
    for est in (
        estimate_ips(reward, action, np.full(n, 1 / 3), pi),
        estimate_snips(reward, action, np.full(n, 1 / 3), pi),
        estimate_dr(reward, action, np.full(n, 1 / 3), pi, q),
    ):
        assert est == pytest.approx(0.5, abs=0.03)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="pscore"):
        estimate_ips(REWARD, ACTION, np.array([0.5, 0.0, 1.0]), PI)
    with pytest.raises(ValueError, match="sum to 1"):
        estimate_ips(REWARD, ACTION, PSCORE, PI * 0.5)


def test_block_bootstrap_indices() -> None:
    idx = block_bootstrap_indices(10, 4, 5, np.random.default_rng(0))
    assert idx.shape == (5, 10)
    assert idx.min() >= 0 and idx.max() < 10
    # consecutive within each block
    assert (np.diff(idx[:, :4], axis=1) == 1).all()


def test_evaluate_policies_cis_cover_and_lift_is_paired() -> None:
    rng = np.random.default_rng(2)
    n, k = 4000, 3
    means = np.array([0.0, 0.3, 0.1])
    action = rng.integers(0, k, n)
    reward = means[action] + rng.normal(0, 1.0, n)
    q = np.zeros((n, k))
    pols = {"good": np.tile(np.eye(k)[1], (n, 1)), "bad": np.tile(np.eye(k)[0], (n, 1))}
    out = evaluate_policies(reward, action, np.full(n, 1 / k), q, pols, "bad", 300, 10, 0.9, seed=3)
    for est in ("ips", "snips", "dr"):
        e = out["good"][est]
        assert e.low < e.value < e.high
        assert e.low - 0.1 < 0.3 < e.high + 0.1  # near the truth (sampling noise aside)
        assert e.high - e.low < 0.25
        lift = out["lift/good"][est]
        assert lift.value == pytest.approx(e.value - out["bad"][est].value)
        assert lift.low > 0  # 0.3 apart with n=4000: clearly better
    again = evaluate_policies(
        reward, action, np.full(n, 1 / k), q, pols, "bad", 300, 10, 0.9, seed=3
    )
    assert again == out


def test_resample_means_equal_gathered_means() -> None:
    """The cumulative-sum means are the gathered resamples' means (last block cut)."""
    for n, block in ((10, 4), (97, 8), (50, 50), (5, 9)):
        rng = np.random.default_rng(n)
        values = rng.normal(size=(n, 3))
        starts = block_bootstrap_starts(n, block, 40, np.random.default_rng(1))
        idx = block_bootstrap_indices(n, block, 40, np.random.default_rng(1))
        assert idx.shape == (40, n)
        want = values[idx].mean(axis=1)
        np.testing.assert_allclose(resample_means(values, starts, block), want, atol=1e-12)
        np.testing.assert_allclose(resample_means(values[:, 0], starts, block), want[:, 0])
