"""The paired block bootstrap: pairing, serial correlation, coverage, power figure."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.evaluation.bootstrap import (
    mean_difference,
    minimum_detectable_effect,
    paired_bootstrap,
    paired_ci,
    paired_lower_bound,
)


def test_pairing_cancels_common_noise() -> None:
    """a = b + 0.01 exactly: every paired resample has the same lift, the CI is a point."""
    b = np.random.default_rng(0).normal(size=500)
    ci = paired_ci(b + 0.01, b, mean_difference, block=10, n=200, level=0.9, seed=1)
    assert ci.value == pytest.approx(0.01)
    assert ci.low == pytest.approx(0.01) and ci.high == pytest.approx(0.01)


def test_blocks_widen_interval_for_autocorrelated_series() -> None:
    rng = np.random.default_rng(2)
    e = rng.normal(size=4000)
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, e.size):  # AR(1), phi 0.8: the mean's true s.d. is 3x the i.i.d. one
        x[t] = 0.8 * x[t - 1] + e[t]
    zero = np.zeros_like(x)
    iid = paired_bootstrap(x, zero, mean_difference, block=1, n=400, seed=3).std()
    blk = paired_bootstrap(x, zero, mean_difference, block=50, n=400, seed=3).std()
    assert blk > 2.0 * iid
    true_sd = 1.0 / (1 - 0.8) / np.sqrt(x.size)  # long-run s.d. of the mean
    assert blk == pytest.approx(true_sd, rel=0.3)


def test_ci_coverage_near_nominal_iid() -> None:
    rng = np.random.default_rng(4)
    covered = 0
    reps = 200
    for k in range(reps):
        a, b = rng.normal(0.1, 1.0, size=200), rng.normal(0.0, 1.0, size=200)
        ci = paired_ci(a, b, mean_difference, block=1, n=300, level=0.9, seed=k)
        covered += ci.low <= 0.1 <= ci.high
    assert 0.82 <= covered / reps <= 0.97


def test_lower_bound_is_the_one_sided_percentile_and_seeded() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.05, 1, size=1000), rng.normal(0, 1, size=1000)
    lb = paired_lower_bound(a, b, mean_difference, block=5, n=500, level=0.95, seed=6)
    reps = paired_bootstrap(a, b, mean_difference, block=5, n=500, seed=6)
    assert lb.lower == pytest.approx(np.percentile(reps, 5.0))
    assert lb.sd == pytest.approx(reps.std(ddof=1))
    assert lb.lower < lb.value
    assert lb == paired_lower_bound(a, b, mean_difference, block=5, n=500, level=0.95, seed=6)
    # any paired statistic, e.g. a CVaR-like tail mean
    tail = paired_ci(
        a,
        b,
        lambda x, y: float(np.sort(y)[:50].mean() - np.sort(x)[:50].mean()),
        block=5,
        n=200,
        level=0.9,
        seed=7,
    )
    assert tail.low <= tail.value <= tail.high


def test_minimum_detectable_effect() -> None:
    assert minimum_detectable_effect(1.0) == pytest.approx(1.6449 + 0.8416, abs=1e-3)
    assert minimum_detectable_effect(9.0) == pytest.approx(22.38, abs=0.01)  # 9 bps s.d.
    assert minimum_detectable_effect(0.0) == 0.0
    with pytest.raises(ValueError):
        minimum_detectable_effect(-1.0)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="paired"):
        paired_ci([1.0, 2.0], [1.0], mean_difference, 1, 10, 0.9, 0)
    with pytest.raises(ValueError, match="level"):
        paired_ci([1.0, 2.0], [1.0, 2.0], mean_difference, 1, 10, 1.0, 0)
    with pytest.raises(ValueError, match="finite"):
        paired_lower_bound([np.nan, 2.0], [1.0, 2.0], mean_difference, 1, 10, 0.9, 0)
