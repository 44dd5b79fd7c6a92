"""The speed-oriented kernels: shared prefix sums and the incremental volume profile.

Each is checked against a plain definition (loops or the simple kernels it replaces), including
the edge cases the fast paths special-case: NaN heads, window edges that stay put for long runs
(flat prices), zero-width windows, ties between bins and (for the numpy reference, which works
in blocks) block boundaries. The compiled profile (``kernels.volume_profile``) and its numpy
oracle (``reference.volume_profile_numpy``) both meet the definition.
"""

from __future__ import annotations

import feature_reference as ref_impl
import numpy as np
import pytest

from pipelines.features import kernels as k


def _naive_profile(
    p: np.ndarray, v: np.ndarray, ref: np.ndarray, n: int, bins: int, t: int
) -> tuple[float, float, float]:
    """The definition, one window at a time, float64 binning; ties go to the lowest bin."""
    wp, wv = p[t - n + 1 : t + 1], v[t - n + 1 : t + 1]
    lo, hi = wp.min(), wp.max()
    width = hi - lo
    scale = bins / width if width > 0 else 0.0
    idx = np.minimum(((wp - lo) * scale).astype(int), bins - 1)
    hist = np.zeros(bins)
    for i, w in zip(idx, wv, strict=True):
        hist[i] += w
    centre = lo + (np.arange(bins) + 0.5) / bins * width
    poc = ref[t] - centre[int(np.argmax(hist))]
    above = [j for j in range(bins) if centre[j] > ref[t]]
    below = [j for j in range(bins) if centre[j] < ref[t]]
    up = centre[max(above, key=lambda j: (hist[j], -j))] if above else hi
    dn = centre[max(below, key=lambda j: (hist[j], -j))] if below else lo
    return poc, max(up - ref[t], 0.0), max(ref[t] - dn, 0.0)


def _series(seed: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.cumsum(rng.normal(0, 0.01, m))
    p[150:260] = p[150]  # a flat stretch: zero-width windows, then one long run of edges
    p[400:430] = np.round(p[400:430], 2)  # repeated levels: ties at bin edges
    v = rng.uniform(1, 100, m)
    v[500:520] = 7.0  # equal volumes: ties between bins
    ref = p + rng.normal(0, 0.004, m)
    return p, v, ref


@pytest.mark.parametrize("chunk", [None, 1, 13, 64, 16384])
def test_volume_profile_matches_definition_at_every_bar(chunk: int | None) -> None:
    """``chunk=None``: the compiled kernel; otherwise the numpy reference with that block size."""
    p, v, ref = _series(3, 700)
    n, bins = 30, 7
    if chunk is None:
        poc, supply, demand = k.volume_profile(p, v, ref, n, bins)
    else:
        poc, supply, demand = ref_impl.volume_profile_numpy(p, v, ref, n, bins, chunk=chunk)
    assert np.isnan(poc[: n - 1]).all() and np.isnan(supply[: n - 1]).all()
    for t in range(n - 1, len(p)):
        want = _naive_profile(p, v, ref, n, bins, t)
        np.testing.assert_allclose((poc[t], supply[t], demand[t]), want, atol=1e-9, err_msg=t)


def test_volume_profile_on_long_series_matches_definition_with_default_blocks() -> None:
    """Many blocks and long incremental runs: the update path keeps its precision."""
    rng = np.random.default_rng(5)
    m, n, bins = 40_000, 100, 12
    p = np.log(100.0) + np.cumsum(rng.normal(0, 0.004, m))
    v = rng.lognormal(9.0, 0.5, m)
    ref = p + rng.normal(0, 0.002, m)
    poc, supply, demand = k.volume_profile(p, v, ref, n, bins)
    for t in np.r_[n - 1 : n + 50, rng.integers(n, m, 400), m - 20 : m]:
        want = _naive_profile(p, v, ref, n, bins, int(t))
        np.testing.assert_allclose((poc[t], supply[t], demand[t]), want, atol=1e-9, err_msg=t)


def test_volume_profile_is_causal_bit_for_bit() -> None:
    p, v, ref = _series(8, 900)
    base = k.volume_profile(p, v, ref, 30, 7)
    rng = np.random.default_rng(1)
    for t in (29, 99, 100, 455, 800):
        p2, v2, r2 = p.copy(), v.copy(), ref.copy()
        p2[t + 1 :] += rng.normal(0, 0.05, len(p) - t - 1)
        v2[t + 1 :] = rng.uniform(1, 1e4, len(p) - t - 1)
        r2[t + 1 :] -= 0.3
        got = k.volume_profile(p2, v2, r2, 30, 7)
        for a, b in zip(base, got, strict=True):
            np.testing.assert_array_equal(a[: t + 1], b[: t + 1])


def test_volume_profile_short_and_flat_inputs() -> None:
    p = np.full(50, 4.0)
    v = np.arange(50, dtype=float)
    poc, supply, demand = k.volume_profile(p, v, p, 20, 12)
    assert np.isnan(poc[:19]).all()
    np.testing.assert_array_equal(poc[19:], 0.0)  # zero width: every centre is lo
    np.testing.assert_array_equal(supply[19:], 0.0)
    np.testing.assert_array_equal(demand[19:], 0.0)
    short = k.volume_profile(p[:10], v[:10], p[:10], 20, 12)
    assert all(np.isnan(x).all() and len(x) == 10 for x in short)


@pytest.mark.parametrize("head", [0, 1, 2])
def test_window_sums_and_moments_equal_the_simple_kernels(head: int) -> None:
    rng = np.random.default_rng(head)
    x = rng.normal(3.0, 1.0, 500)
    x[:head] = np.nan
    ns = (1, 2, 24, 200, 501)
    for n, got in zip(ns, k.window_sums(x, ns, head=head), strict=True):
        np.testing.assert_array_equal(got, k.rolling_sum(x, n))  # bit for bit
    for ddof in (0, 1):
        ns2 = (2, 24, 200)
        for n, (mean, var) in zip(ns2, k.rolling_mean_var(x, ns2, ddof, head), strict=True):
            np.testing.assert_array_equal(var, k.rolling_var(x, n, ddof))
            np.testing.assert_allclose(mean, k.rolling_mean(x, n), rtol=1e-12, atol=1e-12)
            assert np.isnan(mean[: n - 1 + head]).all() and np.isfinite(mean[n - 1 + head :]).all()
