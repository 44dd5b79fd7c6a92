"""Causal building blocks for the features: vectorized numpy, plus numba loops where faster.

Every kernel maps a 1-D float64 array to an array of the same length where entry ``t`` depends
only on entries ``<= t`` and entries whose window is not yet full are NaN. Rolling sums use
prefix sums (``np.cumsum`` is sequential, so a prefix's values never change when later bars
change: bit-exact causality) and rolling extrema a doubling (sparse-table) scheme. The
sequential parts are compiled numba loops (``@njit(cache=True, nogil=True)``): the recursive
filters (EMA, Wilder, EWM) and the volume profile; their numpy/scipy predecessors live on as
test oracles in ``tests/feature_reference.py``. The first call in a fresh environment
compiles them (seconds) and caches the machine code in ``__pycache__``; later processes load it.
Conventions follow TA-Lib where both define an indicator (EMA and Wilder averages seeded with
the simple mean of their first window), so values can be checked against it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FloatArray = np.ndarray


def _nan(n: int) -> FloatArray:
    return np.full(n, np.nan)


def lag(x: FloatArray, k: int) -> FloatArray:
    """``x[t - k]`` (NaN for the first ``k`` entries)."""
    m = len(x)
    out = np.empty(m)
    out[: min(k, m)] = np.nan
    if k < m:
        out[k:] = x[: m - k]
    return out


def diff(x: FloatArray, k: int = 1) -> FloatArray:
    """``x[t] - x[t - k]`` (NaN for the first ``k`` entries); written in place, one pass."""
    m = len(x)
    out = np.empty(m)
    out[: min(k, m)] = np.nan
    if k < m:
        np.subtract(x[k:], x[: m - k], out=out[k:])
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
        head = int(np.argmin(nan_mask)) if not nan_mask.all() else m
        if head < m and not nan_mask[head:].any():  # only a NaN head (e.g. returns): one scan
            return window_sums(x, (n,), head)[0]
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


def _shift_of(x: FloatArray) -> float:
    """First finite value within the first 1024 (0 if none): a causal centring constant."""
    head = x[:1024]
    finite = head[np.isfinite(head)]
    return float(finite[0]) if len(finite) else 0.0


def rolling_var(x: FloatArray, n: int, ddof: int = 0) -> FloatArray:
    """Variance of the last ``n`` values from prefix sums of ``x`` and ``x**2``.

    ``x`` is shifted by its first finite value (within the first 1024) before squaring (a
    constant, so causal) to limit cancellation; tiny negative rounding results are clipped to 0.
    """
    shift = _shift_of(x)
    xs = x - shift
    s1 = rolling_sum(xs, n)
    s2 = rolling_sum(xs * xs, n)
    var = (s2 - s1 * s1 / n) / (n - ddof)
    return np.maximum(var, 0.0)


def window_sums(x: FloatArray, ns: tuple[int, ...], head: int = 0) -> list[FloatArray]:
    """Rolling sums of ``x`` over several windows from one prefix sum (one scan, not one each).

    ``x[:head]`` may be NaN (e.g. the first return): those entries count as 0 in the prefix
    sum and every window that contains one is NaN, exactly as :func:`rolling_sum` masks them.
    ``x[head:]`` must be finite. Bit-identical to :func:`rolling_sum` for such inputs.
    """
    m = len(x)
    cs = np.empty(m + 1)
    cs[0] = 0.0
    if head:
        cs[1 : head + 1] = 0.0
        np.cumsum(x[head:], out=cs[head + 1 :])
    else:
        np.cumsum(x, out=cs[1:])
    outs = []
    for n in ns:
        out = np.empty(m)
        if n <= m:
            np.subtract(cs[n:], cs[: m - n + 1], out=out[n - 1 :])
        out[: min(m, n - 1 + head)] = np.nan
        outs.append(out)
    return outs


@njit(cache=True, nogil=True, error_model="numpy")
def _mean_var_loop(
    x: FloatArray,
    shift: float,
    ns: np.ndarray,
    ddof: int,
    head: int,
    mean: FloatArray,
    var: FloatArray,
    with_mean: bool,
) -> None:
    """Fill ``var[j]`` and, if ``with_mean``, ``mean[j]`` (rows of ``[len(ns), m]``) for
    window ``ns[j]``.

    Block by block: the prefix sums of ``x - shift`` and its square (``x[:head]`` counted as
    0) are built with the same sequential additions as ``np.cumsum`` into a buffer holding the
    block plus the ``max(ns)`` prefixes before it (it stays in cache), then each window's
    outputs for the block come from a loop with no carried dependency, which the compiler
    vectorizes (the divisions dominate). The float expressions, in the same order, are the
    numpy reference's (``((a*a)/(-n) + b)/(n - ddof)`` clipped at 0, ``a/n + shift``, with
    ``a``/``b`` differences of two prefix sums), so results are bit-identical to it.
    """
    m = len(x)
    k = len(ns)
    span = 0
    for j in range(k):
        span = max(span, ns[j])
    block = 4096
    buf1 = np.zeros(span + block + 1)  # buf[q] = prefix(q + s - span) during block s
    buf2 = np.zeros(span + block + 1)
    for j in range(k):
        first = min(m, ns[j] - 1 + head)
        if with_mean:
            mean[j, :first] = np.nan
        var[j, :first] = np.nan
    c1 = 0.0
    c2 = 0.0
    for s in range(0, m, block):
        e = min(s + block, m)
        for t in range(s, e):
            if t >= head:
                d = x[t] - shift
                c1 += d
                c2 += d * d
            buf1[t + 1 - s + span] = c1
            buf2[t + 1 - s + span] = c2
        for j in range(k):
            n = ns[j]
            lo = max(s, n - 1 + head)
            neg_n = float(-n)
            fn = float(n)
            dof = float(n - ddof)
            mj = mean[j]
            vj = var[j]
            for t in range(lo, e):
                q = t + 1 - s + span
                a = buf1[q] - buf1[q - n]
                b = buf2[q] - buf2[q - n]
                v = (a * a / neg_n + b) / dof
                vj[t] = 0.0 if v < 0.0 else v  # NaN stays NaN, like np.maximum
                if with_mean:
                    mj[t] = a / fn + shift
        w = e - s  # keep the last ``span`` prefixes (and prefix(e)) for the next block
        buf1[: span + 1] = buf1[w : w + span + 1].copy()
        buf2[: span + 1] = buf2[w : w + span + 1].copy()


def rolling_mean_var(
    x: FloatArray, ns: tuple[int, ...], ddof: int = 0, head: int = 0
) -> list[tuple[FloatArray, FloatArray]]:
    """``(mean, variance)`` of the last ``n`` values for each ``n`` in ``ns``, sharing scans.

    Same shifted prefix sums of ``x`` and ``x**2`` as :func:`rolling_var` (bit-identical
    variances), computed once for all windows in one compiled pass; the mean is
    ``shift + sum/n``, equal to :func:`rolling_mean` up to rounding. ``x[:head]`` may be NaN
    (see :func:`window_sums`); ``x[head:]`` must be finite. Oracle:
    ``rolling_mean_var_numpy`` in ``tests/feature_reference.py``.
    """
    m = len(x)
    shift = _shift_of(x)
    mean = np.empty((len(ns), m))
    var = np.empty((len(ns), m))
    wins = np.asarray(ns, dtype=np.int64)
    _mean_var_loop(
        np.ascontiguousarray(x, dtype=np.float64), shift, wins, ddof, head, mean, var, True
    )
    return [(mean[j], var[j]) for j in range(len(ns))]


def rolling_vars(
    x: FloatArray, ns: tuple[int, ...], ddof: int = 0, head: int = 0
) -> list[FloatArray]:
    """The variances of :func:`rolling_mean_var` (bit-identical) without the means: one
    division per value less, for callers that only need the spread (e.g. volatility)."""
    m = len(x)
    var = np.empty((len(ns), m))
    mean = np.empty((len(ns), 0))  # not written
    wins = np.asarray(ns, dtype=np.int64)
    _mean_var_loop(
        np.ascontiguousarray(x, dtype=np.float64), _shift_of(x), wins, ddof, head, mean, var, False
    )
    return list(var)


def rolling_extremes(x: FloatArray, ns: tuple[int, ...], op: np.ufunc) -> list[FloatArray]:
    """``op``-reduce (``np.maximum`` or ``np.minimum``) of the last ``n`` values, per ``n``.

    Doubling (sparse table): after ``k`` doublings ``acc[t]`` covers ``x[t-2^k+1..t]``; one
    more ``op`` with the copy shifted by ``n - 2^k`` covers exactly ``n`` values. Exact, and the
    doublings are shared by all windows, so ``max(h, 20)`` and ``max(h, 50)`` cost six vector
    passes together instead of eleven.
    """
    m = len(x)
    outs = {n: _nan(m) for n in ns}
    todo = sorted(n for n in set(ns) if n <= m)
    acc, nxt = x.copy(), np.empty(m)
    span = 1
    while todo:
        while todo and span * 2 > todo[0]:  # windows in [span, 2 span): finish them now
            n = todo.pop(0)
            rest = n - span
            out = outs[n]
            if rest:
                op(acc[n - 1 :], acc[n - 1 - rest : m - rest], out=out[n - 1 :])
            else:
                out[n - 1 :] = acc[n - 1 :]
        if not todo:
            break
        # two buffers: an in-place shifted op would make numpy copy anyway
        nxt[:span] = acc[:span]
        op(acc[span:], acc[:-span], out=nxt[span:])
        acc, nxt = nxt, acc
        span *= 2
    return [outs[n] for n in ns]


def _rolling_extreme(x: FloatArray, n: int, op: np.ufunc) -> FloatArray:
    return rolling_extremes(x, (n,), op)[0]


def rolling_max(x: FloatArray, n: int) -> FloatArray:
    """Maximum of the last ``n`` values."""
    return _rolling_extreme(x, n, np.maximum)


def rolling_min(x: FloatArray, n: int) -> FloatArray:
    """Minimum of the last ``n`` values."""
    return _rolling_extreme(x, n, np.minimum)


@njit(cache=True, nogil=True, error_model="numpy")
def _recursion_loop(x: FloatArray, first: int, seed: float, alpha: float) -> FloatArray:
    """``y[first] = seed``, then ``y[t] = alpha*x[t] + (1-alpha)*y[t-1]``; NaN before ``first``.

    The same expression, in the same order, as ``lfilter([alpha], [1, alpha-1], zi=...)``
    evaluates (``b0*x + z`` with ``z = (1-alpha)*y``), in one pass instead of its ~2.5x
    costlier general-order filter loop.
    """
    m = len(x)
    out = np.empty(m)
    out[:first] = np.nan
    out[first] = seed
    b = 1.0 - alpha
    y = seed
    for t in range(first + 1, m):
        y = alpha * x[t] + b * y
        out[t] = y
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _recursions_loop(
    x: FloatArray, firsts: np.ndarray, seeds: FloatArray, alphas: FloatArray, out: FloatArray
) -> None:
    """Row ``j`` of ``out``: :func:`_recursion_loop` with ``firsts[j]``, ``seeds[j]``,
    ``alphas[j]``, all rows in one pass over ``x``.

    Each recursion is a chain of dependent multiply-adds (latency-bound); interleaving several
    independent chains in one loop lets the CPU overlap them, so five EMAs cost about what two
    did one after another. Same expression, same order per row: bit-identical.
    """
    m = len(x)
    k = len(firsts)
    y = seeds.copy()
    b = 1.0 - alphas
    joint = 0
    for j in range(k):
        f = firsts[j]
        if f >= m:
            out[j, :] = np.nan
            continue
        out[j, :f] = np.nan
        out[j, f] = seeds[j]
        joint = max(joint, f + 1)
    n_live = 0
    live = np.empty(k, dtype=np.int64)
    for j in range(k):
        if firsts[j] < m:
            live[n_live] = j
            n_live += 1
    live = live[:n_live]
    for row in live:  # each chain on its own until the last one has started
        yj = y[row]
        aj = alphas[row]
        bj = b[row]
        for t in range(firsts[row] + 1, joint):
            yj = aj * x[t] + bj * yj
            out[row, t] = yj
        y[row] = yj
    for t in range(joint, m):
        xt = x[t]
        for row in live:
            yj = alphas[row] * xt + b[row] * y[row]
            y[row] = yj
            out[row, t] = yj


def _recursions(x: FloatArray, ns: tuple[int, ...], alphas: list[float], start: int) -> FloatArray:
    """``[len(ns), m]``: :func:`_seeded_recursion` for each ``(n, alpha)``, in one pass."""
    m = len(x)
    firsts = np.asarray([start + n - 1 for n in ns], dtype=np.int64)
    seeds = np.asarray(
        [float(np.mean(x[start : f + 1])) if f < m else np.nan for f in firsts], dtype=np.float64
    )
    out = np.empty((len(ns), m))
    _recursions_loop(
        np.ascontiguousarray(x, dtype=np.float64),
        firsts,
        seeds,
        np.asarray(alphas, dtype=np.float64),
        out,
    )
    return out


def emas(x: FloatArray, ns: tuple[int, ...], start: int = 0) -> list[FloatArray]:
    """:func:`ema` for each ``n`` in ``ns``, bit-identical, from one interleaved pass."""
    return list(_recursions(x, ns, [2.0 / (n + 1.0) for n in ns], start))


def wilders(x: FloatArray, ns: tuple[int, ...], start: int = 0) -> list[FloatArray]:
    """:func:`wilder` for each ``n`` in ``ns``, bit-identical, from one interleaved pass."""
    return list(_recursions(x, ns, [1.0 / n for n in ns], start))


@njit(cache=True, nogil=True, error_model="numpy")
def _true_range_loop(h: FloatArray, lo: FloatArray, c: FloatArray, out: FloatArray) -> None:
    """``max(h - lo, |h - c[t-1]|, |lo - c[t-1]|)`` with ``np.maximum``'s NaN rule; NaN at 0."""
    m = len(c)
    if m:
        out[0] = np.nan
    for t in range(1, m):
        cp = c[t - 1]
        a = h[t] - lo[t]
        v = abs(h[t] - cp)
        a = a if (a >= v or np.isnan(a)) else v
        v = abs(lo[t] - cp)
        a = a if (a >= v or np.isnan(a)) else v
        out[t] = a


def true_range(h: FloatArray, lo: FloatArray, c: FloatArray) -> FloatArray:
    """True range per bar (NaN on the first: no previous close), one pass instead of seven."""
    out = np.empty(len(c))
    f64 = np.float64
    _true_range_loop(
        np.ascontiguousarray(h, dtype=f64),
        np.ascontiguousarray(lo, dtype=f64),
        np.ascontiguousarray(c, dtype=f64),
        out,
    )
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _atr_loop(
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    ns: np.ndarray,
    seeds: FloatArray,
    alphas: FloatArray,
    out: FloatArray,
) -> None:
    """Row ``j``: Wilder average (``ns[j]``, from bar 1) of the true range, computed on the
    fly (the expressions of :func:`_true_range_loop` and :func:`_recursion_loop`)."""
    m = len(c)
    k = len(ns)
    y = seeds.copy()
    b = 1.0 - alphas
    for j in range(k):
        out[j, : min(ns[j], m)] = np.nan
        if ns[j] < m:
            out[j, ns[j]] = seeds[j]
    for t in range(1, m):
        cp = c[t - 1]
        tr = h[t] - lo[t]
        v = abs(h[t] - cp)
        tr = tr if (tr >= v or np.isnan(tr)) else v
        v = abs(lo[t] - cp)
        tr = tr if (tr >= v or np.isnan(tr)) else v
        for j in range(k):
            if t > ns[j]:
                y[j] = alphas[j] * tr + b[j] * y[j]
                out[j, t] = y[j]


def atrs(h: FloatArray, lo: FloatArray, c: FloatArray, ns: tuple[int, ...]) -> list[FloatArray]:
    """Average true range for each window in ``ns`` (TA-Lib's seeding), in one pass.

    Bit-identical to ``wilders(true_range(h, lo, c), ns, start=1)`` without writing the true
    range out: the seeds (numpy means of each window's first true ranges) come from a short
    head, the recursions from one loop over the bars.
    """
    m = len(c)
    f64 = np.float64
    h64, lo64, c64 = (np.ascontiguousarray(a, dtype=f64) for a in (h, lo, c))
    top = min(max(ns, default=0) + 1, m)
    tr = true_range(h64[:top], lo64[:top], c64[:top])
    seeds = np.asarray([float(np.mean(tr[1 : n + 1])) if n < m else np.nan for n in ns])
    out = np.empty((len(ns), m))
    _atr_loop(
        h64,
        lo64,
        c64,
        np.asarray(ns, dtype=np.int64),
        seeds,
        np.asarray([1.0 / n for n in ns], dtype=np.float64),
        out,
    )
    return list(out)


@njit(cache=True, nogil=True, error_model="numpy")
def _rsi_loop(
    c: FloatArray,
    ns: np.ndarray,
    seed_gain: FloatArray,
    seed_loss: FloatArray,
    alphas: FloatArray,
    fill: float,
    out: FloatArray,
) -> None:
    """Row ``j``: ``ag / (ag + al)`` of Wilder averages (``ns[j]``, from bar 1) of the gains
    and losses of ``c``; ``fill`` where ``|ag + al| <= 1e-12``; one pass for every window.

    The gains and losses are ``np.maximum(d, 0)`` and ``np.maximum(-d, 0)`` of
    ``d = c[t] - c[t-1]`` and the recursions and the guarded division are the expressions of
    the numpy path in the same order, so each row is bit-identical to it.
    """
    m = len(c)
    k = len(ns)
    g = seed_gain.copy()
    lo = seed_loss.copy()
    b = 1.0 - alphas
    for j in range(k):
        out[j, : min(ns[j], m)] = np.nan
    for t in range(1, m):
        d = c[t] - c[t - 1]
        gain = d if (d >= 0.0 or np.isnan(d)) else 0.0
        nd = -d
        loss = nd if (nd >= 0.0 or np.isnan(nd)) else 0.0
        for j in range(k):
            f = ns[j]
            if t < f:
                continue
            if t > f:
                g[j] = alphas[j] * gain + b[j] * g[j]
                lo[j] = alphas[j] * loss + b[j] * lo[j]
            den = g[j] + lo[j]
            if abs(den) > 1e-12:
                out[j, t] = g[j] / den
            elif np.isnan(den):
                out[j, t] = den
            else:
                out[j, t] = fill


def rsi(c: FloatArray, ns: tuple[int, ...], fill: float = 0.5) -> list[FloatArray]:
    """RSI as a fraction in ``[0, 1]`` for each window in ``ns`` (TA-Lib's Wilder seeding).

    ``ag / (ag + al)`` with ``ag``/``al`` :func:`wilder` averages (``start=1``) of the gains and
    losses; ``fill`` on flat stretches where both are 0. Bit-identical to computing the
    gains, losses, averages and ratio as separate numpy arrays, in one compiled pass.
    """
    m = len(c)
    c64 = np.ascontiguousarray(c, dtype=np.float64)
    top = min(max(ns, default=0) + 1, m)
    d = np.diff(c64[:top])
    gain, loss = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    seed_g = np.asarray([float(np.mean(gain[:n])) if n < m else np.nan for n in ns])
    seed_l = np.asarray([float(np.mean(loss[:n])) if n < m else np.nan for n in ns])
    out = np.empty((len(ns), m))
    _rsi_loop(
        c64,
        np.asarray(ns, dtype=np.int64),
        seed_g,
        seed_l,
        np.asarray([1.0 / n for n in ns], dtype=np.float64),
        float(fill),
        out,
    )
    return list(out)


def _seeded_recursion(x: FloatArray, n: int, alpha: float, start: int) -> FloatArray:
    """``y[t] = alpha*x[t] + (1-alpha)*y[t-1]``, seeded with ``mean(x[start:start+n])``.

    The first output is at ``start + n - 1``; ``x`` must be finite from ``start`` on. The seed
    is numpy's (pairwise) mean, so it equals the scipy reference bit for bit.
    """
    m = len(x)
    first = start + n - 1
    if first >= m:
        return _nan(m)
    seed = float(np.mean(x[start : first + 1]))
    return np.asarray(
        _recursion_loop(np.ascontiguousarray(x, dtype=np.float64), first, seed, alpha)
    )


def ema(x: FloatArray, n: int, start: int = 0) -> FloatArray:
    """Exponential moving average, ``alpha = 2/(n+1)``, TA-Lib seeding (SMA of first ``n``)."""
    return _seeded_recursion(x, n, 2.0 / (n + 1.0), start)


def wilder(x: FloatArray, n: int, start: int = 0) -> FloatArray:
    """Wilder's smoothing (``alpha = 1/n``) as used by RSI and ATR, seeded like TA-Lib."""
    return _seeded_recursion(x, n, 1.0 / n, start)


@njit(cache=True, nogil=True, error_model="numpy")
def _ewm_loop(x: FloatArray, lam: float) -> FloatArray:
    """``num[t] = x[t] + lam*num[t-1]``, ``den[t] = 1 + lam*den[t-1]``; returns ``num/den``."""
    m = len(x)
    out = np.empty(m)
    num = 0.0
    den = 0.0
    for t in range(m):
        num = x[t] + lam * num
        den = 1.0 + lam * den
        out[t] = num / den
    return out


def ewm_mean(x: FloatArray, halflife: float) -> FloatArray:
    """Bias-corrected exponentially weighted mean (pandas ``adjust=True``), defined from t=0.

    Weights ``lambda**k`` are normalised by their own sum, so early values are an honest
    average of the history seen so far rather than being pulled towards a zero start.
    """
    lam = 0.5 ** (1.0 / halflife)
    return np.asarray(_ewm_loop(np.ascontiguousarray(x, dtype=np.float64), lam))


@njit(cache=True, nogil=True, error_model="numpy")
def _bars_since_change_loop(state: FloatArray, start: int, out: FloatArray) -> None:
    out[:start] = np.nan
    last = start
    for t in range(start, len(state)):
        if t == start or state[t] != state[t - 1]:  # NaN != NaN: a change, as in numpy
            last = t
        out[t] = float(t - last)


def bars_since_change(state: FloatArray, start: int) -> FloatArray:
    """Bars since ``state`` last changed value (0 on the bar it changes), counted from ``start``.

    Entries before ``start`` are NaN; the first defined bar counts as a change. One compiled
    pass (the numpy formulation, a running maximum of change positions, took five).
    """
    m = len(state)
    if start >= m:
        return _nan(m)
    out = np.empty(m)
    _bars_since_change_loop(np.ascontiguousarray(state, dtype=np.float64), start, out)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _safe_div_loop(a: FloatArray, b: FloatArray, fill: float, eps: float, out: FloatArray) -> None:
    for t in range(len(a)):
        d = b[t]
        if abs(d) > eps:
            out[t] = a[t] / d
        elif np.isnan(d):
            out[t] = d
        else:
            out[t] = fill


def safe_div(a: FloatArray, b: FloatArray, fill: float = 0.0, eps: float = 1e-12) -> FloatArray:
    """``a / b`` where ``|b| > eps``, else ``fill``; NaN where ``b`` is NaN. One pass."""
    out = np.empty(len(a))
    f64 = np.float64
    _safe_div_loop(
        np.ascontiguousarray(a, dtype=f64), np.ascontiguousarray(b, dtype=f64), fill, eps, out
    )
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def first_non_finite(mat: np.ndarray) -> tuple[int, int]:
    """``(row, col)`` of the first non-finite entry of a 2-D array, column by column, or
    ``(-1, -1)``: a check without numpy's full boolean copy of the matrix."""
    rows, cols = mat.shape
    for j in range(cols):
        for i in range(rows):
            v = mat[i, j]
            if not np.isfinite(v):
                # the lowest row over all columns, as np.argwhere would report it first
                best_i, best_j = i, j
                for jj in range(j + 1, cols):
                    for ii in range(best_i):
                        if not np.isfinite(mat[ii, jj]):
                            best_i, best_j = ii, jj
                            break
                return best_i, best_j
    return -1, -1


@njit(cache=True, nogil=True, error_model="numpy")
def _bin_of(p: float, lo: float, scale: float, top: int) -> int:
    """``floor((p - lo) * scale)``, the window max folded into the top bin.

    float64 (absolute log prices would lose bins in float32); never below 0 because ``lo`` is
    the window minimum, so truncation is the floor.
    """
    k = int((p - lo) * scale)
    return k if k < top else top - 1


@njit(cache=True, nogil=True, error_model="numpy")
def _profile_loop(
    price: FloatArray,
    volume: FloatArray,
    ref: FloatArray,
    lo_all: FloatArray,
    hi_all: FloatArray,
    n: int,
    bins: int,
    poc: FloatArray,
    supply: FloatArray,
    demand: FloatArray,
) -> None:
    """Fill ``poc``/``supply``/``demand`` from ``n - 1`` on (see :func:`volume_profile`).

    The histogram is kept across windows: while a window's min and max equal the previous
    window's, its bin edges are unchanged and it is the previous histogram minus the leaving
    bar plus the entering bar (O(1)); otherwise (about a third of windows on random-walk
    prices) it is rebuilt from the window's ``n`` bars in window order. A per-bin count resets
    a bin to exactly 0 when its last bar leaves, so empty bins carry no rounding residue and
    ties between empty bins go to the lowest bin as in the definition.
    """
    hist = np.zeros(bins)
    cnt = np.zeros(bins, dtype=np.int64)
    keys = np.empty(n, dtype=np.int64)
    crel = (np.arange(bins) + 0.5) / bins
    prev_lo = np.nan
    prev_hi = np.nan
    for i in range(len(lo_all)):
        t = i + n - 1
        lo = lo_all[i]
        hi = hi_all[i]
        width = hi - lo
        scale = bins / width if width > 0 else 0.0
        if i == 0 or lo != prev_lo or hi != prev_hi:
            for j in range(n):  # keys first (vectorizes), then the scatter in window order
                keys[j] = min(int((price[i + j] - lo) * scale), bins - 1)
            for b in range(bins):
                hist[b] = 0.0
                cnt[b] = 0
            for j in range(n):
                kb = keys[j]
                hist[kb] += volume[i + j]
                cnt[kb] += 1
        else:
            kb = _bin_of(price[t - n], lo, scale, bins)
            cnt[kb] -= 1
            hist[kb] = hist[kb] - volume[t - n] if cnt[kb] else 0.0
            kb = _bin_of(price[t], lo, scale, bins)
            hist[kb] += volume[t]
            cnt[kb] += 1
        prev_lo = lo
        prev_hi = hi
        r = ref[t]
        n_lt = 0  # centres increase with the bin index: bins below r are a prefix
        n_le = 0  # and bins above r a suffix
        for b in range(bins):
            c = lo + crel[b] * width
            n_lt += c < r
            n_le += c <= r
        k_poc = 0
        k_dn = 0
        best = hist[0]
        for b in range(1, bins):  # running first argmax; read off for the prefix below r
            if b == n_lt:
                k_dn = k_poc
            w = hist[b]
            k_poc = b if w > best else k_poc
            best = w if w > best else best
        if n_lt == bins:
            k_dn = k_poc
        k_up = bins - 1
        best = hist[bins - 1]
        for b in range(bins - 2, n_le - 1, -1):  # backwards: ties go to the lower bin
            w = hist[b]
            k_up = b if w >= best else k_up
            best = w if w >= best else best
        poc[t] = r - (lo + crel[k_poc] * width)
        up = lo + crel[k_up] * width if n_le < bins else hi
        supply[t] = max(up - r, 0.0)
        dn = lo + crel[k_dn] * width if n_lt > 0 else lo
        demand[t] = max(r - dn, 0.0)


def volume_profile(
    price: FloatArray,
    volume: FloatArray,
    ref: FloatArray,
    n: int,
    bins: int,
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

    Ties go to the lowest bin; bin centres are ``lo + (j + 0.5) / bins * width``. One compiled
    pass (:func:`_profile_loop`) updates the histogram incrementally while the window's edges
    stay put; the window min/max come from :func:`rolling_min`/:func:`rolling_max`. Causal bit
    for bit: row ``t`` depends only on bars ``<= t``.
    """
    m = len(price)
    poc, supply, demand = _nan(m), _nan(m), _nan(m)
    if n > m:
        return poc, supply, demand
    lo_all = rolling_min(price, n)[n - 1 :]
    hi_all = rolling_max(price, n)[n - 1 :]
    f64 = np.float64
    _profile_loop(
        np.ascontiguousarray(price, dtype=f64),
        np.ascontiguousarray(volume, dtype=f64),
        np.ascontiguousarray(ref, dtype=f64),
        np.ascontiguousarray(lo_all),
        np.ascontiguousarray(hi_all),
        n,
        bins,
        poc,
        supply,
        demand,
    )
    return poc, supply, demand
