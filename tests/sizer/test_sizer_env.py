"""The sizing environment: gymnasium's checker, the reward by hand, windows per symbol."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from pipelines.models.sizer.env import SizingEnv, action_to_multiplier, window_starts


def _env(window: int = 3, cost: float = 0.001, scale: float = 1.0) -> SizingEnv:
    n = 10
    obs = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    signal = np.array([1, 1, -1, 0, 1, 1, 1, -1, -1, 1])
    ret = np.full(n, 0.01)
    blocks = np.array([0] * 5 + [1] * 5)
    return SizingEnv(obs, signal, ret, blocks, window=window, cost=cost, reward_scale=scale)


def test_passes_gymnasium_and_sb3_checkers() -> None:
    check_env(_env(), skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SB3 warns on asymmetric boxes; ours is [-1, 1]
        sb3_check_env(_env(), warn=True)


def test_action_maps_to_multiplier_range() -> None:
    np.testing.assert_allclose(action_to_multiplier([-1.0, 0.0, 1.0]), [0.1, 1.05, 2.0])
    np.testing.assert_allclose(action_to_multiplier([-7.0, 7.0]), [0.1, 2.0])


def test_windows_never_cross_a_symbol() -> None:
    starts = window_starts(np.array([0] * 5 + [1] * 5), 3)
    np.testing.assert_array_equal(starts, [0, 1, 2, 5, 6, 7])
    assert window_starts(np.array([0, 0]), 3).size == 0


def test_reward_by_hand() -> None:
    env = _env(window=3, cost=0.001, scale=100.0)
    env.reset(seed=0)
    env._t = 0  # start the window at row 0 of symbol 0: signals 1, 1, -1
    rewards, mults = [], []
    for action in (1.0, -1.0, 0.0):
        _, r, terminated, truncated, info = env.step(np.array([action], np.float32))
        rewards.append(r)
        mults.append(info["multiplier"])
    assert terminated and not truncated
    np.testing.assert_allclose(mults, [2.0, 0.1, 1.05])
    # positions 2.0, 0.1, -1.05; P&L = pos * 1% - 0.1% * |change| (entry from flat)
    pnl = [2.0 * 0.01 - 0.001 * 2.0, 0.1 * 0.01 - 0.001 * 1.9, -1.05 * 0.01 - 0.001 * 1.15]
    np.testing.assert_allclose(rewards, 100 * np.array(pnl))


def test_episodes_are_seeded_windows_of_fixed_length() -> None:
    a, b = _env(), _env()
    starts_a = [a.reset(seed=s)[1]["t"] for s in range(20)]
    starts_b = [b.reset(seed=s)[1]["t"] for s in range(20)]
    assert starts_a == starts_b
    assert set(starts_a) <= {0, 1, 2, 5, 6, 7} and len(set(starts_a)) > 1
    env = _env(window=3)
    env.reset(seed=3)
    steps = 0
    done = False
    while not done:
        _, _, done, _, _ = env.step(np.zeros(1, np.float32))
        steps += 1
    assert steps == 3


def test_rejects_bad_inputs() -> None:
    obs = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError):
        SizingEnv(obs, np.ones(3), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError):
        SizingEnv(obs, np.ones(4), np.zeros(4), np.zeros(4), window=5)
    with pytest.raises(ValueError):
        SizingEnv(obs, np.ones(4), np.array([0.0, np.nan, 0.0, 0.0]), np.zeros(4), window=2)
