"""Action distribution, seeded draws and their propensities; online BOCD equals batch."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.bot import OnlineBocd, action_distribution, draw_arm, one_hot, sample_arm
from pipelines.models.regime.bocd import bocd_changepoint_prob


def test_epsilon_greedy_distribution() -> None:
    values = np.array([0.0, -0.2, 0.3, 0.3, -1.0])
    dist = action_distribution(values, 0.1)
    np.testing.assert_allclose(dist, [0.02, 0.02, 0.47, 0.47, 0.02])  # the tie shares
    assert dist.sum() == pytest.approx(1.0)
    assert dist[2] == 0.1 / 5 + 0.9 / 2  # the contract's expression, bit for bit
    np.testing.assert_allclose(action_distribution(values, 0.0), [0, 0, 0.5, 0.5, 0])
    np.testing.assert_array_equal(action_distribution(values[:3], 0.0), one_hot(2, 3))
    np.testing.assert_allclose(action_distribution(values, 1.0), np.full(5, 0.2))
    with pytest.raises(ValueError, match="epsilon"):
        action_distribution(values, 1.5)
    with pytest.raises(ValueError, match="finite"):
        action_distribution(np.array([0.0, np.nan]), 0.1)


def test_draws_match_the_distribution_and_log_its_probability() -> None:
    dist = np.array([0.5, 0.0, 0.3, 0.2])
    rng = np.random.default_rng(0)
    draws = [sample_arm(dist, rng) for _ in range(20000)]
    arms = np.array([a for a, _ in draws])
    assert all(p == dist[a] for a, p in draws)
    assert not (arms == 1).any()  # probability 0 is never drawn
    freq = np.bincount(arms, minlength=4) / len(arms)
    # binomial standard error at n = 20000 is <= 0.0036: 4 sigma
    np.testing.assert_allclose(freq, dist, atol=0.015)
    again = np.random.default_rng(0)
    assert [sample_arm(dist, again)[0] for _ in range(50)] == list(arms[:50])
    with pytest.raises(ValueError, match="probability vector"):
        sample_arm(np.array([0.5, 0.6]), rng)
    # the first arm whose cumulative probability exceeds u; never a zero-probability arm
    assert [draw_arm(dist, u) for u in (0.0, 0.4999, 0.5, 0.7999, 0.8, 0.9999)] == [
        0,
        0,
        2,
        2,
        3,
        3,
    ]
    assert draw_arm(np.array([0.5, 0.5 - 1e-12, 1e-12, 0.0]), 1.0 - 1e-16) == 2


@pytest.mark.parametrize(("max_run_length", "window"), [(300, 24), (20, 8)])
def test_online_bocd_equals_batch_bit_for_bit(max_run_length: int, window: int) -> None:
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(0, 0.01, 400), rng.normal(0.002, 0.04, 300)])
    x[0] = np.nan
    x[123] = np.nan  # a gap: posterior unchanged, value repeated
    batch = bocd_changepoint_prob(x, 1 / 200, max_run_length, window=window, prior_var=1e-4)
    online = OnlineBocd(1 / 200, max_run_length, window=window, prior_var=1e-4)
    got = np.array([online.update(v) for v in x])
    np.testing.assert_array_equal(got, batch)
    assert got[350:400].max() < 0.7 < got[400:410].max()  # the volatility jump is seen


def test_online_bocd_validates_like_batch() -> None:
    with pytest.raises(ValueError, match="hazard"):
        OnlineBocd(0.0, 10)
    with pytest.raises(ValueError, match="inf"):
        OnlineBocd(0.01, 10).update(float("inf"))
