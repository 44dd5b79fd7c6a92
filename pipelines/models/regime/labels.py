"""Training targets for the regime classifier.

On synthetic bars the generator's true regime is the target. Real bars carry no truth, so a
forward-looking rule names the regime that *followed* each bar (see ``rule_labels``). The rule
looks ahead by design: it is a target only, never a feature, and every evaluation that uses
it purges ``horizon`` bars between training and validation so no label window straddles them.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN

logger = logging.getLogger(__name__)

#: Marks a row without a label (the rule's last ``horizon`` bars, or its trailing warm-up).
NO_LABEL = -1

TREND_UP = REGIMES.index("TREND_UP")
TREND_DOWN = REGIMES.index("TREND_DOWN")
RANGE = REGIMES.index("RANGE")
PANIC = REGIMES.index("PANIC")


def _rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Sample std over the trailing ``window`` values ending at each index (NaN before)."""
    return pd.Series(x).rolling(window, min_periods=window).std(ddof=1).to_numpy()


def _rolling_robust_vol(r: np.ndarray, window: int) -> np.ndarray:
    """Trailing robust vol, ``median(|r|) / 0.6745`` over ``window`` returns (NaN before).

    The median keeps the reference at the symbol's normal level while a burst shorter than
    half the window is inside it, so a long panic is still labelled a panic at its end.
    """
    med = pd.Series(np.abs(r)).rolling(window, min_periods=window).median().to_numpy()
    return med / 0.6745


def rule_labels_1d(
    close: np.ndarray,
    horizon: int,
    trend_z: float = 1.0,
    panic_vol_ratio: float = 2.0,
    vol_window: int = 720,
) -> np.ndarray:
    """The forward-looking rule on one series of closes; int8 classes, ``NO_LABEL`` when unknown.

    With ``r`` the 1-bar log returns, ``sigma_t`` the robust vol (``median |r| / 0.6745``) of the
    ``vol_window`` returns ending at ``t`` (the symbol's normal level), the forward return
    ``F_t = log(c_{t+h} / c_t)`` and the forward realized vol ``V_t`` of ``r_{t+1..t+h}``:

    * ``PANIC``      if ``V_t > panic_vol_ratio * sigma_t`` (volatility explodes; checked first),
    * ``TREND_UP``   elif ``F_t >  trend_z * sigma_t * sqrt(h)``,
    * ``TREND_DOWN`` elif ``F_t < -trend_z * sigma_t * sqrt(h)``,
    * ``RANGE``      otherwise.

    Scaling by the trailing vol makes the rule unit-free, so one threshold serves every symbol.
    """
    c = np.asarray(close, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError(f"close must be 1-D, got shape {c.shape}")
    if horizon < 1 or vol_window < 2:
        raise ValueError("horizon must be >= 1 and vol_window >= 2")
    if (c <= 0).any() or not np.isfinite(c).all():
        raise ValueError("close must be finite and > 0")
    n = c.shape[0]
    out = np.full(n, NO_LABEL, dtype=np.int8)
    if n <= horizon + 1:
        return out
    logc = np.log(c)
    r = np.concatenate([[np.nan], np.diff(logc)])
    sigma = _rolling_robust_vol(r, vol_window)
    fwd_ret = np.full(n, np.nan)
    fwd_ret[: n - horizon] = logc[horizon:] - logc[: n - horizon]
    fwd_vol = np.full(n, np.nan)
    if horizon >= 2:
        # std of r[t+1 .. t+h] is the trailing std at t+h, shifted back by h.
        fwd_vol[: n - horizon] = _rolling_std(r, horizon)[horizon:]
    else:
        fwd_vol[: n - horizon] = np.abs(r[horizon:])
    ok = np.isfinite(sigma) & np.isfinite(fwd_ret) & np.isfinite(fwd_vol) & (sigma > 0)
    band = trend_z * sigma * np.sqrt(horizon)
    labels = np.full(n, RANGE, dtype=np.int8)
    labels[fwd_ret > band] = TREND_UP
    labels[fwd_ret < -band] = TREND_DOWN
    labels[fwd_vol > panic_vol_ratio * sigma] = PANIC
    out[ok] = labels[ok]
    return out


def rule_labels(
    bars: pd.DataFrame,
    horizon: int,
    trend_z: float = 1.0,
    panic_vol_ratio: float = 2.0,
    vol_window: int = 720,
) -> pd.Series:
    """``rule_labels_1d`` per symbol, aligned to ``bars``' index (int8, ``NO_LABEL`` if unknown)."""
    out = pd.Series(NO_LABEL, index=bars.index, dtype=np.int8)
    for _, g in bars.groupby("symbol", sort=True):
        g = g.sort_values("ts")
        out.loc[g.index] = rule_labels_1d(
            g["close"].to_numpy(), horizon, trend_z, panic_vol_ratio, vol_window
        )
    return out


def regime_labels(
    bars: pd.DataFrame,
    horizon: int,
    *,
    use_true_regime: bool = True,
    trend_z: float = 1.0,
    panic_vol_ratio: float = 2.0,
    vol_window: int = 720,
) -> tuple[pd.Series, str]:
    """The target for each bar and where it came from (``"true_regime"`` or ``"rule"``)."""
    if use_true_regime and TRUE_REGIME_COLUMN in bars.columns:
        y = bars[TRUE_REGIME_COLUMN].astype(np.int8)
        bad = ~y.isin(range(len(REGIMES)))
        if bad.any():
            raise ValueError(
                f"column {TRUE_REGIME_COLUMN!r} holds values outside 0..{len(REGIMES) - 1} "
                f"(first at row {bars.index[bad.to_numpy()][0]})"
            )
        return y, "true_regime"
    logger.info("no true regime column: using the forward-looking rule (h=%d)", horizon)
    return rule_labels(bars, horizon, trend_z, panic_vol_ratio, vol_window), "rule"
