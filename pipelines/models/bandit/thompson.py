"""Beta-Bernoulli Thompson sampling per (arm, regime): the simple, robust companion.

Each (regime, arm) cell keeps Beta(a + wins, b + losses), a win being a reward above zero.
It needs no features and no training run: a bot can update it online from its own trade
log, and it is the fallback when the neural scorer is missing, stale or refused. The
regime comes from the regime classifier in the bot; for training and evaluation here it
comes from ``proxy_regimes``, a causal rule, so the companion never sees the generator's
true regimes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.data.schema import REGIMES


def proxy_regimes(bars: pd.DataFrame, trend_window: int = 48, vol_window: int = 24) -> pd.Series:
    """Causal rule regime per bar (index into ``REGIMES``), computed per symbol.

    PANIC when short-term volatility is above twice its trailing median; otherwise
    TREND_UP / TREND_DOWN when the ``trend_window`` return exceeds one sigma of that window;
    else RANGE. Warm-up rows are RANGE.
    """
    out = pd.Series(REGIMES.index("RANGE"), index=bars.index, dtype=np.int8)
    for _, group in bars.groupby("symbol", sort=True):
        group = group.sort_values("ts", kind="stable")
        logp = np.log(group["close"])
        r1 = logp.diff()
        vol = r1.rolling(vol_window, min_periods=vol_window).std()
        calm = vol.rolling(20 * vol_window, min_periods=vol_window).median()
        trend = (logp - logp.shift(trend_window)) / (vol * np.sqrt(trend_window))
        reg = np.full(len(group), REGIMES.index("RANGE"), dtype=np.int8)
        reg[(trend > 1.0).to_numpy()] = REGIMES.index("TREND_UP")
        reg[(trend < -1.0).to_numpy()] = REGIMES.index("TREND_DOWN")
        reg[(vol > 2.0 * calm).to_numpy()] = REGIMES.index("PANIC")
        out.loc[group.index] = reg
    return out


class BetaThompson:
    """Thompson sampling with a Beta(a, b) prior per (regime, arm) cell.

    Parameters
    ----------
    n_arms, n_regimes : table size.
    prior_a, prior_b : Beta prior pseudo-counts of wins and losses.
    """

    def __init__(
        self, n_arms: int, n_regimes: int = len(REGIMES), prior_a: float = 1.0, prior_b: float = 1.0
    ) -> None:
        self.n_arms = n_arms
        self.n_regimes = n_regimes
        self.prior_a = prior_a
        self.prior_b = prior_b

    def fit(self, action: np.ndarray, regime: np.ndarray, reward: np.ndarray) -> BetaThompson:
        """Count wins (reward > 0) and losses per cell from logged decisions."""
        if self.prior_a <= 0 or self.prior_b <= 0:
            raise ValueError("prior_a and prior_b must be > 0")
        action = np.asarray(action, dtype=np.int64)
        regime = np.asarray(regime, dtype=np.int64)
        reward = np.asarray(reward, dtype=np.float64)
        if not len(action) == len(regime) == len(reward):
            raise ValueError("action, regime and reward need the same length")
        if len(action) and (action.min() < 0 or action.max() >= self.n_arms):
            raise ValueError(f"actions must be in [0, {self.n_arms})")
        if len(regime) and (regime.min() < 0 or regime.max() >= self.n_regimes):
            raise ValueError(f"regimes must be in [0, {self.n_regimes})")
        win = reward > 0
        self.wins_ = np.zeros((self.n_regimes, self.n_arms))
        self.losses_ = np.zeros((self.n_regimes, self.n_arms))
        np.add.at(self.wins_, (regime[win], action[win]), 1.0)
        np.add.at(self.losses_, (regime[~win], action[~win]), 1.0)
        return self

    def update(self, action: int, regime: int, reward: float) -> BetaThompson:
        """Online update with one observed decision (what the bot does after each trade)."""
        self._check_fitted()
        if reward > 0:
            self.wins_[regime, action] += 1.0
        else:
            self.losses_[regime, action] += 1.0
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "wins_"):
            raise RuntimeError("BetaThompson is not fitted; call fit() first")

    @property
    def alpha_(self) -> np.ndarray:
        return self.prior_a + self.wins_

    @property
    def beta_(self) -> np.ndarray:
        return self.prior_b + self.losses_

    def posterior_mean(self, regime: np.ndarray) -> np.ndarray:
        """[N, K] posterior win probability of each arm in each row's regime."""
        self._check_fitted()
        r = np.asarray(regime, dtype=np.int64)
        return (self.alpha_ / (self.alpha_ + self.beta_))[r]

    def select_action(self, regime: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[N] arm per row: argmax of one Beta draw per arm in the row's regime."""
        self._check_fitted()
        r = np.asarray(regime, dtype=np.int64)
        return np.argmax(rng.beta(self.alpha_[r], self.beta_[r]), axis=1)

    def greedy(self, regime: np.ndarray) -> np.ndarray:
        """[N] arm with the highest posterior mean win rate in the row's regime."""
        return np.argmax(self.posterior_mean(regime), axis=1)

    def to_json(self, path: Path, arm_names: list[str]) -> Path:
        """Write the table for the bot: alpha/beta per regime and arm."""
        self._check_fitted()
        table = {
            "prior": {"a": self.prior_a, "b": self.prior_b},
            "win": "reward > 0",
            "arms": arm_names,
            "regimes": list(REGIMES[: self.n_regimes]),
            "alpha": self.alpha_.tolist(),
            "beta": self.beta_.tolist(),
        }
        path.write_text(json.dumps(table, indent=1, sort_keys=True), encoding="utf-8")
        return path
