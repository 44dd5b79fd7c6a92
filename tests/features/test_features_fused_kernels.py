"""The fused kernels against the single-purpose kernels and numpy expressions they replace.

``emas``/``wilders`` (several recursions in one interleaved pass), ``rsi`` (gains, losses, both
averages and the guarded ratio in one pass), ``true_range`` and the shared sin/cos table of the
time features must all be bit-identical to the step-by-step numpy path, including NaN heads,
windows longer than the series, flat stretches (RSI's 0/0 fill) and irregular timestamps.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.features import compute as C
from pipelines.features import kernels as k


def _walk(seed: int, m: int, flat_every: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.01, m)
    if flat_every:
        steps[(np.arange(m) // flat_every) % 2 == 1] = 0.0  # long flat stretches
    return 100.0 * np.exp(np.cumsum(steps))


@pytest.mark.parametrize("m", [0, 1, 13, 14, 15, 27, 3000])
@pytest.mark.parametrize("start", [0, 1, 25])
def test_emas_and_wilders_equal_one_at_a_time(m: int, start: int) -> None:
    x = _walk(m + start, m)
    x[: min(start, m)] = np.nan
    ns = (12, 20, 26, 1, 200, 14)
    for got, n in zip(k.emas(x, ns, start), ns, strict=True):
        np.testing.assert_array_equal(got, k.ema(x, n, start))
    for got, n in zip(k.wilders(x, ns, start), ns, strict=True):
        np.testing.assert_array_equal(got, k.wilder(x, n, start))


def _rsi_numpy(c: np.ndarray, n: int, fill: float) -> np.ndarray:
    d = k.diff(c, 1)
    gain, loss = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    ag, al = k.wilder(gain, n, start=1), k.wilder(loss, n, start=1)
    return C._div(ag, ag + al, fill=fill)


@pytest.mark.parametrize("m", [0, 1, 14, 15, 51, 4000])
@pytest.mark.parametrize("flat_every", [0, 60])
def test_rsi_equals_numpy_path(m: int, flat_every: int) -> None:
    c = _walk(m + flat_every, m, flat_every)
    got = k.rsi(c, (14, 50), fill=0.5)
    for g, n in zip(got, (14, 50), strict=True):
        want = _rsi_numpy(c, n, 0.5)
        np.testing.assert_array_equal(g, want)
        if m > n:
            assert np.isnan(g[:n]).all() and np.isfinite(g[n:]).all()


def test_rsi_fill_on_an_exactly_flat_series() -> None:
    c = np.full(100, 50.0)
    (got,) = k.rsi(c, (14,), fill=0.5)
    np.testing.assert_array_equal(got[14:], 0.5)
    np.testing.assert_array_equal(got, _rsi_numpy(c, 14, 0.5))


@pytest.mark.parametrize("m", [0, 1, 2, 1000])
def test_true_range_equals_numpy(m: int) -> None:
    rng = np.random.default_rng(m)
    c = _walk(m, m)
    h = c * np.exp(np.abs(rng.normal(0, 0.01, m)))
    lo = c * np.exp(-np.abs(rng.normal(0, 0.01, m)))
    c_prev = k.lag(c, 1)
    want = h - lo
    np.maximum(want, np.abs(h - c_prev), out=want)
    np.maximum(want, np.abs(lo - c_prev), out=want)
    if m:
        want[0] = np.nan
    np.testing.assert_array_equal(k.true_range(h, lo, c), want)


@pytest.mark.parametrize(
    "step, n",
    [(3600, 200_000), (300, 50_000), (86_400, 40_000), (3600, 1000)],
)
def test_time_features_table_equals_direct(step: int, n: int) -> None:
    sec = 1_600_000_000 + step * np.arange(n, dtype=np.int64)
    got = C._time_features(sec)
    want = C._time_angles(sec % 86400, ((sec // 86400) + 3) % 7)
    for name, values in want.items():
        np.testing.assert_array_equal(got[name], values)


def test_time_features_irregular_timestamps() -> None:
    rng = np.random.default_rng(0)
    sec = np.sort(rng.integers(0, 10**9, 60_000))  # nearly every second-of-week distinct
    got = C._time_features(sec)
    want = C._time_angles(sec % 86400, ((sec // 86400) + 3) % 7)
    for name, values in want.items():
        np.testing.assert_array_equal(got[name], values)
    # and the definition itself: Monday 00:00 UTC has angle 0
    monday = np.array([4 * 86400], dtype=np.int64)  # 1970-01-05 was a Monday
    direct = C._time_features(monday)
    assert direct["dow_sin"][0] == 0.0 and direct["hour_cos"][0] == 1.0


def test_first_non_finite_reports_what_argwhere_reports_first() -> None:
    rng = np.random.default_rng(3)
    mat = np.asfortranarray(rng.normal(size=(500, 7)).astype(np.float32))
    assert k.first_non_finite(mat) == (-1, -1)
    for cells in ([(300, 1)], [(300, 5), (120, 6), (120, 2)], [(0, 6), (499, 0)]):
        bad = mat.copy(order="F")
        for i, j in cells:
            bad[i, j] = np.inf if j % 2 else np.nan
        want = tuple(int(v) for v in np.argwhere(~np.isfinite(bad))[0])
        assert k.first_non_finite(bad) == want


def test_safe_div_and_bars_since_change_match_numpy() -> None:
    a = np.array([1.0, 2.0, np.nan, 3.0, 4.0, 0.0])
    b = np.array([2.0, 0.0, 1.0, np.nan, 1e-13, -4.0])
    np.testing.assert_array_equal(k.safe_div(a, b, 0.5), [0.5, 0.5, np.nan, np.nan, 0.5, -0.0])
    state = np.array([np.nan, 1.0, 1.0, -1.0, -1.0, -1.0, 1.0, np.nan, np.nan])
    got = k.bars_since_change(state, start=1)
    np.testing.assert_array_equal(got, [np.nan, 0, 1, 0, 1, 2, 0, 0, 0])
    assert np.isnan(k.bars_since_change(state, start=20)).all()


@pytest.mark.parametrize("m", [0, 1, 14, 15, 101, 3000])
def test_atrs_equal_wilders_of_true_range(m: int) -> None:
    rng = np.random.default_rng(m + 7)
    c = _walk(m, m)
    h = c * np.exp(np.abs(rng.normal(0, 0.01, m)))
    lo = c * np.exp(-np.abs(rng.normal(0, 0.01, m)))
    want = k.wilders(k.true_range(h, lo, c), (14, 100), start=1)
    for got, w in zip(k.atrs(h, lo, c, (14, 100)), want, strict=True):
        np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("head", [0, 1])
def test_rolling_vars_equal_rolling_mean_var(head: int) -> None:
    x = np.log(_walk(head, 5000))
    x[:head] = np.nan
    ns = (1, 24, 72, 200, 6000)
    with np.errstate(divide="ignore", invalid="ignore"):
        for var, (_, want) in zip(
            k.rolling_vars(x, ns, 1, head), k.rolling_mean_var(x, ns, 1, head), strict=True
        ):
            np.testing.assert_array_equal(var, want)


def _sliding(x: np.ndarray, n: int, fn: np.ufunc) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if n <= len(x):
        out[n - 1 :] = fn.reduce(np.lib.stride_tricks.sliding_window_view(x, n), axis=1)
    return out


@pytest.mark.parametrize("shape", ["walk", "down", "up", "flat", "nan"])
def test_rolling_extremes_queue_and_doubling_equal_sliding_window(shape: str) -> None:
    m = 2000
    x = {
        "walk": _walk(1, m),
        "down": np.linspace(10.0, 1.0, m),  # the max leaves the window on every bar
        "up": np.linspace(1.0, 10.0, m),
        "flat": np.full(m, 3.0),
        "nan": _walk(2, m),
    }[shape]
    if shape == "nan":
        x[[0, 700, 701]] = np.nan  # the doubling path, NaN propagated per window
    ns = (50, 20, 1, 3000)
    for op in (np.maximum, np.minimum):
        for got, n in zip(k.rolling_extremes(x, ns, op), ns, strict=True):
            np.testing.assert_array_equal(got, _sliding(x, n, op))
