"""Vectorized, causal building blocks for the features: no per-bar Python loops.

Every kernel maps a 1-D float64 array to an array of the same length where entry ``t`` depends
only on entries ``<= t`` and entries whose window is not yet full are NaN. Rolling sums use
prefix sums (``np.cumsum`` is sequential, so a prefix's values never change when later bars
change: bit-exact causality), recursive filters use ``scipy.signal.lfilter`` and rolling extrema
use a doubling (sparse-table) scheme. Conventions follow TA-Lib where both define an indicator
(EMA and Wilder averages seeded with the simple mean of their first window), so values can be
checked against it.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

FloatArray = np.ndarray


def _nan(n: int) -> FloatArray:
    return np.full(n, np.nan)


def lag(x: FloatArray, k: int) -> FloatArray:
    """``x[t - k]`` (NaN for the first ``k`` entries)."""
    out = _nan(len(x))
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def diff(x: FloatArray, k: int = 1) -> FloatArray:
    """``x[t] - x[t - k]`` (NaN for the first ``k`` entries)."""
    out = _nan(len(x))
    if k < len(x):
        out[k:] = x[k:] - x[: len(x) - k]
    return out


def rolling_sum(x: FloatArray, n: int) -> FloatArray:
    """Sum of the last ``n`` values (``x[t-n+1..t]``); NaN until the window is full.

    A NaN input makes exactly the windows that contain it NaN (it is not allowed to poison the
    prefix sum), so a series with a NaN head (e.g. returns) is defined once ``n`` valid values
    are in the window.
    """
    m = len(x)
    out = np.empty(m)
    if n > m:
        out.fill(np.nan)
        return out
    cs = np.empty(m + 1)
    cs[0] = 0.0
    np.cumsum(x, out=cs[1:])
    if np.isnan(cs[-1]):  # some input is NaN (a NaN poisons the prefix sum): mask exactly
        nan_mask = np.isnan(x)
        np.cumsum(np.where(nan_mask, 0.0, x), out=cs[1:])
        np.subtract(cs[n:], cs[: m - n + 1], out=out[n - 1 :])
        cn = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(nan_mask, out=cn[1:])
        out[n - 1 :][(cn[n:] - cn[: m - n + 1]) > 0] = np.nan
    else:
        np.subtract(cs[n:], cs[: m - n + 1], out=out[n - 1 :])
    out[: n - 1] = np.nan
    return out


def rolling_mean(x: FloatArray, n: int) -> FloatArray:
    """Mean of the last ``n`` values."""
    return rolling_sum(x, n) / n


def rolling_var(x: FloatArray, n: int, ddof: int = 0) -> FloatArray:
    """Variance of the last ``n`` values from prefix sums of ``x`` and ``x**2``.

    ``x`` is shifted by its first finite value (within the first 1024) before squaring (a
    constant, so causal) to limit cancellation; tiny negative rounding results are clipped to 0.
    """
    head = x[:1024]
    finite = head[np.isfinite(head)]
    shift = float(finite[0]) if len(finite) else 0.0
    xs = x - shift
    s1 = rolling_sum(xs, n)
    s2 = rolling_sum(xs * xs, n)
    var = (s2 - s1 * s1 / n) / (n - ddof)
    return np.maximum(var, 0.0)


def rolling_std(x: FloatArray, n: int, ddof: int = 0) -> FloatArray:
    """Standard deviation of the last ``n`` values."""
    return np.sqrt(rolling_var(x, n, ddof))


def _rolling_extreme(x: FloatArray, n: int, op: np.ufunc) -> FloatArray:
    """``op``-reduce (max or min) of the last ``n`` values by doubling (sparse table).

    After ``k`` doublings ``acc[t]`` covers ``x[t-2^k+1..t]``; one more ``op`` with the copy
    shifted by ``n - 2^k`` covers exactly ``n`` values. ``log2(n) + 1`` vector passes, exact.
    """
    m = len(x)
    out = _nan(m)
    if n > m:
        return out
    acc, nxt = x.copy(), np.empty(m)
    span = 1
    while span * 2 <= n:  # two buffers: an in-place shifted op would make numpy copy anyway
        nxt[:span] = acc[:span]
        op(acc[span:], acc[:-span], out=nxt[span:])
        acc, nxt = nxt, acc
        span *= 2
    rest = n - span
    if rest:
        op(acc[n - 1 :], acc[n - 1 - rest : m - rest], out=out[n - 1 :])
    else:
        out[n - 1 :] = acc[n - 1 :]
    return out


def rolling_max(x: FloatArray, n: int) -> FloatArray:
    """Maximum of the last ``n`` values."""
    return _rolling_extreme(x, n, np.maximum)


def rolling_min(x: FloatArray, n: int) -> FloatArray:
    """Minimum of the last ``n`` values."""
    return _rolling_extreme(x, n, np.minimum)


def _seeded_recursion(x: FloatArray, n: int, alpha: float, start: int) -> FloatArray:
    """``y[t] = alpha*x[t] + (1-alpha)*y[t-1]``, seeded with ``mean(x[start:start+n])``.

    The first output is at ``start + n - 1``; ``x`` must be finite from ``start`` on.
    """
    m = len(x)
    out = _nan(m)
    first = start + n - 1
    if first >= m:
        return out
    seed = float(np.mean(x[start : first + 1]))
    out[first] = seed
    if first + 1 < m:
        out[first + 1 :] = lfilter(
            [alpha], [1.0, alpha - 1.0], x[first + 1 :], zi=[(1.0 - alpha) * seed]
        )[0]
    return out


def ema(x: FloatArray, n: int, start: int = 0) -> FloatArray:
    """Exponential moving average, ``alpha = 2/(n+1)``, TA-Lib seeding (SMA of first ``n``)."""
    return _seeded_recursion(x, n, 2.0 / (n + 1.0), start)


def wilder(x: FloatArray, n: int, start: int = 0) -> FloatArray:
    """Wilder's smoothing (``alpha = 1/n``) as used by RSI and ATR, seeded like TA-Lib."""
    return _seeded_recursion(x, n, 1.0 / n, start)


def ewm_mean(x: FloatArray, halflife: float) -> FloatArray:
    """Bias-corrected exponentially weighted mean (pandas ``adjust=True``), defined from t=0.

    Weights ``lambda**k`` are normalised by their own sum, so early values are an honest
    average of the history seen so far rather than being pulled towards a zero start.
    """
    lam = 0.5 ** (1.0 / halflife)
    num = lfilter([1.0], [1.0, -lam], x)
    den = lfilter([1.0], [1.0, -lam], np.ones_like(x))
    return np.asarray(num / den)


def bars_since_change(state: FloatArray, start: int) -> FloatArray:
    """Bars since ``state`` last changed value (0 on the bar it changes), counted from ``start``.

    Entries before ``start`` are NaN; the first defined bar counts as a change.
    """
    m = len(state)
    out = _nan(m)
    if start >= m:
        return out
    s = state[start:]
    idx = np.arange(len(s), dtype=np.float64)
    changed = np.empty(len(s), dtype=bool)
    changed[0] = True
    changed[1:] = s[1:] != s[:-1]
    last = np.maximum.accumulate(np.where(changed, idx, 0.0))
    out[start:] = idx - last
    return out


def volume_profile(
    price: FloatArray, volume: FloatArray, ref: FloatArray, n: int, bins: int, chunk: int = 2048
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rolling volume-by-price profile over the last ``n`` bars, measured from ``ref``.

    For each bar ``t`` the prices of bars ``t-n+1..t`` are binned into ``bins`` equal bins
    between their min and max; each bin collects the bars' volume. Returns, relative to
    ``ref[t]`` (all in ``price`` units, normally log price):

    - ``poc``: ``ref - centre`` of the heaviest bin (point of control);
    - ``supply``: ``centre - ref`` of the heaviest bin strictly above ``ref`` (resistance
      where most volume traded), or the window max when no bin lies above; clipped at 0;
    - ``demand``: ``ref - centre`` of the heaviest bin strictly below ``ref``, or the window
      min when none lies below; clipped at 0.

    Vectorized over windows in chunks (``sliding_window_view`` plus one ``bincount`` per chunk);
    positions relative to the window low are subtracted in float64 (absolute log prices
    would lose bins to float32 rounding) and kept in a reused float32 buffer, so memory stays at
    ``chunk * n`` elements whatever the series length. This is the one kernel whose cost grows
    with its window (``n`` element operations per bar).
    """
    m = len(price)
    poc, supply, demand = _nan(m), _nan(m), _nan(m)
    if n > m:
        return poc, supply, demand
    lo_all = rolling_min(price, n)
    hi_all = rolling_max(price, n)
    width_all = hi_all - lo_all
    ok = width_all > 0
    scale_all = np.where(ok, bins / np.where(ok, width_all, 1.0), 0.0)
    win_p = sliding_window_view(price, n)  # row i is the window ending at t = i + n - 1
    win_v = sliding_window_view(volume, n)
    centres_rel = (np.arange(bins) + 0.5) / bins
    buf = np.empty((chunk, n), dtype=np.float32)
    offsets = (np.arange(chunk) * bins).astype(np.float32)[:, None]
    for a in range(0, m - n + 1, chunk):
        b = min(a + chunk, m - n + 1)
        c = b - a
        t = np.arange(a, b) + n - 1
        lo, hi, width, r = lo_all[t], hi_all[t], width_all[t], ref[t]
        pos = buf[:c]
        np.subtract(win_p[a:b], lo[:, None], out=pos, casting="same_kind")
        np.multiply(pos, scale_all[t].astype(np.float32)[:, None], out=pos)
        np.clip(pos, 0, bins - 1, out=pos)  # float32 rounding can land a hair outside
        pos += offsets[:c]
        hist = np.bincount(
            pos.astype(np.intp).ravel(), weights=win_v[a:b].ravel(), minlength=c * bins
        ).reshape(c, bins)
        centre = lo[:, None] + centres_rel[None, :] * width[:, None]
        rows = np.arange(c)
        poc[t] = r - centre[rows, np.argmax(hist, axis=1)]
        above = centre > r[:, None]
        k_up = np.argmax(np.where(above, hist, -1.0), axis=1)
        up = np.where(above.any(axis=1), centre[rows, k_up], hi)
        supply[t] = np.maximum(up - r, 0.0)
        below = centre < r[:, None]
        k_dn = np.argmax(np.where(below, hist, -1.0), axis=1)
        dn = np.where(below.any(axis=1), centre[rows, k_dn], lo)
        demand[t] = np.maximum(r - dn, 0.0)
    return poc, supply, demand
