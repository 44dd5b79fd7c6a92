"""Numpy/scipy reference versions of the compiled kernels in :mod:`pipelines.features.kernels`.

Not used by the pipeline: these are the test oracles for the numba kernels that replaced them
(same definitions, computed with vectorized numpy/scipy so an independent code path checks the
compiled loops). ``ema_lfilter``/``wilder_lfilter``/``ewm_mean_lfilter`` run the recursions
through ``scipy.signal.lfilter``; ``volume_profile_numpy`` is the block-vectorized incremental
volume profile (histograms updated by cumulative sums, masked argmaxes as running argmaxes over
bin columns) that ``featurize`` used before numba.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from pipelines.features.kernels import (
    FloatArray,
    _nan,
    _shift_of,
    rolling_max,
    rolling_min,
    window_sums,
)


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


def ema_lfilter(x: FloatArray, n: int, start: int = 0) -> FloatArray:
    """EMA (``alpha = 2/(n+1)``, SMA seed) through ``lfilter``: oracle of ``kernels.ema``."""
    return _seeded_recursion(x, n, 2.0 / (n + 1.0), start)


def wilder_lfilter(x: FloatArray, n: int, start: int = 0) -> FloatArray:
    """Wilder smoothing (``alpha = 1/n``) through ``lfilter``: oracle of ``kernels.wilder``."""
    return _seeded_recursion(x, n, 1.0 / n, start)


def ewm_mean_lfilter(x: FloatArray, halflife: float) -> FloatArray:
    """Bias-corrected EWM (pandas ``adjust=True``) through ``lfilter``: oracle of
    ``kernels.ewm_mean``."""
    lam = 0.5 ** (1.0 / halflife)
    num = lfilter([1.0], [1.0, -lam], x)
    den = lfilter([1.0], [1.0, -lam], np.ones_like(x))
    return np.asarray(num / den)


def rolling_mean_var_numpy(
    x: FloatArray, ns: tuple[int, ...], ddof: int = 0, head: int = 0
) -> list[tuple[FloatArray, FloatArray]]:
    """Vectorized oracle of ``kernels.rolling_mean_var``: (mean, variance) per window in ``ns``.

    Same shifted prefix sums of ``x`` and ``x**2`` as :func:`rolling_var` (bit-identical
    variances), computed once for all windows; the mean is ``shift + sum/n``, equal to
    :func:`rolling_mean` up to rounding. ``x[:head]`` may be NaN (see :func:`window_sums`).
    """
    shift = _shift_of(x)
    xs = x - shift
    if head:
        xs[:head] = 0.0
    s1 = window_sums(xs, ns, head)
    np.multiply(xs, xs, out=xs)
    s2 = window_sums(xs, ns, head)
    out = []
    for n, a, b in zip(ns, s1, s2, strict=True):
        var = a * a
        var /= -n
        var += b
        var /= n - ddof
        np.maximum(var, 0.0, out=var)
        a /= n
        a += shift
        out.append((a, var))
    return out


def _profile_keys(price: FloatArray, lo: FloatArray, scale: FloatArray) -> np.ndarray:
    """``floor((price - lo) * scale)`` as ``intp``: the bin of each price under given edges.

    float64 throughout (absolute log prices would lose bins in float32). The window max lands
    on ``bins`` exactly (rounding can put it a hair above): callers fold that slot into the top
    bin. Never below 0, because ``lo`` is the window minimum. Both histogram paths bin through
    this one function, so they agree bit for bit.
    """
    pos = np.subtract(price, lo)
    pos *= scale
    return pos.astype(np.intp)


def _profile_histograms(
    win_p: FloatArray,
    win_v: FloatArray,
    lo: FloatArray,
    scale: FloatArray,
    start: np.ndarray,
    bins: int,
) -> FloatArray:
    """Volume histograms ``[rows, bins]`` (Fortran order) of a block of consecutive windows.

    ``win_p``/``win_v`` are the block's windows (``[rows, n]`` views), ``lo``/``scale`` their
    bin edges and ``start`` marks windows whose edges differ from the previous window's (the
    block's first window must be marked). A marked window is binned in full (``n`` values,
    one ``bincount``); every other window is the previous histogram plus the entering bar
    minus the leaving bar, both binned under the unchanged edges (O(1) per bar). The runs of
    unchanged edges are accumulated by one cumulative sum per bin column, re-based at each
    run's start.
    """
    rows, n = win_p.shape
    starts = np.flatnonzero(start)
    slots = bins + 1  # slot ``bins`` catches the window max; folded into the top bin
    keys = _profile_keys(win_p[starts], lo[starts, None], scale[starts, None])
    keys += (np.arange(len(starts)) * slots)[:, None]  # each window's own slots (exact ints)
    full = np.bincount(
        keys.ravel(), weights=win_v[starts].ravel(), minlength=len(starts) * slots
    ).reshape(len(starts), slots)
    full[:, bins - 1] += full[:, bins]
    full = np.asfortranarray(full[:, :bins])

    hist = np.zeros((rows, bins), order="F")
    run = np.cumsum(start)
    run -= 1  # index of each window's run in ``starts``
    inc = np.flatnonzero(~start)
    if len(inc) == 0:
        hist[:] = full
        return hist
    k_in = _profile_keys(win_p[inc, n - 1], lo[inc], scale[inc])
    k_out = _profile_keys(win_p[inc - 1, 0], lo[inc], scale[inc])
    np.minimum(k_in, bins - 1, out=k_in)
    np.minimum(k_out, bins - 1, out=k_out)
    flat = hist.reshape(-1, order="F")  # a view: element (i, b) is flat[b * rows + i]
    flat[k_in * rows + inc] = win_v[inc, n - 1]
    flat[k_out * rows + inc] -= win_v[inc - 1, 0]
    for b in range(bins):  # 1-D column scans: contiguous in Fortran order
        col = hist[:, b]
        np.cumsum(col, out=col)
        base = full[:, b] - col[starts]  # re-base every run on its full histogram
        col += base[run]
    return hist


def _first_argmax_prefixes(hist: FloatArray, upto: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index of the row max over all bins, and over ``hist[i, :upto[i]]`` per row.

    One forward scan over the bin columns keeps the running (first) argmax; each row's
    prefix answer is read off when the scan reaches ``upto`` (0 when ``upto`` is 0).
    """
    rows, bins = hist.shape
    best = hist[:, 0].copy()
    k = np.zeros(rows, dtype=np.int8)
    out = np.zeros(rows, dtype=np.int8)
    better = np.empty(rows, dtype=bool)
    for b in range(1, bins):
        np.copyto(out, k, where=upto == b)
        col = hist[:, b]
        np.greater(col, best, out=better)
        np.copyto(best, col, where=better)
        np.copyto(k, b, where=better)
    np.copyto(out, k, where=upto == bins)
    return k, out


def _first_argmax_suffixes(hist: FloatArray, frm: np.ndarray) -> np.ndarray:
    """Per row ``i``: first index of the max of ``hist[i, frm[i]:]`` (``bins - 1`` if empty)."""
    rows, bins = hist.shape
    best = hist[:, bins - 1].copy()
    k = np.full(rows, bins - 1, dtype=np.int8)
    out = np.full(rows, bins - 1, dtype=np.int8)
    better = np.empty(rows, dtype=bool)
    for b in range(bins - 2, -1, -1):
        np.copyto(out, k, where=frm == b + 1)
        col = hist[:, b]
        np.greater_equal(col, best, out=better)  # ties: the lower bin wins, like argmax
        np.copyto(best, col, where=better)
        np.copyto(k, b, where=better)
    np.copyto(out, k, where=frm == 0)
    return out


def _centres_before(
    lo: FloatArray,
    width: FloatArray,
    scale: FloatArray,
    r: FloatArray,
    crel: FloatArray,
    cmp: np.ufunc,
) -> np.ndarray:
    """How many bin centres ``lo + crel[j] * width`` satisfy ``cmp(centre, r)`` (< or <=).

    Centres never decrease with ``j``, so the answer is a boundary index. It is estimated from
    ``(r - lo) * scale - 0.5`` and then corrected against the exact float expression used for
    the answers (``while centre[k] passes: k += 1``; ``while centre[k-1] fails: k -= 1``), so
    it equals counting all ``bins`` comparisons, at a fraction of the passes.
    """
    bins = len(crel)
    x = r - lo
    x *= scale
    x -= 0.5
    x = np.ceil(x) if cmp is np.less else np.floor(x) + 1.0
    np.clip(x, 0, bins, out=x)
    k = x.astype(np.intp)
    flat = width == 0  # every centre is ``lo``: all or none pass
    if flat.any():
        k[flat] = np.where(cmp(lo[flat], r[flat]), bins, 0)
    for _ in range(bins + 1):
        nxt = lo + crel[np.minimum(k, bins - 1)] * width
        up = cmp(nxt, r) & (k < bins)
        prev = lo + crel[np.maximum(k - 1, 0)] * width
        down = ~cmp(prev, r) & (k > 0)
        if not (up.any() or down.any()):
            break
        k += up
        k -= down
    return k


def volume_profile_numpy(
    price: FloatArray,
    volume: FloatArray,
    ref: FloatArray,
    n: int,
    bins: int,
    chunk: int = 16384,
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

    Ties go to the lowest bin. Histograms are updated incrementally while the window's edges
    stay put (see :func:`_profile_histograms`); bin centres increase with the bin index, so
    the bins above (below) ``ref`` are a suffix (prefix) of the bins and the masked argmaxes
    are running argmaxes over the bin columns, gathered where each row's suffix (prefix)
    starts (ends). Windows are processed in blocks of ``chunk``, so memory beyond the outputs
    is ``O(chunk * (n + bins))`` whatever the series length.
    """
    m = len(price)
    poc, supply, demand = _nan(m), _nan(m), _nan(m)
    if n > m:
        return poc, supply, demand
    lo_all = rolling_min(price, n)[n - 1 :]
    hi_all = rolling_max(price, n)[n - 1 :]
    rows = m - n + 1
    start_all = np.ones(rows, dtype=bool)
    np.logical_or(lo_all[1:] != lo_all[:-1], hi_all[1:] != hi_all[:-1], out=start_all[1:])
    win_p = sliding_window_view(price, n)  # row i is the window ending at t = i + n - 1
    win_v = sliding_window_view(volume, n)
    crel = (np.arange(bins) + 0.5) / bins
    for a in range(0, rows, chunk):  # blocks keep every temporary small and cache-resident
        b = min(a + chunk, rows)
        lo, hi, r = lo_all[a:b], hi_all[a:b], ref[a + n - 1 : b + n - 1]
        width = hi - lo
        ok = width > 0
        scale = np.where(ok, bins / np.where(ok, width, 1.0), 0.0)
        start = start_all[a:b].copy()
        start[0] = True  # each block starts from a full histogram: blocks are independent
        hist = _profile_histograms(win_p[a:b], win_v[a:b], lo, scale, start, bins)
        n_lt = _centres_before(lo, width, scale, r, crel, np.less)
        n_le = _centres_before(lo, width, scale, r, crel, np.less_equal)
        k_poc, k_dn = _first_argmax_prefixes(hist, n_lt)
        k_up = _first_argmax_suffixes(hist, n_le)
        t = slice(a + n - 1, b + n - 1)
        poc[t] = r - (lo + crel[k_poc] * width)
        up = np.where(n_le < bins, lo + crel[k_up] * width, hi)
        supply[t] = np.maximum(up - r, 0.0)
        dn = np.where(n_lt > 0, lo + crel[k_dn] * width, lo)
        demand[t] = np.maximum(r - dn, 0.0)
    return poc, supply, demand
