"""CPPO's risk math and the CVaRPPO subclass, checked on buffers worked out by hand.

Like SB3's GAE test: a toy environment whose rewards do not depend on the action, so the
rollout buffer, VaR, CVaR and the penalty of every step are known in advance.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from pipelines.models.sizer.constraint import cvar_rollout, dual_ascent, path_ids, path_returns
from pipelines.models.sizer.cppo import CVaRPPO

EPISODE = 4


class ConstantLossEnv(gym.Env[np.ndarray, np.ndarray]):
    """Every step of env ``k`` pays ``-(k + 1)``; episodes last ``EPISODE`` steps."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._t += 1
        return np.zeros(1, np.float32), -(self.k + 1.0), self._t >= EPISODE, False, {}


def _toy_vec_env() -> DummyVecEnv:
    return DummyVecEnv([partial(ConstantLossEnv, k) for k in range(4)])


def test_path_ids_follow_episode_starts_per_column() -> None:
    starts = np.array([[1, 0], [0, 0], [1, 0], [0, 1]])
    # column 0: rows 0-1 path 0, rows 2-3 path 1; column 1: rows 0-2 path 2, row 3 path 3
    np.testing.assert_array_equal(path_ids(starts), [[0, 2], [0, 2], [1, 2], [1, 3]])
    rewards = np.array([[1.0, -1.0], [2.0, -1.0], [-5.0, -1.0], [0.0, 7.0]])
    _, rets = path_returns(rewards, starts)
    np.testing.assert_allclose(rets, [3.0, -5.0, -3.0, 7.0])


def test_penalty_lands_on_tail_paths_only() -> None:
    starts = np.array([[1, 0], [0, 0], [1, 0], [0, 1]])
    rewards = np.array([[1.0, -1.0], [2.0, -1.0], [-5.0, -1.0], [0.0, 7.0]])
    # path returns 3, -5, -3, 7; alpha 0.5 -> 2 tail paths: VaR = 3, CVaR = (5 + 3) / 2 = 4
    out = cvar_rollout(rewards, starts, alpha=0.5, lam=2.0)
    assert out.var == pytest.approx(3.0)
    assert out.cvar == pytest.approx(4.0)
    assert out.n_paths == 4 and out.n_tail == 1
    # only path 1 (rows 2-3 of column 0) exceeds VaR, by 5 - 3 = 2: penalty 2 / 0.5 * 2 = 8
    expected = np.zeros((4, 2))
    expected[2:, 0] = 8.0
    np.testing.assert_allclose(out.penalty, expected)
    # lam = 0: no penalty at all, but the tail figures are still measured
    assert not cvar_rollout(rewards, starts, 0.5, 0.0).penalty.any()


def test_dual_ascent_rises_when_violated_and_is_projected() -> None:
    assert dual_ascent(1.0, cvar_value=5.0, bound=3.0, lr=0.5, lam_max=10) == pytest.approx(2.0)
    assert dual_ascent(1.0, cvar_value=1.0, bound=3.0, lr=0.25, lam_max=10) == pytest.approx(0.5)
    assert dual_ascent(0.1, cvar_value=0.0, bound=3.0, lr=1.0, lam_max=10) == 0.0
    assert dual_ascent(9.0, cvar_value=100.0, bound=0.0, lr=1.0, lam_max=10) == 10.0


def _collected(model: CVaRPPO) -> None:
    """Fill the rollout buffer once, as ``learn`` does before ``train``."""
    from stable_baselines3.common.callbacks import CallbackList

    model._setup_learn(total_timesteps=model.n_steps * 4, callback=None)
    cb = CallbackList([])
    cb.init_callback(model)
    assert model.env is not None
    assert model.collect_rollouts(model.env, cb, model.rollout_buffer, model.n_steps)


def test_cvarppo_penalises_the_right_steps_of_a_real_buffer() -> None:
    # 4 envs x 8 steps = two 4-step episodes per env; path returns -4,-4,-8,-8,-12,-12,-16,-16
    model = CVaRPPO(
        "MlpPolicy",
        _toy_vec_env(),
        n_steps=2 * EPISODE,
        batch_size=8,
        n_epochs=1,
        gamma=0.9,
        seed=0,
        cvar_alpha=0.375,  # ceil(0.375 * 8) = 3 tail paths: losses 16, 16, 12
        cvar_bound=1.0,
        lambda_lr=0.1,
        lambda_init=0.5,
        device="cpu",
    )
    _collected(model)
    before = model.rollout_buffer.advantages.copy()
    record = model.apply_cvar_constraint()
    assert record["var"] == pytest.approx(12.0)
    assert record["cvar"] == pytest.approx((16 + 16 + 12) / 3)
    assert record["n_tail"] == 2 and record["n_paths"] == 8
    delta = before - model.rollout_buffer.advantages
    # env 3 (loss 16 per episode) is 4 beyond VaR: penalty 0.5 / 0.375 * 4 on all its steps
    np.testing.assert_allclose(delta[:, 3], 0.5 / 0.375 * 4.0, rtol=1e-6)
    np.testing.assert_allclose(delta[:, :3], 0.0)
    # and lambda moved by lr * (CVaR - bound)
    assert model.lambda_ == pytest.approx(0.5 + 0.1 * ((16 + 16 + 12) / 3 - 1.0))


@pytest.mark.slow
def test_lambda_rises_while_violated_and_falls_when_satisfied() -> None:
    common: dict[str, Any] = {
        "n_steps": 2 * EPISODE,
        "batch_size": 16,
        "n_epochs": 1,
        "seed": 0,
        "cvar_alpha": 0.25,
        "lambda_lr": 0.05,
        "device": "cpu",
    }
    # every path loses >= 4, so a bound of 1 is always violated: lambda only goes up
    tight = CVaRPPO("MlpPolicy", _toy_vec_env(), cvar_bound=1.0, **common).learn(6 * 32)
    lams = [h["lambda"] for h in tight.cvar_history_]
    assert len(lams) == 6 and lams[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(lams))
    # a bound of 100 always holds: lambda decays to 0 and stays there
    loose = CVaRPPO("MlpPolicy", _toy_vec_env(), cvar_bound=100.0, lambda_init=3.0, **common).learn(
        6 * 32
    )
    assert loose.lambda_ == 0.0
    assert [h["lambda"] for h in loose.cvar_history_][:2] == [3.0, pytest.approx(0.0)]


def test_cvarppo_is_ppo_and_validates() -> None:
    assert issubclass(CVaRPPO, PPO)
    with pytest.raises(ValueError):
        CVaRPPO("MlpPolicy", _toy_vec_env(), cvar_alpha=1.5)


def test_one_bar_paths_penalise_exactly_the_worst_bars() -> None:
    """window=1 (the default): every step is a path, so the penalty hits the tail bars only."""
    rewards = np.arange(-20.0, 20.0).reshape(10, 4)  # 40 one-bar paths, losses 20 .. -19
    starts = np.ones_like(rewards)
    out = cvar_rollout(rewards, starts, alpha=0.1, lam=2.0)
    assert out.n_paths == 40
    # worst ceil(0.1 * 40) = 4 bars lose 20, 19, 18, 17; VaR is the 4th worst loss
    assert out.cvar == pytest.approx((20 + 19 + 18 + 17) / 4)
    excess = np.maximum(-rewards - out.var, 0.0)
    np.testing.assert_allclose(out.penalty, (2.0 / 0.1) * excess)
    assert np.count_nonzero(out.penalty) == out.n_tail == int(np.count_nonzero(excess))
    assert out.n_tail < 4  # bars at or better than VaR are never pushed down
