"""The cross-asset and exogenous features one timestamp at a time, equal to batch bit for bit.

:class:`CrossAssetStream` keeps what :func:`pipelines.features.cross_asset.cross_asset_features`
carries through the union-of-timestamps grid — each symbol's last log close, the last
reference and own returns, running prefix sums with a ring of their last values — and applies
the same floating-point operations in the same order (the reference mean and the dispersion
go through the same numpy reductions over the same values in the same symbol order). Feed it
every timestamp's bars together, in time order, as the batch grid sees them.

:class:`ExogenousStream` holds each series' published values and answers, for a bar at ``t``,
what :func:`pipelines.features.exogenous.join_exogenous` answers: the newest value published
at or before ``t``, masked when older than ``max_age``.

Both are tested against the batch features on every row (``tests/features``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import pandas as pd

from configs.data import CrossAssetConfig
from pipelines.data.exogenous import ExogenousData
from pipelines.features.cross_asset import (
    _DISPERSION_WINDOW,
    _MIN_PAIRS,
    _RS_WINDOWS,
    _VAR_EPS,
    CROSS_ASSET_NAMES,
)
from pipelines.features.exogenous import exogenous_feature_names
from pipelines.features.extended import extended_feature_names
from pipelines.features.stream import StreamingFeatures

_NAN: Final = float("nan")


class _Window:
    """``_wsum``: a running prefix sum and its last ``n + 1`` values."""

    __slots__ = ("_cs", "_n", "_sum")

    def __init__(self, n: int) -> None:
        self._n = n
        self._sum = 0.0
        self._cs: deque[float] = deque([0.0], maxlen=n + 1)

    def push(self, x: float) -> float:
        self._sum += x
        self._cs.append(self._sum)
        return self._sum - self._cs[0] if len(self._cs) == self._n + 1 else self._sum


class _Moments:
    """``_corr(x, y, window)``: (pairs, corr, beta) from six running window sums."""

    __slots__ = ("_n", "_x", "_xx", "_xy", "_y", "_yy")

    def __init__(self, window: int) -> None:
        self._n, self._x, self._y, self._xy, self._xx, self._yy = (
            _Window(window) for _ in range(6)
        )

    def push(self, x: float, y: float) -> tuple[float, float, float]:
        ok = math.isfinite(x) and math.isfinite(y)
        x0 = x if ok else 0.0
        y0 = y if ok else 0.0
        n = self._n.push(1.0 if ok else 0.0)
        safe = max(n, 1.0)
        mx = self._x.push(x0) / safe
        my = self._y.push(y0) / safe
        cov = self._xy.push(x0 * y0) / safe - mx * my
        vx = max(self._xx.push(x0 * x0) / safe - mx * mx, 0.0)
        vy = max(self._yy.push(y0 * y0) / safe - my * my, 0.0)
        den = float(np.sqrt(vx * vy))
        corr = min(max(cov / den, -1.0), 1.0) if den > _VAR_EPS else 0.0
        beta = cov / vy if vy > _VAR_EPS else 0.0
        return n, corr, beta


class _SymbolState:
    __slots__ = ("corr", "lag", "last_q", "last_r", "lead", "rs", "rs_ok")

    def __init__(self, window: int) -> None:
        self.corr = _Moments(window)
        self.lead = _Moments(window)
        self.lag = _Moments(window)
        self.rs = [_Window(w) for w in _RS_WINDOWS]
        self.rs_ok = [_Window(w) for w in _RS_WINDOWS]
        self.last_q = _NAN
        self.last_r = _NAN


class CrossAssetStream:
    """Streaming :data:`CROSS_ASSET_NAMES` for a fixed set of symbols (the batch's symbols)."""

    def __init__(self, symbols: Sequence[str], cfg: CrossAssetConfig) -> None:
        self.symbols = tuple(sorted(set(map(str, symbols))))
        if cfg.benchmark is not None and cfg.benchmark not in self.symbols:
            raise ValueError(
                f"data.cross_asset.benchmark {cfg.benchmark!r} is not among the symbols "
                f"({', '.join(self.symbols)})"
            )
        self._bench = None if cfg.benchmark is None else self.symbols.index(cfg.benchmark)
        self._min_pairs = max(_MIN_PAIRS, cfg.window // 2)
        k = len(self.symbols)
        self._lc = np.full(k, np.nan)
        self._history: deque[np.ndarray] = deque(maxlen=_DISPERSION_WINDOW + 1)
        self._states = [_SymbolState(cfg.window) for _ in range(k)]
        self._last_ts: pd.Timestamp | None = None

    def update(self, ts: pd.Timestamp, closes: Mapping[str, float]) -> dict[str, np.ndarray]:
        """One grid row: every bar stamped ``ts`` (symbol -> close). Returns, for each symbol
        in ``closes``, its features in :data:`CROSS_ASSET_NAMES` order (float64)."""
        stamp = pd.Timestamp(ts)
        if self._last_ts is not None and stamp <= self._last_ts:
            raise ValueError(f"timestamps must increase: {stamp} after {self._last_ts}")
        self._last_ts = stamp
        unknown = sorted(set(closes) - set(self.symbols))
        if unknown:
            raise ValueError(f"unknown symbol(s) {unknown}; configured: {list(self.symbols)}")
        prev = self._lc.copy()
        for sym, close in closes.items():
            self._lc[self.symbols.index(sym)] = np.log(np.float64(close))
        r = self._lc - prev  # NaN until a symbol has two closes (the batch diff of the ffill)
        if len(self._history) == 0:
            r[:] = np.nan  # the grid's first row has no return
        self._history.append(self._lc.copy())
        disp = self._dispersion()
        out: dict[str, np.ndarray] = {}
        for s, st in enumerate(self._states):
            x = float(r[s])
            q = self._reference(r, s)
            n, corr, beta = st.corr.push(x, q)
            _, lead, _ = st.lead.push(x, st.last_q)
            _, lag, _ = st.lag.push(st.last_r, q)
            st.last_q, st.last_r = q, x
            cols = [corr, beta, lead, lag]
            for win, total, count in zip(_RS_WINDOWS, st.rs, st.rs_ok, strict=True):
                d = x - q
                ok = math.isfinite(d)
                rs = total.push(d if ok else 0.0)
                cols.append(0.0 if count.push(1.0 if ok else 0.0) < win // 2 else rs)
            missing = n < self._min_pairs
            if self.symbols[s] in closes:
                feats = [0.0 if missing else v for v in cols]
                out[self.symbols[s]] = np.array([*feats, disp, float(missing)], dtype=np.float64)
        return out

    def _reference(self, r: np.ndarray, s: int) -> float:
        if self._bench is not None and self._bench != s:
            return float(r[self._bench])
        others = np.delete(r, s)
        if len(others) == 0:
            return _NAN
        cnt = int(np.isfinite(others).sum())
        return float(np.nansum(others) / cnt) if cnt > 0 else _NAN

    def _dispersion(self) -> float:
        if len(self._history) <= _DISPERSION_WINDOW:
            return 0.0
        ret = self._history[-1] - self._history[0]
        ok = np.isfinite(ret)
        cnt = int(ok.sum())
        mean = float(np.where(ok, ret, 0.0).sum() / cnt) if cnt > 0 else 0.0
        dev = np.where(ok, ret - mean, 0.0)
        return float(np.sqrt((dev * dev).sum() / cnt)) if cnt > 1 else 0.0


class ExogenousStream:
    """Streaming exogenous features: publish values as they arrive, ask at each bar."""

    def __init__(self, series: Sequence[ExogenousData]) -> None:
        self.names = exogenous_feature_names(series)
        self._series = list(series)
        self._pub: dict[str, list[int]] = {s.name: [] for s in series}
        self._values: dict[str, list[np.ndarray]] = {s.name: [] for s in series}
        for s in series:
            for ts, row in zip(s.frame["ts"], s.frame[list(s.columns)].to_numpy(), strict=True):
                self.publish(s.name, ts, row)

    def publish(self, name: str, ts: pd.Timestamp, values: Sequence[float] | np.ndarray) -> None:
        """Record series ``name``'s value stamped ``ts`` (stamps in increasing order)."""
        s = next(x for x in self._series if x.name == name)
        pub = _ns(ts) + int(s.lag.value)
        if self._pub[name] and pub <= self._pub[name][-1]:
            raise ValueError(f"exogenous series {name!r}: stamps must increase ({ts})")
        self._pub[name].append(pub)
        self._values[name].append(np.asarray(values, dtype=np.float64))

    def features(self, ts: pd.Timestamp) -> np.ndarray:
        """The exogenous features of a bar at ``ts``, in :attr:`names` order (float64)."""
        t = _ns(ts)
        out: list[float] = []
        for s in self._series:
            pubs = self._pub[s.name]
            i = int(np.searchsorted(np.asarray(pubs, dtype=np.int64), t, side="right")) - 1
            missing = i < 0 or t - pubs[i] > int(s.max_age.value)
            row = self._values[s.name][i] if not missing else np.zeros(len(s.columns))
            out += [float(v) for v in row]
            out.append(float(missing))
        return np.array(out, dtype=np.float64)


class ExtendedStreamingFeatures:
    """The 43 streaming features plus the configured cross-asset and exogenous ones: each row
    equals :func:`pipelines.features.extended.featurize_extended`'s (in float64; the batch
    frame rounds to float32), columns in :func:`extended_feature_names` order."""

    def __init__(
        self,
        symbols: Sequence[str],
        exogenous: Sequence[ExogenousData] = (),
        cross_asset: CrossAssetConfig | None = None,
    ) -> None:
        self.names = extended_feature_names(exogenous, cross_asset)
        self.own = StreamingFeatures()
        on = cross_asset is not None and cross_asset.enabled
        self.cross = CrossAssetStream(symbols, cross_asset) if on and cross_asset else None
        self.exogenous = ExogenousStream(exogenous) if exogenous else None

    def update_row(
        self, ts: pd.Timestamp, bars: Mapping[str, Mapping[str, float]]
    ) -> dict[str, np.ndarray | None]:
        """Every bar stamped ``ts`` (symbol -> high, low, close, volume): each symbol's full
        feature row (float64), or None during its warm-up."""
        cross = (
            self.cross.update(ts, {sym: bar["close"] for sym, bar in bars.items()})
            if self.cross is not None
            else {}
        )
        exo = self.exogenous.features(ts) if self.exogenous is not None else np.empty(0)
        out: dict[str, np.ndarray | None] = {}
        for sym, bar in bars.items():
            own = self.own.update(
                sym,
                ts,
                float(bar["high"]),
                float(bar["low"]),
                float(bar["close"]),
                float(bar["volume"]),
            )
            parts = [own, cross[sym]] if self.cross is not None else [own]
            out[sym] = None if own is None else np.concatenate([*parts, exo])
        return out


def _ns(ts: pd.Timestamp) -> int:
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


__all__ = ["CROSS_ASSET_NAMES", "CrossAssetStream", "ExogenousStream", "ExtendedStreamingFeatures"]
