"""Signals and rewards of the 12 arms on a bars frame (any number of symbols)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.strategies.rules import ARMS

ARM_NAMES: tuple[str, ...] = tuple(a.name for a in ARMS)
ARM_FAMILIES: dict[str, str] = {a.name: a.family for a in ARMS}
N_ARMS: int = len(ARMS)
#: The arm a bot trades when no bandit is live (the engine's default, docs/bot.md): the
#: champion the bandit slot's first challenger must beat.
FALLBACK_ARM: str = "ema_24_120"

_REQUIRED = ("ts", "symbol", "high", "low", "close", "volume")


def _check_bars(bars: pd.DataFrame) -> None:
    missing = [c for c in _REQUIRED if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {missing}")
    if bars.index.has_duplicates:
        raise ValueError("bars index has duplicates; signals are aligned on it")


def _per_symbol(bars: pd.DataFrame) -> list[pd.DataFrame]:
    """One ts-sorted frame per symbol, keeping the caller's index for alignment."""
    return [g.sort_values("ts", kind="stable") for _, g in bars.groupby("symbol", sort=True)]


def compute_signals(bars: pd.DataFrame) -> pd.DataFrame:
    """Position of every arm on every bar.

    Parameters
    ----------
    bars : DataFrame with the bar contract columns, one or more symbols, any row order.

    Returns
    -------
    DataFrame with the same index as ``bars`` and one int8 column per arm (``ARM_NAMES``
    order), values in {-1, 0, 1}. Computed per symbol and causal: row t uses that symbol's
    bars up to and including t only.
    """
    _check_bars(bars)
    out = np.zeros((len(bars), N_ARMS), dtype=np.int8)
    position = pd.Series(np.arange(len(bars)), index=bars.index)
    for group in _per_symbol(bars):
        rows = position.loc[group.index].to_numpy()
        local = group.reset_index(drop=True)
        for j, arm in enumerate(ARMS):
            out[rows, j] = arm.signal(local)
    return pd.DataFrame(out, index=bars.index, columns=list(ARM_NAMES))


def arm_rewards(
    bars: pd.DataFrame,
    signals: pd.DataFrame,
    horizon: int,
    cost_bps: float,
    slippage_bps: float,
) -> pd.DataFrame:
    """Net forward P&L of handing the book to each arm at bar t for ``horizon`` bars.

    Following arm a from the close of bar t means holding its position ``s[t+k]`` over bar
    t+k+1 for k = 0..horizon-1 (each position is the arm's own causal signal), then going
    flat. P&L is the sum of ``s[t+k] * (close[t+k+1] / close[t+k] - 1)``; costs are
    ``(cost_bps + slippage_bps) / 1e4`` per unit of turnover, counting the entry from flat,
    every change of position inside the window and the exit. Rows whose window runs past a
    symbol's last bar are NaN.

    Returns a float64 frame with the same index as ``bars`` and one column per arm.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if cost_bps < 0 or slippage_bps < 0:
        raise ValueError("cost_bps and slippage_bps must be >= 0")
    _check_bars(bars)
    if not signals.index.equals(bars.index) or list(signals.columns) != list(ARM_NAMES):
        raise ValueError("signals must be compute_signals(bars): same index, ARM_NAMES columns")
    unit_cost = (cost_bps + slippage_bps) / 1e4
    out = np.full((len(bars), N_ARMS), np.nan)
    position = pd.Series(np.arange(len(bars)), index=bars.index)
    for group in _per_symbol(bars):
        rows = position.loc[group.index].to_numpy()
        n = len(group)
        if n <= horizon:
            continue
        close = group["close"].to_numpy(dtype=np.float64)
        s = signals.loc[group.index].to_numpy(dtype=np.float64)
        step_ret = close[1:] / close[:-1] - 1.0  # return over bar j+1, held from close j
        gains = np.zeros((n, N_ARMS))
        gains[1:] = np.cumsum(s[:-1] * step_ret[:, None], axis=0)  # gains[j] = sum_{i<j}
        changes = np.zeros((n, N_ARMS))
        changes[1:] = np.cumsum(np.abs(np.diff(s, axis=0)), axis=0)  # sum_{1<=i<=j} |ds_i|
        t = np.arange(n - horizon)
        pnl = gains[t + horizon] - gains[t]
        turnover = (
            np.abs(s[t]) + (changes[t + horizon - 1] - changes[t]) + np.abs(s[t + horizon - 1])
        )
        out[rows[t]] = pnl - unit_cost * turnover
    return pd.DataFrame(out, index=bars.index, columns=list(ARM_NAMES))
