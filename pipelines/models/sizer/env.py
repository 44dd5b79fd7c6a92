"""The sizing environment: scale one strategy's position with a multiplier in [0.1, 2.0].

At bar ``t`` the agent sees the (standardised) features plus the strategy's signal ``s_t`` and
picks ``a_t`` in ``[-1, 1]``; the environment maps it to ``m_t = 0.1 + (a_t + 1) * 0.95``,
holds ``p_t = m_t * s_t`` over the next bar and earns

    reward_t = scale * (p_t * r_{t+1} - cost * |p_t - p_{t-1}|)

An episode is a random window of ``window`` consecutive bars of one symbol (a window never
crosses symbols) and ends by termination, so a path's return is exactly the window's P&L.
The action box is symmetric because SB3's checker warns on asymmetric boxes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

MULT_LOW = 0.1
MULT_HIGH = 2.0


def action_to_multiplier(action: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map actions in [-1, 1] (clipped first) to multipliers in [0.1, 2.0]."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    return MULT_LOW + (a + 1.0) * 0.5 * (MULT_HIGH - MULT_LOW)


def window_starts(block_ids: npt.ArrayLike, window: int) -> npt.NDArray[np.int64]:
    """Every row where a ``window``-bar episode fits inside one contiguous block (symbol)."""
    ids = np.asarray(block_ids)
    n = ids.size
    if n < window:
        return np.empty(0, dtype=np.int64)
    starts = np.arange(n - window + 1)
    return starts[ids[starts] == ids[starts + window - 1]].astype(np.int64)


class SizingEnv(gym.Env[npt.NDArray[np.float32], npt.NDArray[np.float32]]):
    """Random windows of a sized strategy; see the module docstring for the reward.

    Parameters
    ----------
    obs : float32 [T, D] observations (features and the signal, already scaled).
    signal : [T] strategy position in {-1, 0, 1} at each bar.
    next_return : [T] simple return from bar t to t+1.
    block_ids : [T] id of the contiguous block (symbol) of each row; rows sorted within it.
    window : episode length in bars.
    cost : cost per unit of position change (0.0005 = 5 bp).
    reward_scale : multiplies the P&L so rewards are O(1) for PPO.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self,
        obs: npt.NDArray[np.float32],
        signal: npt.ArrayLike,
        next_return: npt.ArrayLike,
        block_ids: npt.ArrayLike,
        window: int = 64,
        cost: float = 0.0005,
        reward_scale: float = 100.0,
    ) -> None:
        super().__init__()
        self._obs = np.ascontiguousarray(obs, dtype=np.float32)
        self._signal = np.asarray(signal, dtype=np.float64)
        self._ret = np.asarray(next_return, dtype=np.float64)
        n = self._obs.shape[0]
        if self._signal.shape != (n,) or self._ret.shape != (n,):
            raise ValueError("obs, signal and next_return must have the same number of rows")
        if not np.all(np.isfinite(self._obs)) or not np.all(np.isfinite(self._ret)):
            raise ValueError("obs and next_return must be finite")
        self._starts = window_starts(block_ids, window)
        if self._starts.size == 0:
            raise ValueError(f"no block has {window} rows for one episode")
        self.window = window
        self.cost = cost
        self.reward_scale = reward_scale
        # The env only ever shows its own rows, so their range is an exact, finite box.
        self.observation_space = spaces.Box(
            self._obs.min(axis=0), self._obs.max(axis=0), (self._obs.shape[1],), np.float32
        )
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._t = 0
        self._k = 0
        self._pos = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        self._t = int(self._starts[self.np_random.integers(self._starts.size)])
        self._k = 0
        self._pos = 0.0
        return self._obs[self._t].copy(), {"t": self._t}

    def step(
        self, action: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        a = min(max(float(np.asarray(action).reshape(-1)[0]), -1.0), 1.0)
        mult = MULT_LOW + (a + 1.0) * 0.5 * (MULT_HIGH - MULT_LOW)
        pos = mult * self._signal[self._t]
        pnl = pos * self._ret[self._t] - self.cost * abs(pos - self._pos)
        self._pos = pos
        info = {"t": self._t, "multiplier": mult, "pnl": pnl}
        self._k += 1
        terminated = self._k >= self.window
        if not terminated:
            self._t += 1
        obs = self._obs[self._t].copy()  # callers keep observations; never hand out a view
        return obs, float(self.reward_scale * pnl), terminated, False, info
