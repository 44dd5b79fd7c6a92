"""Bayesian online changepoint detection (Adams & MacKay 2007) on returns.

Model: within a segment, returns are i.i.d. normal with unknown mean and variance under a
normal-inverse-gamma prior, so the one-step predictive of each run is a Student-t. A constant
hazard ``H`` says a new segment starts on any bar with probability ``H``. The run-length
posterior is truncated at ``R`` run lengths (the last bucket means "at least R observations",
modelled by the most recent ``R``), so the cost is O(T*R) time and O(R) memory.

Convention: ``x_t`` belongs to the run that is current at ``t``; a changepoint at ``t`` means
``x_t`` is the first observation of a new segment and is scored under the prior predictive.
(With the other convention, scoring ``x_t`` under the old runs, P(r_t = 0) equals ``H`` on
every bar and carries no information.) The signal reported per bar is
``P(current segment started within the last `window` bars | x_1..x_t)``: a changepoint that
the data has made evident, summed over the few bars it takes to become evident. It is causal:
the value at ``t`` uses ``x_1..x_t`` only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln

from pipelines.interrupt import checkpoint

logger = logging.getLogger(__name__)


def _logsumexp(v: np.ndarray) -> float:
    """log(sum(exp(v))) for a 1-D array with a finite maximum (scipy's is ~10x slower here)."""
    m = float(v.max())
    return m + math.log(float(np.exp(v - m).sum()))


def check_bocd_params(
    hazard: float, max_run_length: int, window: int, prior_var: float, kappa0: float, alpha0: float
) -> None:
    """The detector's parameter ranges, shared by the batch detector and the bot's online one."""
    if not 0.0 < hazard < 1.0:
        raise ValueError(f"hazard must be in (0, 1), got {hazard}")
    if max_run_length < 2:
        raise ValueError(f"max_run_length must be >= 2, got {max_run_length}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if prior_var <= 0 or kappa0 <= 0 or alpha0 <= 0:
        raise ValueError("prior_var, kappa0 and alpha0 must be > 0")


def bocd_changepoint_prob(
    returns: np.ndarray | Sequence[float],
    hazard: float,
    max_run_length: int,
    *,
    window: int = 24,
    prior_var: float = 1e-4,
    mu0: float = 0.0,
    kappa0: float = 1.0,
    alpha0: float = 2.0,
) -> np.ndarray:
    """Changepoint probability per bar, ``P(run length <= window | x_1..x_t)``.

    Parameters
    ----------
    returns : array [T]
        One-bar (log) returns of one series, oldest first. NaN entries (the first bar of a
        series, gaps) leave the posterior untouched; the value there repeats the last one.
    hazard : float in (0, 1)
        Prior probability of a change on any bar (1/expected segment length).
    max_run_length : int >= 2
        Run lengths kept (R); longer runs share the last bucket.
    window : int >= 1
        A segment whose first bar is at most ``window`` bars old counts as a changepoint.
        The first ``window`` bars of a series are 1.0 by construction (every segment is young).
    prior_var : float > 0
        Prior guess of the return variance, in the units of ``returns`` squared; set it from
        the training span (e.g. the variance of training returns).
    mu0, kappa0, alpha0 : float
        Normal-inverse-gamma prior on (mean, variance); ``beta0 = alpha0 * prior_var``.

    Returns
    -------
    prob : array [T] float64 in [0, 1]
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"returns must be 1-D, got shape {x.shape}")
    check_bocd_params(hazard, max_run_length, window, prior_var, kappa0, alpha0)
    if np.isinf(x).any():
        raise ValueError("returns contain inf")

    size = max_run_length
    beta0 = alpha0 * prior_var
    # Bucket i holds segments with i+1 observations (the last: the most recent `size`).
    alpha_run = alpha0 + 0.5 * np.arange(1, size + 1, dtype=np.float64)
    nu_run = 2.0 * alpha_run
    log_norm_run = gammaln(alpha_run + 0.5) - gammaln(alpha_run) - 0.5 * np.log(nu_run * math.pi)
    nu0 = 2.0 * alpha0
    scale2_0 = beta0 * (kappa0 + 1.0) / (alpha0 * kappa0)
    log_norm0 = (
        math.lgamma(alpha0 + 0.5) - math.lgamma(alpha0) - 0.5 * math.log(nu0 * math.pi * scale2_0)
    )
    log_h, log_1mh = math.log(hazard), math.log1p(-hazard)

    mu = np.full(size, mu0)
    kappa = np.full(size, kappa0)
    beta = np.full(size, beta0)
    log_r = np.full(size, -np.inf)
    n_active = 0  # buckets that can hold mass (grows to `size`)
    k = min(window, size)
    out = np.empty(x.shape[0], dtype=np.float64)
    last = 1.0
    for t, xt in enumerate(x.tolist()):
        if not t & 1023:
            checkpoint()  # ~0.2 s of bars between checks
        if xt != xt:  # NaN: no observation, posterior unchanged
            out[t] = last
            continue
        if n_active == 0:
            log_r[0] = 0.0
        else:
            a = n_active
            m, kp, b = mu[:a], kappa[:a], beta[:a]
            scale2 = b * (kp + 1.0) / (alpha_run[:a] * kp)
            pred = (
                log_norm_run[:a]
                - 0.5 * np.log(scale2)
                - 0.5 * (nu_run[:a] + 1.0) * np.log1p((xt - m) ** 2 / (nu_run[:a] * scale2))
            )
            grow = log_r[:a] + log_1mh + pred
            prior_lp = log_norm0 - 0.5 * (nu0 + 1.0) * math.log1p(
                (xt - mu0) ** 2 / (nu0 * scale2_0)
            )
            if a == size:  # the last bucket absorbs runs that would outgrow it
                grow[-2] = np.logaddexp(grow[-2], grow[-1])
                grow = grow[:-1]
            n_new = grow.shape[0] + 1
            log_r[1:n_new] = grow
            log_r[0] = log_h + prior_lp  # old log_r summed to 1, so the sum over runs drops out
            log_r[:n_new] -= _logsumexp(log_r[:n_new])
        # Sufficient statistics after adding x_t: bucket i+1 from bucket i, bucket 0 from prior.
        a = min(n_active + 1, size)
        km, mm, bm = kappa[: a - 1], mu[: a - 1], beta[: a - 1]
        beta[1:a] = bm + km * (xt - mm) ** 2 / (2.0 * (km + 1.0))
        mu[1:a] = (km * mm + xt) / (km + 1.0)
        kappa[1:a] = km + 1.0
        mu[0] = (kappa0 * mu0 + xt) / (kappa0 + 1.0)
        kappa[0] = kappa0 + 1.0
        beta[0] = beta0 + kappa0 * (xt - mu0) ** 2 / (2.0 * (kappa0 + 1.0))
        n_active = a
        last = float(min(1.0, np.exp(log_r[: min(k, n_active)]).sum()))
        out[t] = last
    return out


def bocd_frame(
    bars: pd.DataFrame,
    hazard: float,
    max_run_length: int,
    *,
    window: int = 24,
    prior_var: float = 1e-4,
    kappa0: float = 1.0,
    alpha0: float = 2.0,
) -> pd.DataFrame:
    """Per-symbol BOCD on 1-bar log returns of ``close``: columns ``ts``, ``symbol``, ``cp_prob``.

    The flow can join this on (symbol, ts) as a signal; each symbol is its own series.
    """
    frames = []
    for symbol, g in bars.sort_values(["symbol", "ts"]).groupby("symbol", sort=True):
        close = g["close"].to_numpy(dtype=np.float64)
        ret = np.concatenate([[np.nan], np.diff(np.log(close))])
        prob = bocd_changepoint_prob(
            ret,
            hazard,
            max_run_length,
            window=window,
            prior_var=prior_var,
            kappa0=kappa0,
            alpha0=alpha0,
        )
        frames.append(
            pd.DataFrame({"ts": g["ts"].reset_index(drop=True), "symbol": symbol, "cp_prob": prob})
        )
    if not frames:
        return pd.DataFrame({"ts": [], "symbol": [], "cp_prob": []})
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class DetectionStats:
    """How a changepoint signal did against known change points."""

    n_changes: int
    detected: int
    mean_delay: float
    median_delay: float
    false_alarms: int
    false_alarms_per_1000: float
    delays: tuple[int, ...] = ()

    @property
    def detection_rate(self) -> float:
        return self.detected / self.n_changes if self.n_changes else float("nan")


def detection_stats(
    prob: np.ndarray,
    change_points: Sequence[int] | np.ndarray,
    threshold: float,
    max_delay: int,
    burn_in: int = 0,
) -> DetectionStats:
    """Score alarms (upward crossings of ``threshold``) against true change points.

    A change at index ``c`` is detected by the first alarm in ``[c, c + max_delay]``; its delay
    is that alarm's index minus ``c``. An alarm that falls in no such window is false. Alarms
    before ``burn_in`` are ignored (the first bars are all "young runs" by construction).
    """
    p = np.asarray(prob, dtype=np.float64)
    above = p >= threshold
    rising = above & ~np.concatenate([[False], above[:-1]])
    alarms = np.flatnonzero(rising)
    alarms = alarms[alarms >= burn_in]
    cps = np.asarray(sorted(int(c) for c in change_points), dtype=np.int64)
    delays: list[int] = []
    explained = np.zeros(alarms.shape[0], dtype=bool)
    for c in cps:
        in_window = (alarms >= c) & (alarms <= c + max_delay)
        explained |= in_window
        hits = alarms[in_window]
        if hits.size:
            delays.append(int(hits[0] - c))
    n_false = int((~explained).sum())
    span = max(p.shape[0] - burn_in, 1)
    return DetectionStats(
        n_changes=int(cps.shape[0]),
        detected=len(delays),
        mean_delay=float(np.mean(delays)) if delays else float("nan"),
        median_delay=float(np.median(delays)) if delays else float("nan"),
        false_alarms=n_false,
        false_alarms_per_1000=1000.0 * n_false / span,
        delays=tuple(delays),
    )
