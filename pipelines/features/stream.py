"""The 43 features one bar at a time: per-symbol state equal to batch ``featurize``.

A live bot sees one new bar per symbol per interval; recomputing 200+ bars of history per
decision would cost milliseconds and, worse, could drift from what training saw. Each
:class:`SymbolFeatureState` keeps exactly the state the batch kernels carry through a series
(prefix sums with their last ``n + 1`` values, seeded recursions, windows for extrema, the
volume-profile histogram) and applies the *same floating-point operations in the same order*
as :mod:`pipelines.features.compute` / :mod:`pipelines.features.kernels`:

- rolling sums and moments: the batch kernels difference running prefix sums
  (``cs[t+1] - cs[t+1-n]``); the state keeps the running sum and a ring of its last values,
  so the difference is the same two numbers;
- EMA / Wilder: seeded with ``np.mean`` of the first window (numpy's pairwise sum, called on
  the same values), then ``alpha*x + (1-alpha)*y``;
- rolling extrema: exact, from a window of the last ``n`` values;
- volume profile: the same incremental histogram with the same rebuild rule;
- logs, sines and cosines go through numpy's ufuncs, as in the batch code.

So each row equals the batch row bit for bit in float64 (tested on every feature and every bar
against ``featurize``, which rounds to float32). Cost per bar is O(1) except the rolling
extrema (O(window), window <= 100) and a volume-profile rebuild (O(100)) when the window's
price range changes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from pipelines.features.names import FEATURE_NAMES, WARMUP_BARS

_EPS: Final = 1e-12
_LN2: Final = float(np.log(2.0))
_PARK_SCALE: Final = 1.0 / (24 * 4.0 * _LN2)
_PROFILE_WINDOW: Final = 100
_PROFILE_BINS: Final = 12
_CREL: Final = tuple(float(x) for x in (np.arange(_PROFILE_BINS) + 0.5) / _PROFILE_BINS)
_VOLUME_LAM: Final = 0.5 ** (1.0 / 1000.0)
_JUMP_LAM: Final = 0.5 ** (1.0 / 500.0)
_JUMP_SIGMAS: Final = 3.0
_SHIFT_HORIZON: Final = 1024  # kernels._shift_of looks for the first finite value this far
_HOUR_SCALE: Final = 2.0 * np.pi / 86400.0
_DOW_SCALE: Final = 2.0 * np.pi / 7.0

_log = np.log
_log1p = np.log1p


def _div(a: float, b: float, fill: float = 0.0) -> float:
    """Scalar ``compute._div``: ``a / b`` where ``|b| > eps``, else ``fill``."""
    return a / b if abs(b) > _EPS else fill


def _log_ratio(a: float, b: float) -> float:
    """Scalar ``compute._log_ratio``: floored logs, so flat series give 0."""
    return float(_log(max(a, _EPS))) - float(_log(max(b, _EPS)))


def _sign(x: float) -> float:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)


class _Prefix:
    """A running prefix sum and its last ``longest + 1`` values (``kernels.window_sums``).

    Values at positions ``< head`` count as 0 (the NaN head of returns); ``window(n)`` is
    ``cs[t+1] - cs[t+1-n]``, the batch kernel's expression, once ``n`` values from ``head`` on
    are in.
    """

    __slots__ = ("_count", "_cs", "_head", "_sum")

    def __init__(self, longest: int, head: int = 0) -> None:
        self._cs: deque[float] = deque([0.0], maxlen=longest + 1)
        self._sum = 0.0
        self._count = 0
        self._head = head

    def push(self, x: float) -> None:
        if self._count >= self._head:
            # np.cumsum's first element is x itself, not 0.0 + x (they differ only for -0.0)
            self._sum = x if self._count == self._head else self._sum + x
        self._cs.append(self._sum)
        self._count += 1

    def window(self, n: int) -> float:
        """Sum of the last ``n`` values; NaN until the window holds no head position."""
        if self._count < n + self._head:
            return math.nan
        return self._cs[-1] - self._cs[-1 - n]


class _MeanVar:
    """``kernels.rolling_mean_var`` for several windows: shifted prefix sums of x and x**2."""

    __slots__ = ("_c1", "_c2", "_count", "_cs1", "_cs2", "_ddof", "_head", "_shift")

    def __init__(self, longest: int, ddof: int = 0, head: int = 0) -> None:
        self._cs1: deque[float] = deque([0.0], maxlen=longest + 1)
        self._cs2: deque[float] = deque([0.0], maxlen=longest + 1)
        self._c1 = 0.0
        self._c2 = 0.0
        self._count = 0
        self._head = head
        self._ddof = ddof
        self._shift: float | None = None

    def push(self, x: float) -> None:
        if self._shift is None and math.isfinite(x):
            self._shift = x if self._count < _SHIFT_HORIZON else 0.0
        if self._count >= self._head:
            d = x - (self._shift if self._shift is not None else 0.0)
            self._c1 += d
            self._c2 += d * d
        self._cs1.append(self._c1)
        self._cs2.append(self._c2)
        self._count += 1

    def mean_var(self, n: int) -> tuple[float, float]:
        if self._count < n + self._head:
            return math.nan, math.nan
        a = self._cs1[-1] - self._cs1[-1 - n]
        b = self._cs2[-1] - self._cs2[-1 - n]
        v = (a * a / float(-n) + b) / float(n - self._ddof)
        shift = self._shift if self._shift is not None else 0.0
        return a / float(n) + shift, (0.0 if v < 0.0 else v)


class _Seeded:
    """``kernels._seeded_recursion``: SMA seed of the first ``n`` values from ``start``."""

    __slots__ = ("_a", "_b", "_buf", "_first", "_n", "_t", "value")

    def __init__(self, n: int, alpha: float, start: int = 0) -> None:
        self._n = n
        self._a = alpha
        self._b = 1.0 - alpha
        self._first = start + n - 1
        self._buf: list[float] = []
        self._t = 0
        self.value = math.nan

    def push(self, x: float) -> float:
        t = self._t
        self._t += 1
        if t < self._first:
            if t >= self._first - self._n + 1:
                self._buf.append(x)
        elif t == self._first:
            self._buf.append(x)
            self.value = float(np.mean(np.asarray(self._buf, dtype=np.float64)))
            self._buf = []
        else:
            self.value = self._a * x + self._b * self.value
        return self.value


class _Ewm:
    """``kernels.ewm_mean``: bias-corrected EWM, ``num/den`` of two recursions."""

    __slots__ = ("_den", "_lam", "_num")

    def __init__(self, lam: float) -> None:
        self._lam = lam
        self._num = 0.0
        self._den = 0.0

    def push(self, x: float) -> float:
        self._num = x + self._lam * self._num
        self._den = 1.0 + self._lam * self._den
        return self._num / self._den


class _VolumeProfile:
    """``kernels._profile_loop`` one bar at a time (same histogram, same rebuild rule)."""

    __slots__ = ("_cnt", "_hist", "_prev_hi", "_prev_lo", "_price", "_started", "_volume")

    def __init__(self) -> None:
        n = _PROFILE_WINDOW
        self._price: deque[float] = deque(maxlen=n + 1)
        self._volume: deque[float] = deque(maxlen=n + 1)
        self._hist = [0.0] * _PROFILE_BINS
        self._cnt = [0] * _PROFILE_BINS
        self._prev_lo = math.nan
        self._prev_hi = math.nan
        self._started = False

    def push(self, price: float, volume: float, ref: float) -> tuple[float, float, float]:
        n, bins = _PROFILE_WINDOW, _PROFILE_BINS
        self._price.append(price)
        self._volume.append(volume)
        have = len(self._price)
        if have < n:
            return math.nan, math.nan, math.nan
        # the window is the last n entries; with n + 1 stored, entry 0 is the bar that left
        off = have - n
        window = list(self._price)[off:]
        lo = min(window)
        hi = max(window)
        width = hi - lo
        scale = bins / width if width > 0 else 0.0
        hist, cnt = self._hist, self._cnt
        if not self._started or lo != self._prev_lo or hi != self._prev_hi:
            vols = list(self._volume)[off:]
            for b in range(bins):
                hist[b] = 0.0
                cnt[b] = 0
            for p, v in zip(window, vols, strict=True):
                kb = min(int((p - lo) * scale), bins - 1)
                hist[kb] += v
                cnt[kb] += 1
            self._started = True
        else:
            kb = min(int((self._price[0] - lo) * scale), bins - 1)
            cnt[kb] -= 1
            hist[kb] = hist[kb] - self._volume[0] if cnt[kb] else 0.0
            kb = min(int((price - lo) * scale), bins - 1)
            hist[kb] += volume
            cnt[kb] += 1
        self._prev_lo = lo
        self._prev_hi = hi
        r = ref
        n_lt = 0
        n_le = 0
        for b in range(bins):
            c = lo + _CREL[b] * width
            n_lt += c < r
            n_le += c <= r
        k_poc = 0
        k_dn = 0
        best = hist[0]
        for b in range(1, bins):
            if b == n_lt:
                k_dn = k_poc
            w = hist[b]
            if w > best:
                k_poc = b
                best = w
        if n_lt == bins:
            k_dn = k_poc
        k_up = bins - 1
        best = hist[bins - 1]
        for b in range(bins - 2, n_le - 1, -1):
            w = hist[b]
            if w >= best:
                k_up = b
                best = w
        poc = r - (lo + _CREL[k_poc] * width)
        up = lo + _CREL[k_up] * width if n_le < bins else hi
        dn = lo + _CREL[k_dn] * width if n_lt > 0 else lo
        return poc, max(up - r, 0.0), max(r - dn, 0.0)


def epoch_seconds(ts: pd.Timestamp | datetime | np.datetime64 | str) -> int:
    """Epoch seconds (UTC) of one timestamp, as ``compute._utc_seconds`` reads a column."""
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(np.datetime64(stamp.to_datetime64(), "s").astype(np.int64))


class SymbolFeatureState:
    """Incremental features of one symbol: feed bars in time order with :meth:`update`.

    ``update`` returns the 43 features (float64, ``FEATURE_NAMES`` order) of the bar just
    added, or ``None`` during the first ``WARMUP_BARS`` bars (the rows ``featurize`` drops).
    Bars are validated as ``featurize`` validates them (finite, prices > 0, volume >= 0,
    strictly increasing time); a rejected bar leaves the state unchanged.
    """

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self.n_bars = 0
        self.last_sec: int | None = None
        self._lc: deque[float] = deque(maxlen=169)
        self._close_prev = math.nan
        self._r_prev = math.nan
        self._rv = _MeanVar(200, ddof=1, head=1)
        self._park = _Prefix(24)
        self._atr14 = _Seeded(14, 1.0 / 14, start=1)
        self._atr100 = _Seeded(100, 1.0 / 100, start=1)
        self._ema = {n: _Seeded(n, 2.0 / (n + 1.0)) for n in (12, 20, 26, 50, 200)}
        self._cross_prev = math.nan
        self._cross_age = 0
        self._rsi = {n: (_Seeded(n, 1.0 / n, 1), _Seeded(n, 1.0 / n, 1)) for n in (14, 50)}
        self._macd_signal = _Seeded(9, 2.0 / (9 + 1.0), start=25)
        self._bb = _MeanVar(20)
        self._lv = _MeanVar(200)
        self._lv_ewm = _Ewm(_VOLUME_LAM)
        self._signed = _Prefix(24, head=1)
        self._vol = _Prefix(24)
        self._profile = _VolumeProfile()
        self._high: deque[float] = deque(maxlen=50)
        self._low: deque[float] = deque(maxlen=50)
        self._hh20_prev = math.nan
        self._ll20_prev = math.nan
        self._rr = _Prefix(48, head=2)
        self._r2 = _Prefix(48, head=1)
        self._s_r2_prev = math.nan
        self._jump_ewm = _Ewm(_JUMP_LAM)
        self._sigma_prev = math.nan
        self._jump = _Prefix(100)

    @property
    def ready(self) -> bool:
        """True once the last bar added produced features (past the warm-up)."""
        return self.n_bars > WARMUP_BARS

    def _check(self, sec: int, high: float, low: float, close: float, volume: float) -> None:
        where = f"symbol {self.symbol!r}, bar {self.n_bars} (epoch second {sec})"
        for name, value in (("high", high), ("low", low), ("close", close)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{where}: field {name!r} = {value!r}; prices must be > 0")
        if not (math.isfinite(volume) and volume >= 0):
            raise ValueError(f"{where}: field 'volume' = {volume!r}; volume must be >= 0")
        if self.last_sec is not None and sec <= self.last_sec:
            raise ValueError(
                f"{where}: field 'ts' is not after the previous bar (epoch second "
                f"{self.last_sec}); bars must arrive in strictly increasing time"
            )

    def update(
        self, sec: int, high: float, low: float, close: float, volume: float
    ) -> np.ndarray | None:
        """Add one bar (``sec`` = epoch seconds UTC); its features, or None in warm-up."""
        sec, high, low, close, volume = (
            int(sec),
            float(high),
            float(low),
            float(close),
            float(volume),
        )
        self._check(sec, high, low, close, volume)
        t = self.n_bars
        self.n_bars += 1
        self.last_sec = sec
        f: dict[str, float] = {}
        emit = t >= WARMUP_BARS

        lc = float(_log(close))
        lcs = self._lc
        r = lc - lcs[-1] if lcs else math.nan
        lcs.append(lc)
        if emit:
            for n in (1, 6, 24, 72, 168):
                f[f"ret_{n}"] = lc - lcs[-1 - n]
        self._volatility(f, emit, high, low, r)
        self._trend(f, t, emit, high, low, close, lc)
        self._volume(f, t, emit, high, low, close, volume, lc, r)
        self._range(f, t, emit, high, low, close, r)
        self._close_prev = close
        if not emit:
            return None
        _time(f, sec)
        return np.fromiter((f[name] for name in FEATURE_NAMES), dtype=np.float64, count=43)

    def _volatility(
        self, f: dict[str, float], emit: bool, high: float, low: float, r: float
    ) -> None:
        """Realized, Parkinson and ratio volatility."""
        self._rv.push(r)
        hl = float(_log(high / low))
        hl *= hl
        self._park.push(hl)
        if emit:
            for n in (24, 72, 200):
                f[f"rv_{n}"] = math.sqrt(self._rv.mean_var(n)[1])
            f["park_vol_24"] = math.sqrt(self._park.window(24) * _PARK_SCALE)
            f["rv_ratio_24_200"] = _log_ratio(f["rv_24"], f["rv_200"])

    def _trend(
        self,
        f: dict[str, float],
        t: int,
        emit: bool,
        high: float,
        low: float,
        close: float,
        lc: float,
    ) -> None:
        """ATR, EMAs and their cross, RSI, MACD and Bollinger."""
        # ATR
        c_prev = self._close_prev
        if t == 0:
            tr = math.nan
        else:
            tr = high - low
            tr = max(tr, abs(high - c_prev))
            tr = max(tr, abs(low - c_prev))
        atr14 = self._atr14.push(tr)
        atr100 = self._atr100.push(tr)
        if emit:
            f["atr_14"] = atr14 / close
            f["atr_ratio_14_100"] = _log_ratio(atr14, atr100)

        # EMA, cross
        e = {n: s.push(close) for n, s in self._ema.items()}
        if t >= 49:
            cross = _sign(e[20] - e[50])
            if t == 49 or cross != self._cross_prev:
                self._cross_age = 0
            else:
                self._cross_age += 1
            self._cross_prev = cross
        if emit:
            f["close_ema_20"] = float(_log(close / e[20]))
            f["close_ema_50"] = float(_log(close / e[50]))
            f["close_ema_200"] = float(_log(close / e[200]))
            f["ema_spread_20_50"] = float(_log(e[20] / e[50]))
            f["ema_spread_50_200"] = float(_log(e[50] / e[200]))
            f["ema_cross_20_50"] = self._cross_prev
            f["ema_cross_age_20_50"] = float(_log1p(float(self._cross_age)))

        # RSI
        d = close - c_prev if t else math.nan
        gain = max(d, 0.0) if t else math.nan
        loss = max(-d, 0.0) if t else math.nan
        for n, (g_state, l_state) in self._rsi.items():
            ag, al = g_state.push(gain), l_state.push(loss)
            if emit:
                f[f"rsi_{n}"] = _div(ag, ag + al, fill=0.5)

        # MACD
        line = e[12] - e[26]
        signal = self._macd_signal.push(line)
        if emit:
            inv_c = 1.0 / close
            f["macd"] = line * inv_c
            f["macd_signal"] = signal * inv_c
            f["macd_hist"] = (line - signal) * inv_c

        # Bollinger
        self._bb.push(lc)
        if emit:
            mid, var = self._bb.mean_var(20)
            sd = math.sqrt(var)
            f["bb_pos_20"] = _div(lc - mid, 2.0 * sd)
            f["bb_width_20"] = sd * 4.0

    def _volume(
        self,
        f: dict[str, float],
        t: int,
        emit: bool,
        high: float,
        low: float,
        close: float,
        volume: float,
        lc: float,
        r: float,
    ) -> None:
        """Volume z-scores and levels, signed volume and the volume profile."""
        lv = float(_log1p(volume))
        self._lv.push(lv)
        lv_base = self._lv_ewm.push(lv)
        signed = _sign(r) * volume if t else math.nan
        self._signed.push(signed)
        self._vol.push(volume)
        typical = high + low
        typical += close
        typical /= 3.0
        poc, supply, demand = self._profile.push(float(_log(typical)), volume, lc)
        if emit:
            m24, var24 = self._lv.mean_var(24)
            m200, var200 = self._lv.mean_var(200)
            f["vol_z_24"] = _div(lv - m24, math.sqrt(var24))
            f["vol_z_200"] = _div(lv - m200, math.sqrt(var200))
            f["vol_ratio_24_200"] = m24 - m200
            f["vol_level_long"] = m24 - lv_base
            f["signed_vol_24"] = _div(self._signed.window(24), self._vol.window(24))
            f["poc_dist_100"] = poc
            f["supply_dist_100"] = supply
            f["demand_dist_100"] = demand

    def _range(
        self,
        f: dict[str, float],
        t: int,
        emit: bool,
        high: float,
        low: float,
        close: float,
        r: float,
    ) -> None:
        """Range position, breakouts, lag-1 autocorrelation and jump frequency."""
        self._high.append(high)
        self._low.append(low)
        hh20_prev, ll20_prev = self._hh20_prev, self._ll20_prev
        if t >= 19:
            highs, lows = list(self._high), list(self._low)
            self._hh20_prev = max(highs[-20:])
            self._ll20_prev = min(lows[-20:])
        self._rr.push(r * self._r_prev)
        self._r2.push(r * r)
        s_r2 = self._r2.window(48)
        r0 = 0.0 if math.isnan(r) else r
        jump = 1.0 if abs(r0) > self._sigma_prev else 0.0
        self._jump.push(jump)
        self._sigma_prev = math.sqrt(self._jump_ewm.push(r0 * r0)) * _JUMP_SIGMAS
        if emit:
            hh50, ll50 = max(self._high), min(self._low)
            f["range_pos_50"] = _div(close - ll50, hh50 - ll50, fill=0.5)
            f["breakout_up_20"] = float(_log(close / hh20_prev))
            f["breakout_dn_20"] = float(_log(close / ll20_prev))
            f["autocorr_48"] = _div(self._rr.window(48), math.sqrt(self._s_r2_prev * s_r2))
            f["jump_freq_100"] = self._jump.window(100) / 100.0
        self._s_r2_prev = s_r2
        self._r_prev = r


def _time(f: dict[str, float], sec: int) -> None:
    """Hour-of-day and day-of-week on the unit circle (1970-01-01 was a Thursday)."""
    day = sec % 86400
    hour_angle = day * _HOUR_SCALE
    dow_angle = ((sec // 86400) + 3) % 7 + day / 86400.0
    dow_angle *= _DOW_SCALE
    f["hour_sin"] = float(np.sin(hour_angle))
    f["hour_cos"] = float(np.cos(hour_angle))
    f["dow_sin"] = float(np.sin(dow_angle))
    f["dow_cos"] = float(np.cos(dow_angle))


class StreamingFeatures:
    """Per-symbol :class:`SymbolFeatureState`, created on a symbol's first bar."""

    def __init__(self) -> None:
        self.states: dict[str, SymbolFeatureState] = {}

    def update(
        self,
        symbol: str,
        ts: pd.Timestamp | datetime | np.datetime64 | str,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> np.ndarray | None:
        """Add one bar of ``symbol``; its 43 features (float64), or None during warm-up."""
        state = self.states.get(symbol)
        if state is None:
            state = self.states[symbol] = SymbolFeatureState(symbol)
        return state.update(epoch_seconds(ts), high, low, close, volume)

    def update_bar(self, bar: Mapping[str, Any]) -> np.ndarray | None:
        """``update`` from a mapping with the bar contract's fields (``ts``, ``symbol``, ...)."""
        return self.update(
            str(bar["symbol"]),
            bar["ts"],
            float(bar["high"]),
            float(bar["low"]),
            float(bar["close"]),
            float(bar["volume"]),
        )
