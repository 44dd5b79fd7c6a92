"""The numba kernels against the numpy/scipy versions they replaced (``reference``).

The recursions (EMA, Wilder, EWM) must equal ``scipy.signal.lfilter`` bit for bit (same
expression, same order) including NaN heads before ``start``, short inputs and non-contiguous
views; the compiled volume profile must equal the block-vectorized numpy one on random walks
with flat stretches, repeated levels and equal volumes.
"""

from __future__ import annotations

import feature_reference as ref_impl
import numpy as np
import pytest

from pipelines.features import kernels as k


def _walk(seed: int, m: int, nan_head: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, m)))
    x[:nan_head] = np.nan
    return x


@pytest.mark.parametrize("n", [1, 2, 9, 14, 26, 200])
@pytest.mark.parametrize("start", [0, 1, 25])
def test_ema_and_wilder_equal_lfilter(n: int, start: int) -> None:
    x = _walk(n * 31 + start, 3000, nan_head=start)  # NaN head before ``start``, as RSI/MACD
    for got, want in (
        (k.ema(x, n, start), ref_impl.ema_lfilter(x, n, start)),
        (k.wilder(x, n, start), ref_impl.wilder_lfilter(x, n, start)),
    ):
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got[: start + n - 1]).all() and np.isfinite(got[start + n - 1 :]).all()


@pytest.mark.parametrize("m", [0, 1, 5, 13, 14, 15])
def test_recursions_on_short_inputs(m: int) -> None:
    """Output starts at ``start + n - 1``; inputs shorter than that are all NaN."""
    x = _walk(m, m, nan_head=min(m, 1))
    np.testing.assert_array_equal(k.wilder(x, 13, 1), ref_impl.wilder_lfilter(x, 13, 1))
    np.testing.assert_array_equal(k.ema(x, 14), ref_impl.ema_lfilter(x, 14))
    assert len(k.ema(x, 14)) == m


def test_recursions_accept_strided_and_integer_views() -> None:
    x = _walk(2, 4001)
    view = x[::2]  # non-contiguous
    np.testing.assert_array_equal(k.ema(view, 20), ref_impl.ema_lfilter(view, 20))
    ints = np.arange(1, 500)
    np.testing.assert_array_equal(k.wilder(ints, 14), ref_impl.wilder_lfilter(ints, 14))


@pytest.mark.parametrize("halflife", [1.0, 7.5, 500.0, 1000.0])
def test_ewm_equals_lfilter_and_pandas(halflife: float) -> None:
    import pandas as pd

    x = np.log(_walk(int(halflife), 5000))
    got = k.ewm_mean(x, halflife)
    np.testing.assert_array_equal(got, ref_impl.ewm_mean_lfilter(x, halflife))
    want = pd.Series(x).ewm(halflife=halflife, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_ewm_propagates_a_nan_head_like_lfilter() -> None:
    x = np.log(_walk(4, 300, nan_head=3))
    got = k.ewm_mean(x, 10.0)
    np.testing.assert_array_equal(got, ref_impl.ewm_mean_lfilter(x, 10.0))
    assert np.isnan(got).all()  # a NaN poisons the unbounded recursion, as in scipy
    assert len(k.ewm_mean(np.empty(0), 5.0)) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_volume_profile_equals_numpy_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n, bins = 20_000, 100, 12
    p = np.log(50.0) + np.cumsum(rng.normal(0, 0.004, m))
    p[3000:3400] = p[3000]  # flat: zero-width windows, then long runs of unchanged edges
    p[8000:8300] = np.round(p[8000:8300], 3)  # repeated levels
    v = rng.lognormal(9.0, 0.5, m)
    v[12_000:12_200] = 1000.0  # equal volumes: ties between bins
    v[15_000:15_050] = 0.0  # zero volume: empty-weight bins
    r = p + rng.normal(0, 0.002, m)
    got = k.volume_profile(p, v, r, n, bins)
    want = ref_impl.volume_profile_numpy(p, v, r, n, bins)
    for a, b in zip(got, want, strict=True):
        assert np.isnan(a[: n - 1]).all() and np.isfinite(a[n - 1 :]).all()
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_kernels_are_deterministic() -> None:
    p = np.log(_walk(9, 3000))
    v = np.random.default_rng(9).uniform(1, 10, 3000)
    a = k.volume_profile(p, v, p, 50, 12)
    b = k.volume_profile(p.copy(), v.copy(), p.copy(), 50, 12)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(k.ema(p, 20), k.ema(p.copy(), 20))


@pytest.mark.parametrize("head", [0, 1, 2])
@pytest.mark.parametrize("ddof", [0, 1])
def test_rolling_mean_var_equals_numpy_reference(head: int, ddof: int) -> None:
    """Bit for bit, including windows longer than the series and the n=1, ddof=1 0/0 case."""
    x = np.log(_walk(head + 10 * ddof, 5000))
    x[:head] = np.nan
    ns = (1, 2, 24, 72, 200, 5001)
    got = k.rolling_mean_var(x, ns, ddof, head)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = ref_impl.rolling_mean_var_numpy(x, ns, ddof, head)
    for (gm, gv), (wm, wv) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gm, wm)
        np.testing.assert_array_equal(gv, wv)
