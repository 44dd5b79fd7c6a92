"""Paired moving-block bootstrap for any statistic of two aligned return series.

Gates compare a model with a baseline on the *same* held-out bars ("CVaR of the sizer vs
the volatility-targeting rule", "DR value of the policy vs the best arm"). Resampling both
series with the same block indices keeps their pairing, so the interval is that of the
difference, not of two independent noises; blocks of consecutive bars keep the serial
correlation (volatility clustering, overlapping reward horizons) that an i.i.d. bootstrap
would ignore and so make intervals too narrow. Intervals are percentile intervals.

The power figure says how large a true lift the held-out span could detect at all: with
bootstrap s.d. ``sd`` of the statistic, a one-sided test at ``alpha`` has power ``power``
for lifts of at least ``(z_{1-alpha} + z_power) * sd`` (2.49 sd at 5 % / 80 %).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from pipelines.evaluation.ope import block_bootstrap_starts, resample_indices

PairedStat = Callable[[np.ndarray, np.ndarray], float]


class Interval(NamedTuple):
    """A statistic with its two-sided percentile interval."""

    value: float
    low: float
    high: float


class LowerBound(NamedTuple):
    """A statistic, its one-sided lower confidence bound and its bootstrap s.d."""

    value: float
    lower: float
    sd: float


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """``mean(a) - mean(b)``: the lift of ``a`` over ``b`` per period."""
    return float(np.mean(a) - np.mean(b))


def _pair(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.size != y.size or x.size == 0:
        raise ValueError(f"a and b must be paired and non-empty, got lengths {x.size}, {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("a and b must be finite")
    return x, y


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def paired_bootstrap(
    a: npt.ArrayLike, b: npt.ArrayLike, stat: PairedStat, block: int, n: int, seed: int
) -> np.ndarray:
    """``n`` replicates of ``stat(a*, b*)`` on moving-block resamples shared by ``a`` and ``b``."""
    x, y = _pair(a, b)
    starts = block_bootstrap_starts(x.size, block, n, np.random.default_rng(seed))
    return np.array(
        [stat(x[i], y[i]) for i in resample_indices(starts, block, x.size)], dtype=np.float64
    )


def paired_ci(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    stat: PairedStat,
    block: int,
    n: int,
    level: float,
    seed: int,
) -> Interval:
    """``stat(a, b)`` with its two-sided ``level`` block-bootstrap percentile interval."""
    _check_level(level)
    x, y = _pair(a, b)
    reps = paired_bootstrap(x, y, stat, block, n, seed)
    q = 100.0 * np.array([(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    low, high = np.percentile(reps, q)
    return Interval(float(stat(x, y)), float(low), float(high))


def paired_lower_bound(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    stat: PairedStat,
    block: int,
    n: int,
    level: float,
    seed: int,
) -> LowerBound:
    """``stat(a, b)`` with its one-sided ``level`` lower bound (the ``1 - level`` percentile).

    A gate "the lift is above zero at 95 %" passes when ``lower > 0``. ``sd`` is the
    replicates' standard deviation, the input of :func:`minimum_detectable_effect`.
    """
    _check_level(level)
    x, y = _pair(a, b)
    reps = paired_bootstrap(x, y, stat, block, n, seed)
    lower = float(np.percentile(reps, 100.0 * (1.0 - level)))
    return LowerBound(float(stat(x, y)), lower, float(reps.std(ddof=1)) if n > 1 else 0.0)


def minimum_detectable_effect(sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true lift a one-sided level-``alpha`` test detects with probability ``power``.

    ``(z_{1-alpha} + z_power) * sd``; with the defaults 2.486 * sd. A held-out span whose
    MDE is larger than any lift worth having cannot tell a useful model from a useless one.
    """
    if sd < 0:
        raise ValueError(f"sd must be >= 0, got {sd}")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError("alpha and power must be in (0, 1)")
    return float((norm.ppf(1.0 - alpha) + norm.ppf(power)) * sd)
