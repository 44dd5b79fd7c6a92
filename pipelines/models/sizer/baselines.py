"""Simple sizers a learned sizer must beat at the same mean leverage.

A sizer that only de-levers cuts tail loss by construction (0.7x everywhere cuts CVaR by
30 %), so a fair comparison holds the average exposure fixed: each baseline is rescaled so
its mean leverage equals the learned sizer's. Two baselines:

* **constant**: the same multiplier on every bar;
* **volatility targeting**: ``m_t = c / sigma_t``, with ``sigma_t`` the realized vol of the
  symbol's last ``window`` 1-bar returns known at bar ``t`` (causal), clamped to the sizer's
  action range [0.1, 2.0]. It is the one-line rule practitioners use to keep risk constant.

The scale ``c`` is solved on the evaluation span so the mean leverages match; it is the
benchmark's only look at that span (one number, the same for every bar), which is what
"at the same mean leverage" asks for. Leverage is measured as exposure,
``mean(m_t * |signal_t|)``, so multipliers on flat bars (which move nothing) count for
nothing; without a signal it is the plain mean multiplier.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.models.sizer.data import NEXT_RETURN_COLUMN, SIGNAL_COLUMN
from pipelines.models.sizer.env import MULT_HIGH, MULT_LOW

FloatArray = npt.NDArray[np.float64]


def _weights(n: int, signal: npt.ArrayLike | None) -> FloatArray:
    if signal is None:
        return np.ones(n)
    w = np.abs(np.asarray(signal, dtype=np.float64).reshape(-1))
    if w.size != n:
        raise ValueError(f"{w.size} signal values for {n} multipliers")
    if w.sum() <= 0:
        raise ValueError("the signal is flat on every bar: mean leverage is undefined")
    return w


def mean_leverage(multipliers: npt.ArrayLike, signal: npt.ArrayLike | None = None) -> float:
    """Mean exposure ``sum(m |s|) / sum(|s|)``; the plain mean when ``signal`` is None."""
    m = np.asarray(multipliers, dtype=np.float64).reshape(-1)
    w = _weights(m.size, signal)
    return float(np.sum(m * w) / np.sum(w))


def match_mean_leverage(
    raw: npt.ArrayLike,
    target: float,
    signal: npt.ArrayLike | None = None,
    low: float = MULT_LOW,
    high: float = MULT_HIGH,
    tol: float = 1e-10,
) -> FloatArray:
    """``clip(c * raw, low, high)`` with ``c`` solved so its mean leverage equals ``target``.

    The clipped mean is continuous and non-decreasing in ``c``, so bisection finds ``c``.
    Raises when ``target`` lies outside ``[low, high]`` or ``raw`` is not positive.
    """
    r = np.asarray(raw, dtype=np.float64).reshape(-1)
    if r.size == 0 or not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError("raw multipliers must be finite and > 0")
    if not low <= target <= high:
        raise ValueError(f"target mean leverage {target} is outside [{low}, {high}]")
    w = _weights(r.size, signal)

    def lev(c: float) -> float:
        return float(np.sum(np.clip(c * r, low, high) * w) / np.sum(w))

    lo_c, hi_c = low / r.max(), high / r.min()  # lev(lo_c) = low, lev(hi_c) = high
    for _ in range(200):
        mid = 0.5 * (lo_c + hi_c)
        if lev(mid) < target:
            lo_c = mid
        else:
            hi_c = mid
        if hi_c - lo_c <= tol * hi_c:
            break
    return np.clip(0.5 * (lo_c + hi_c) * r, low, high)


def constant_multipliers(n: int, target: float) -> FloatArray:
    """The constant sizer: ``target`` on every one of ``n`` bars (within the action range)."""
    if not MULT_LOW <= target <= MULT_HIGH:
        raise ValueError(f"constant multiplier {target} is outside [{MULT_LOW}, {MULT_HIGH}]")
    return np.full(n, float(target))


def causal_realized_vol(table: pd.DataFrame, window: int) -> FloatArray:
    """Per row, the std of the symbol's last ``window`` 1-bar returns known at that bar.

    Row ``t``'s ``next_return`` is the return from ``t`` to ``t+1``, unknown at ``t``; the
    returns known at ``t`` are ``next_return`` of rows ``< t``. Rows with fewer than two known
    returns get NaN. The table must be sorted by (symbol, ts), as ``build_table`` returns it.
    """
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    past = table.groupby("symbol", sort=False)[NEXT_RETURN_COLUMN].shift(1)
    vol = (
        past.groupby(table["symbol"], sort=False)
        .rolling(window, min_periods=2)
        .std(ddof=1)
        .reset_index(level=0, drop=True)
        .sort_index()
    )
    return vol.reindex(table.index).to_numpy(dtype=np.float64)


def vol_target_multipliers(table: pd.DataFrame, target: float, window: int = 48) -> FloatArray:
    """The volatility-targeting sizer at mean leverage ``target`` (exposure-weighted).

    ``m_t ~ 1 / sigma_t`` (:func:`causal_realized_vol`), clamped to [0.1, 2.0] and scaled
    so ``mean_leverage(m, table.signal) == target``. Warm-up rows (under two known returns)
    and zero-vol rows get the median inverse vol, i.e. an average-sized position.
    """
    vol = causal_realized_vol(table, window)
    inv = np.where(np.isfinite(vol) & (vol > 0), 1.0 / np.where(vol > 0, vol, 1.0), np.nan)
    if not np.any(np.isfinite(inv)):
        raise ValueError("no bar has two known returns: realized vol is undefined")
    inv = np.where(np.isfinite(inv), inv, np.nanmedian(inv))
    return match_mean_leverage(inv, target, table[SIGNAL_COLUMN].to_numpy())


def baseline_multipliers(
    table: pd.DataFrame, multipliers: npt.ArrayLike, window: int = 48
) -> dict[str, FloatArray]:
    """Both baselines at the mean leverage of ``multipliers`` (a learned sizer's, per row)."""
    target = mean_leverage(multipliers, table[SIGNAL_COLUMN].to_numpy())
    return {
        "constant": constant_multipliers(len(table), target),
        "vol_target": vol_target_multipliers(table, target, window),
    }
