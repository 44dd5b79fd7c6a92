"""The 12 strategy arms: parameterised, vectorized rule strategies, three per family.

Every rule maps one symbol's bars (sorted by ``ts``) to a position in {-1, 0, +1} per bar and
is *causal*: the value at bar t uses bars up to and including t only (rolling windows look
back, exponential averages are the recursive kind, nothing is shifted backwards). While a
rule's look-back is still filling up it is flat (0), so a signal never depends on how much
history came before the window.

Families and their arms (the bot's S1-S14 map onto these families; see docs/strategies.md):

* ``ema_cross``: long when the fast EMA is above the slow EMA, short when below.
* ``mean_reversion``: fade stretched prices (return z-score, Bollinger band, RSI).
* ``breakout``: follow a break of a recent range (Donchian, ATR channel, volume-confirmed).
* ``momentum``: follow the sign of a past return (rate of change, time-series momentum).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

FAMILIES: Final = ("ema_cross", "mean_reversion", "breakout", "momentum")


def _ema(x: pd.Series, span: int) -> pd.Series:
    """Recursive EMA (``adjust=False``): prefix-stable, so causal by construction."""
    return x.ewm(span=span, adjust=False, min_periods=span).mean()


def _sign(x: pd.Series | np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.sign(np.asarray(x, dtype=np.float64)), nan=0.0)


def _hold(events: pd.Series, limit: int | None = None) -> np.ndarray:
    """Turn sparse entry/exit events (+1, -1, 0; NaN = no event) into a held position."""
    held = events.ffill(limit=limit) if limit is not None else events.ffill()
    return held.fillna(0.0).to_numpy()


def _atr(bars: pd.DataFrame, window: int) -> pd.Series:
    prev_close = bars["close"].shift(1)
    true_range = pd.concat(
        [
            bars["high"] - bars["low"],
            (bars["high"] - prev_close).abs(),
            (bars["low"] - prev_close).abs(),
        ],
        axis=1,
    ).max(axis=1)
    return true_range.ewm(alpha=1.0 / window, adjust=False, min_periods=window).mean()


# --------------------------------------------------------------------------- ema cross
def ema_cross(bars: pd.DataFrame, fast: int, slow: int) -> np.ndarray:
    """+1 while EMA(fast) > EMA(slow), -1 while below (S1-S3 style trend following)."""
    close = bars["close"]
    return _sign(_ema(close, fast) - _ema(close, slow))


# ----------------------------------------------------------------------- mean reversion
def return_zscore(bars: pd.DataFrame, lookback: int, vol_window: int, entry: float) -> np.ndarray:
    """Fade a ``lookback``-bar log return that is more than ``entry`` sigmas from zero.

    Sigma is the rolling std of 1-bar log returns over ``vol_window`` bars, scaled by
    sqrt(lookback); short over-extensions in a choppy market tend to give some back.
    """
    logp = np.log(bars["close"])
    ret1 = logp.diff()
    sigma = ret1.rolling(vol_window, min_periods=vol_window).std() * np.sqrt(lookback)
    z = (logp - logp.shift(lookback)) / sigma
    out = np.where(z > entry, -1.0, np.where(z < -entry, 1.0, 0.0))
    return np.where(np.isfinite(z.to_numpy()), out, 0.0)


def bollinger(bars: pd.DataFrame, window: int, width: float) -> np.ndarray:
    """Long below the lower band, short above the upper; flat once back inside the mid-line.

    Entry on a close outside ``SMA +- width * std``; the position is held until the close
    crosses the moving average (the classic Bollinger reversion exit).
    """
    close = bars["close"]
    mid = close.rolling(window, min_periods=window).mean()
    sd = close.rolling(window, min_periods=window).std()
    upper, lower = mid + width * sd, mid - width * sd
    events = pd.Series(np.nan, index=close.index)
    above_mid = close >= mid
    crossed_mid = above_mid != above_mid.shift(1)
    events[crossed_mid & mid.notna() & mid.shift(1).notna()] = 0.0
    events[close < lower] = 1.0
    events[close > upper] = -1.0
    return _hold(events)


def rsi(bars: pd.DataFrame, window: int, low: float, high: float) -> np.ndarray:
    """Wilder's RSI: long below ``low`` (oversold), short above ``high`` (overbought)."""
    delta = bars["close"].diff()
    gain = delta.clip(lower=0).ewm(alpha=1.0 / window, adjust=False, min_periods=window).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1.0 / window, adjust=False, min_periods=window).mean()
    value = 100.0 - 100.0 / (1.0 + gain / loss.replace(0.0, np.nan))
    value = value.where(loss != 0.0, 100.0).where(gain.notna())
    out = np.where(value < low, 1.0, np.where(value > high, -1.0, 0.0))
    return np.where(value.notna().to_numpy(), out, 0.0)


# ----------------------------------------------------------------------------- breakout
def donchian(bars: pd.DataFrame, window: int) -> np.ndarray:
    """Stop-and-reverse on a close beyond the previous ``window`` bars' high / low (turtle)."""
    upper = bars["high"].shift(1).rolling(window, min_periods=window).max()
    lower = bars["low"].shift(1).rolling(window, min_periods=window).min()
    events = pd.Series(np.nan, index=bars.index)
    events[bars["close"] > upper] = 1.0
    events[bars["close"] < lower] = -1.0
    return _hold(events)


def atr_channel(bars: pd.DataFrame, window: int, mult: float) -> np.ndarray:
    """Enter beyond ``EMA +- mult * ATR`` (Keltner-style); exit when the close crosses the EMA."""
    close = bars["close"]
    mid = _ema(close, window)
    atr = _atr(bars, window)
    events = pd.Series(np.nan, index=close.index)
    above_mid = close >= mid
    crossed_mid = (above_mid != above_mid.shift(1)) & mid.notna() & mid.shift(1).notna()
    events[crossed_mid] = 0.0
    events[close > mid + mult * atr] = 1.0
    events[close < mid - mult * atr] = -1.0
    return _hold(events)


def volume_breakout(bars: pd.DataFrame, window: int, volume_mult: float, hold: int) -> np.ndarray:
    """A range break only counts on heavy volume; the position is held for ``hold`` bars."""
    upper = bars["high"].shift(1).rolling(window, min_periods=window).max()
    lower = bars["low"].shift(1).rolling(window, min_periods=window).min()
    avg_volume = bars["volume"].shift(1).rolling(window, min_periods=window).mean()
    heavy = bars["volume"] > volume_mult * avg_volume
    events = pd.Series(np.nan, index=bars.index)
    events[heavy & (bars["close"] > upper)] = 1.0
    events[heavy & (bars["close"] < lower)] = -1.0
    return _hold(events, limit=hold - 1)


# ----------------------------------------------------------------------------- momentum
def rate_of_change(bars: pd.DataFrame, lookback: int, deadband: float) -> np.ndarray:
    """Sign of the ``lookback``-bar return when it exceeds ``deadband`` sigmas (else flat)."""
    logp = np.log(bars["close"])
    sigma = logp.diff().rolling(4 * lookback, min_periods=4 * lookback).std() * np.sqrt(lookback)
    z = (logp - logp.shift(lookback)) / sigma
    out = np.where(z > deadband, 1.0, np.where(z < -deadband, -1.0, 0.0))
    return np.where(np.isfinite(z.to_numpy()), out, 0.0)


def ts_momentum(bars: pd.DataFrame, lookback: int) -> np.ndarray:
    """Time-series momentum (Moskowitz, Ooi & Pedersen 2012): the sign of the past return."""
    logp = np.log(bars["close"])
    return _sign(logp - logp.shift(lookback))


# ------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class ArmSpec:
    """One arm: a named rule with fixed parameters, and the family it belongs to."""

    name: str
    family: str
    rule: Callable[..., np.ndarray]
    params: dict[str, float | int] = field(default_factory=dict)
    legacy: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family must be one of {FAMILIES}, got {self.family}")

    def signal(self, bars: pd.DataFrame) -> np.ndarray:
        """Position per bar of one symbol's sorted bars, int8 in {-1, 0, 1}."""
        return np.asarray(self.rule(bars, **self.params), dtype=np.int8)


ARMS: Final[tuple[ArmSpec, ...]] = (
    ArmSpec("ema_8_21", "ema_cross", ema_cross, {"fast": 8, "slow": 21}, "S1"),
    ArmSpec("ema_12_48", "ema_cross", ema_cross, {"fast": 12, "slow": 48}, "S2"),
    ArmSpec("ema_24_120", "ema_cross", ema_cross, {"fast": 24, "slow": 120}, "S3"),
    ArmSpec(
        "mr_zscore_3",
        "mean_reversion",
        return_zscore,
        {"lookback": 3, "vol_window": 96, "entry": 1.5},
        "S4",
    ),
    ArmSpec("mr_bollinger_20", "mean_reversion", bollinger, {"window": 20, "width": 2.0}, "S5"),
    ArmSpec("mr_rsi_14", "mean_reversion", rsi, {"window": 14, "low": 30.0, "high": 70.0}, "S6"),
    ArmSpec("bo_donchian_48", "breakout", donchian, {"window": 48}, "S8"),
    ArmSpec("bo_atr_20", "breakout", atr_channel, {"window": 20, "mult": 2.0}, "S9"),
    ArmSpec(
        "bo_volume_24",
        "breakout",
        volume_breakout,
        {"window": 24, "volume_mult": 1.5, "hold": 12},
        "S10",
    ),
    ArmSpec("mom_roc_12", "momentum", rate_of_change, {"lookback": 12, "deadband": 0.5}, "S12"),
    ArmSpec("mom_tsmom_48", "momentum", ts_momentum, {"lookback": 48}, "S13"),
    ArmSpec("mom_tsmom_168", "momentum", ts_momentum, {"lookback": 168}, "S14"),
)
