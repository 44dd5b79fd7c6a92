"""Risk and performance figures on arrays of simple returns: pure functions, no state.

Conventions, kept the same everywhere so figures from different models compare:

- ``returns`` are simple per-period returns (0.01 = +1 %), one per bar or per day.
- VaR and CVaR are reported as **positive losses**: ``var(r, 0.05) = 0.02`` means the 5 % worst
  periods lose at least 2 %. They use the discrete "mean of the worst ``ceil(alpha * n)``
  periods" definition, so they can be checked by hand on a small array.
- Sharpe and Sortino use no risk-free rate and are annualized with ``sqrt(periods_per_year)``.
  Prefer :func:`bars_per_year`, measured from the data's own timestamps, so daily equities
  get ~252, 24x5 FX hourly ~6200 and 24x7 crypto hourly ~8766; :func:`periods_per_year`
  (bar interval on a 365.25-day calendar) is right only for markets that never close.
- Max drawdown is the largest peak-to-trough fall of the compounded equity curve, as a
  positive fraction of the peak.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

#: A calendar year of round-the-clock trading; the default for annualization.
CALENDAR_YEAR = pd.Timedelta(days=365.25)
#: Shortest span :func:`bars_per_year` measures from (a week of daily bars would read 456).
MIN_SPAN = pd.Timedelta(days=28)
#: Largest exponent :func:`annualized_return` reports (exp(700) ~ 1e304, still a finite float).
_MAX_EXP = 700.0


def _as_1d(returns: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(returns, dtype=np.float64).reshape(-1)
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError("returns contain NaN or infinite values")
    return arr


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def tail_count(n: int, alpha: float) -> int:
    """How many of ``n`` periods form the ``alpha`` tail: ``ceil(alpha * n)``, at least one."""
    _check_alpha(alpha)
    if n <= 0:
        raise ValueError("need at least one return")
    # round() first so that 0.05 * 20 counts as exactly 1, not 1.0000000000000002 -> 2
    return max(1, math.ceil(round(alpha * n, 9)))


def var(returns: npt.ArrayLike, alpha: float = 0.05) -> float:
    """Value-at-risk at level ``alpha`` as a positive loss: minus the k-th worst return.

    ``k = ceil(alpha * n)``; with 20 returns and alpha 0.05 it is minus the single worst one.
    """
    r = _as_1d(returns)
    k = tail_count(r.size, alpha)
    return float(-np.partition(r, k - 1)[k - 1])


def cvar(returns: npt.ArrayLike, alpha: float = 0.05) -> float:
    """Conditional value-at-risk (expected shortfall) as a positive loss.

    Minus the mean of the ``ceil(alpha * n)`` worst returns; always ``>= var(returns, alpha)``.
    """
    r = _as_1d(returns)
    k = tail_count(r.size, alpha)
    return float(-np.partition(r, k - 1)[:k].mean())


def periods_per_year(interval: str | pd.Timedelta, year: pd.Timedelta = CALENDAR_YEAR) -> float:
    """The annualization factor for a bar interval: how many bars fit in ``year``.

    ``"1h"`` gives 8766 on the default calendar year, ``"1D"`` gives 365.25.
    """
    step = pd.Timedelta(interval)
    if step <= pd.Timedelta(0):
        raise ValueError(f"interval must be positive, got {interval!r}")
    return float(year / step)


def infer_interval(ts: pd.Series | pd.DatetimeIndex) -> pd.Timedelta:
    """The bar interval of a timestamp column: the median spacing of sorted unique stamps."""
    stamps = pd.Series(pd.DatetimeIndex(pd.unique(pd.Series(ts))).sort_values())
    if len(stamps) < 2:
        raise ValueError("need at least two distinct timestamps to infer the bar interval")
    return pd.Timedelta(stamps.diff().dropna().median())


def bars_per_year(
    ts: pd.Series | pd.DatetimeIndex,
    symbols: pd.Series | npt.ArrayLike | None = None,
    min_span: pd.Timedelta = MIN_SPAN,
) -> float:
    """How many bars a year the data itself has: the annualization factor for its returns.

    Per symbol, ``(n_bars - 1) / (last - first)`` in bars per 365.25-day year, so weekends,
    holidays and exchange hours are counted as the data has them (GOOG daily: 251.7, the
    ``backtesting`` EURUSD hourly sample: 6205) instead of assumed from the bar interval
    (365.25 and 8766). The median over symbols is returned, so one symbol with gaps does
    not set the figure. A span shorter than ``min_span`` raises: a week of daily bars
    (5 bars in 4 days) would claim 456 bars a year.
    """
    stamps = pd.Series(pd.DatetimeIndex(pd.Series(ts).to_numpy()))
    if stamps.isna().any():
        raise ValueError("timestamps contain NaT")
    keys = (
        pd.Series(np.zeros(len(stamps), dtype=np.int64))
        if symbols is None
        else pd.Series(np.asarray(symbols))
    )
    if len(keys) != len(stamps):
        raise ValueError(f"{len(stamps)} timestamps but {len(keys)} symbols")
    rates = []
    for key, g in stamps.groupby(keys.to_numpy(), sort=True):
        u = pd.DatetimeIndex(pd.unique(g)).sort_values()
        span = u[-1] - u[0] if len(u) else pd.Timedelta(0)
        if len(u) < 2 or span < min_span:
            raise ValueError(
                f"symbol {key!r}: {len(u)} bars over {span}; need a span of at least {min_span} "
                "to measure bars per year"
            )
        rates.append((len(u) - 1) / (span / CALENDAR_YEAR))
    return float(np.median(rates))


def sharpe(returns: npt.ArrayLike, ann_factor: float = 1.0) -> float:
    """Mean over sample standard deviation (ddof=1), times ``sqrt(ann_factor)``; 0 if flat."""
    r = _as_1d(returns)
    if r.size < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    if sd <= 0.0:
        return 0.0
    return float(r.mean() / sd * math.sqrt(ann_factor))


def sortino(returns: npt.ArrayLike, ann_factor: float = 1.0) -> float:
    """Mean over downside deviation ``sqrt(mean(min(r, 0)^2))``, times ``sqrt(ann_factor)``.

    Returns 0 when there is no downside at all (the ratio is undefined, not infinite).
    """
    r = _as_1d(returns)
    if r.size == 0:
        return 0.0
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if dd <= 0.0:
        return 0.0
    return float(r.mean() / dd * math.sqrt(ann_factor))


def equity_curve(returns: npt.ArrayLike, start: float = 1.0) -> FloatArray:
    """Compounded equity after each period, starting from ``start``."""
    return np.asarray(start * np.cumprod(1.0 + _as_1d(returns)), dtype=np.float64)


def max_drawdown(returns: npt.ArrayLike) -> float:
    """Largest peak-to-trough fall of the compounded equity (the start counts as a peak)."""
    eq = np.concatenate([[1.0], equity_curve(returns)])
    peak = np.maximum.accumulate(eq)
    return float(np.max(1.0 - eq / peak))


def annualized_return(returns: npt.ArrayLike, ann_factor: float) -> float:
    """Compound annual growth rate: ``prod(1 + r) ** (ann_factor / n) - 1``.

    Computed in log space; a total loss (any ``r <= -1``) gives -1.
    """
    r = _as_1d(returns)
    if r.size == 0:
        return 0.0
    if np.any(r <= -1.0):
        return -1.0
    # in log space: short spans of strong trends overflow prod(1 + r) ** (ann / n)
    exponent = float(np.sum(np.log1p(r))) * ann_factor / r.size
    return float(np.expm1(min(exponent, _MAX_EXP)))


def annualized_log_return(returns: npt.ArrayLike, ann_factor: float) -> float:
    """Mean log return per period times ``ann_factor``: additive, never overflows."""
    r = _as_1d(returns)
    if r.size == 0:
        return 0.0
    if np.any(r <= -1.0):
        return -math.inf
    return float(np.mean(np.log1p(r)) * ann_factor)


def aggregate_returns(returns: npt.ArrayLike, ts: pd.Series, freq: str = "1D") -> FloatArray:
    """Compound per-bar returns into per-``freq`` returns (calendar buckets of ``ts``)."""
    r = _as_1d(returns)
    stamps = pd.DatetimeIndex(pd.Series(ts).to_numpy())
    if len(stamps) != r.size:
        raise ValueError(f"{r.size} returns but {len(stamps)} timestamps")
    grouped = pd.Series(np.log1p(r), index=stamps).groupby(stamps.floor(freq)).sum()
    return np.expm1(grouped.to_numpy(dtype=np.float64))


def turnover(positions: npt.ArrayLike) -> float:
    """Mean absolute position change per period, counting the entry from flat."""
    p = _as_1d(positions)
    if p.size == 0:
        return 0.0
    return float(np.mean(np.abs(np.diff(p, prepend=0.0))))
