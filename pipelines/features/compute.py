"""Bars → the 43 features, per symbol, causal and vectorized.

``compute_features`` keeps the input's rows (NaN in each symbol's warm-up); ``featurize`` is
what the pipeline calls: warm-up rows dropped explicitly, float32, sorted by (symbol, ts).
Each symbol is computed on its own arrays, so no value ever leaks across symbols.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS
from pipelines.features import kernels as k
from pipelines.features.names import FEATURE_NAMES, WARMUP_BARS

logger = logging.getLogger(__name__)

_EPS = 1e-12
_LN2 = float(np.log(2.0))
#: Volume profile: window, bins. Trade-off of resolution against cost (it is the one kernel that
#: touches ``window`` values per bar); 100 bars x 12 bins resolves a regime-length range.
_PROFILE_WINDOW = 100
_PROFILE_BINS = 12
#: Half-lives (bars) of the long baselines; much longer than a regime (~200 bars) so the
#: baseline is the symbol's own normal level, not the current regime's.
_VOLUME_BASELINE_HALFLIFE = 1000.0
_JUMP_BASELINE_HALFLIFE = 500.0
_JUMP_SIGMAS = 3.0


@dataclass(frozen=True)
class FeatureSet:
    """Features ready for training: warm-up rows already removed.

    Attributes
    ----------
    frame:
        Columns ``ts``, ``symbol`` and the 43 :data:`FEATURE_NAMES` (float32, finite), sorted by
        (symbol, ts), index ``0..n-1``.
    warmup_dropped:
        Rows removed in total (``min(len, WARMUP_BARS)`` per symbol).
    """

    frame: pd.DataFrame
    warmup_dropped: int

    @property
    def X(self) -> np.ndarray:
        """The feature matrix ``[n, 43]`` float32, columns in :data:`FEATURE_NAMES` order."""
        return self.frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float32)


def _div(a: np.ndarray, b: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``a / b`` where ``|b| > eps``, else ``fill`` (flat prices, zero volume); NaN kept."""
    ok = np.abs(b) > _EPS
    out = np.where(ok, a / np.where(ok, b, 1.0), fill)
    return np.where(np.isnan(a) | np.isnan(b), np.nan, out)


def _log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(a / b)`` for non-negative scales, floored so flat series give 0, not -inf."""
    return np.log(np.maximum(a, _EPS)) - np.log(np.maximum(b, _EPS))


def _utc_seconds(ts: pd.Series) -> np.ndarray:
    """Epoch seconds of a datetime column (naive timestamps are taken as UTC)."""
    idx = pd.DatetimeIndex(ts)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return np.asarray(idx.values.astype("datetime64[s]").astype(np.int64))


def _time_features(sec: np.ndarray) -> dict[str, np.ndarray]:
    hour = (sec % 86400) / 3600.0
    dow = ((sec // 86400) + 3) % 7 + hour / 24.0  # 1970-01-01 was a Thursday; Monday = 0
    two_pi = 2.0 * np.pi
    return {
        "hour_sin": np.sin(two_pi * hour / 24.0),
        "hour_cos": np.cos(two_pi * hour / 24.0),
        "dow_sin": np.sin(two_pi * dow / 7.0),
        "dow_cos": np.cos(two_pi * dow / 7.0),
    }


def _price_features(
    h: np.ndarray, lo: np.ndarray, c: np.ndarray, lc: np.ndarray, r: np.ndarray
) -> dict[str, np.ndarray]:
    """Returns, volatility, ATR, EMA, RSI, MACD and Bollinger features."""
    f: dict[str, np.ndarray] = {f"ret_{n}": k.diff(lc, n) for n in (1, 6, 24, 72, 168)}

    for n in (24, 72, 200):
        f[f"rv_{n}"] = k.rolling_std(r, n, ddof=1)
    hl = np.log(h / lo)
    f["park_vol_24"] = np.sqrt(k.rolling_mean(hl * hl, 24) / (4.0 * _LN2))
    f["rv_ratio_24_200"] = _log_ratio(f["rv_24"], f["rv_200"])

    c_prev = k.lag(c, 1)
    tr = np.maximum(h - lo, np.maximum(np.abs(h - c_prev), np.abs(lo - c_prev)))
    atr14, atr100 = k.wilder(tr, 14, start=1), k.wilder(tr, 100, start=1)
    f["atr_14"] = atr14 / c
    f["atr_ratio_14_100"] = _log_ratio(atr14, atr100)

    e = {n: k.ema(c, n) for n in (12, 20, 26, 50, 200)}
    f["close_ema_20"] = np.log(c / e[20])
    f["close_ema_50"] = np.log(c / e[50])
    f["close_ema_200"] = np.log(c / e[200])
    f["ema_spread_20_50"] = np.log(e[20] / e[50])
    f["ema_spread_50_200"] = np.log(e[50] / e[200])
    cross = np.sign(e[20] - e[50])
    f["ema_cross_20_50"] = cross
    f["ema_cross_age_20_50"] = np.log1p(k.bars_since_change(cross, start=49))

    d = k.diff(c, 1)
    gain, loss = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    for n in (14, 50):
        ag, al = k.wilder(gain, n, start=1), k.wilder(loss, n, start=1)
        f[f"rsi_{n}"] = _div(ag, ag + al, fill=0.5)

    line = e[12] - e[26]
    signal = k.ema(line, 9, start=25)
    f["macd"] = line / c
    f["macd_signal"] = signal / c
    f["macd_hist"] = (line - signal) / c

    mid, sd = k.rolling_mean(lc, 20), k.rolling_std(lc, 20)
    f["bb_pos_20"] = _div(lc - mid, 2.0 * sd)
    f["bb_width_20"] = 4.0 * sd
    return f


def _volume_features(
    h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, lc: np.ndarray, r: np.ndarray
) -> dict[str, np.ndarray]:
    """Volume z-scores and levels, signed volume and the volume-profile distances."""
    lv = np.log1p(v)
    m24, m200 = k.rolling_mean(lv, 24), k.rolling_mean(lv, 200)
    f = {
        "vol_z_24": _div(lv - m24, k.rolling_std(lv, 24)),
        "vol_z_200": _div(lv - m200, k.rolling_std(lv, 200)),
        "vol_ratio_24_200": m24 - m200,
        "vol_level_long": m24 - k.ewm_mean(lv, _VOLUME_BASELINE_HALFLIFE),
        "signed_vol_24": _div(k.rolling_sum(np.sign(r) * v, 24), k.rolling_sum(v, 24)),
    }
    typical = np.log((h + lo + c) / 3.0)
    poc, supply, demand = k.volume_profile(typical, v, lc, _PROFILE_WINDOW, _PROFILE_BINS)
    f["poc_dist_100"] = poc
    f["supply_dist_100"] = supply
    f["demand_dist_100"] = demand
    return f


def _range_features(
    h: np.ndarray, lo: np.ndarray, c: np.ndarray, r: np.ndarray
) -> dict[str, np.ndarray]:
    """Range position, breakouts, lag-1 autocorrelation and jump frequency."""
    hh50, ll50 = k.rolling_max(h, 50), k.rolling_min(lo, 50)
    r_prev = k.lag(r, 1)
    num = k.rolling_sum(r * r_prev, 48)
    den = np.sqrt(k.rolling_sum(r * r, 48) * k.rolling_sum(r_prev * r_prev, 48))
    r0 = np.nan_to_num(r)
    sigma_prev = k.lag(np.sqrt(k.ewm_mean(r0 * r0, _JUMP_BASELINE_HALFLIFE)), 1)
    jump = (np.abs(r0) > _JUMP_SIGMAS * sigma_prev).astype(np.float64)
    return {
        "range_pos_50": _div(c - ll50, hh50 - ll50, fill=0.5),
        "breakout_up_20": np.log(c / k.lag(k.rolling_max(h, 20), 1)),
        "breakout_dn_20": np.log(c / k.lag(k.rolling_min(lo, 20), 1)),
        "autocorr_48": _div(num, den),
        "jump_freq_100": k.rolling_mean(jump, 100),
    }


def _feature_dict(
    sec: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> dict[str, np.ndarray]:
    lc = np.log(close)
    r = k.diff(lc, 1)
    f = _price_features(high, low, close, lc, r)
    f.update(_volume_features(high, low, close, volume, lc, r))
    f.update(_range_features(high, low, close, r))
    f.update(_time_features(sec))
    return f


def _feature_matrix(
    sec: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    skip: int,
    dtype: type[np.floating] = np.float64,
) -> np.ndarray:
    """Features of rows ``skip..`` as a Fortran-ordered ``[n - skip, 43]`` array.

    Column-major so each feature is written contiguously and pandas can adopt the float32
    block without copying it.
    """
    f = _feature_dict(sec, high, low, close, volume)
    n = max(len(close) - skip, 0)
    out = np.empty((n, len(FEATURE_NAMES)), dtype=dtype, order="F")
    for j, name in enumerate(FEATURE_NAMES):
        out[:, j] = f.pop(name)[skip:]
    return out


def compute_symbol(
    sec: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
) -> np.ndarray:
    """The 43 features of one symbol's bars (in time order) as ``[n, 43]`` float64.

    Rows ``< WARMUP_BARS`` are NaN; every later row is finite. ``sec`` is epoch seconds (UTC).
    This is the array-level entry point (e.g. for a live buffer of bars).
    """
    out = _feature_matrix(sec, high, low, close, volume, skip=0)
    out[: min(len(close), WARMUP_BARS)] = np.nan
    return out


def _validate(bars: pd.DataFrame) -> None:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars are missing column(s) {missing}; need {list(BAR_COLUMNS)}")
    for col in NUMERIC_COLUMNS:
        values = bars[col].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values <= 0 if col != "volume" else values < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"bars column {col!r} has an invalid value {values[row]!r} at row {row} "
                f"(symbol {bars['symbol'].iloc[row]!r}); prices must be > 0, volume >= 0"
            )


def _symbol_positions(bars: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """Row positions of each symbol in time order, symbols sorted by name."""
    codes, uniques = pd.factorize(bars["symbol"], sort=True)
    sec = _utc_seconds(bars["ts"])
    if len(uniques) == 1:
        groups = [np.arange(len(bars))]
    else:
        order = np.argsort(codes, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    out: list[tuple[str, np.ndarray]] = []
    for sym, pos in zip(uniques, groups, strict=True):
        s = sec[pos]
        if len(s) > 1 and not bool(np.all(s[1:] > s[:-1])):
            pos = pos[np.argsort(s, kind="stable")]
            s = sec[pos]
            dup = np.flatnonzero(s[1:] == s[:-1])
            if len(dup):
                raise ValueError(
                    f"duplicate bar for symbol {sym!r} at ts {bars['ts'].iloc[pos[dup[0]]]}"
                )
        out.append((str(sym), pos))
    return out


def _symbol_matrix(
    bars: pd.DataFrame, pos: np.ndarray, sec: np.ndarray, skip: int, dtype: type[np.floating]
) -> np.ndarray:
    def col(name: str) -> np.ndarray:
        return bars[name].to_numpy(dtype=np.float64)[pos]

    return _feature_matrix(
        sec[pos], col("high"), col("low"), col("close"), col("volume"), skip=skip, dtype=dtype
    )


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The 43 features for every bar, on the input's own index (float32).

    Each symbol's first ``WARMUP_BARS`` rows are NaN. Bars may come in any order; each symbol
    is computed on its own rows sorted by ``ts``. The input is never modified.

    Raises
    ------
    ValueError
        Missing columns, non-finite or non-positive prices, negative volume, or a duplicate
        (symbol, ts).
    """
    _validate(bars)
    sec = _utc_seconds(bars["ts"])
    out = np.full((len(bars), len(FEATURE_NAMES)), np.nan, dtype=np.float32)
    for _, pos in _symbol_positions(bars):
        mat = _symbol_matrix(bars, pos, sec, skip=0, dtype=np.float32)
        mat[: min(len(pos), WARMUP_BARS)] = np.nan
        out[pos] = mat
    return pd.DataFrame(out, index=bars.index, columns=list(FEATURE_NAMES))


def featurize(bars: pd.DataFrame) -> FeatureSet:
    """Bars → :class:`FeatureSet`: the 43 features with each symbol's warm-up rows dropped.

    The output is sorted by (symbol, ts) with a fresh ``0..n-1`` index; features are float32
    and finite. A symbol with ``<= WARMUP_BARS`` bars contributes no rows. Bar ``t``'s
    features use only that symbol's bars up to ``t``.
    """
    _validate(bars)
    sec = _utc_seconds(bars["ts"])
    blocks: list[pd.DataFrame] = []
    dropped = 0
    for sym, pos in _symbol_positions(bars):
        keep = pos[WARMUP_BARS:]
        dropped += len(pos) - len(keep)
        mat = _symbol_matrix(bars, pos, sec, skip=WARMUP_BARS, dtype=np.float32)
        block = pd.DataFrame(mat, columns=list(FEATURE_NAMES), copy=False)
        block.insert(0, "symbol", sym)
        block.insert(0, "ts", bars["ts"].iloc[keep].reset_index(drop=True))
        blocks.append(block)
    if blocks:
        frame = pd.concat(blocks, ignore_index=True)
    else:
        frame = pd.DataFrame({"ts": bars["ts"].iloc[:0], "symbol": bars["symbol"].iloc[:0]})
        for name in FEATURE_NAMES:
            frame[name] = np.empty(0, dtype=np.float32)
    feats = frame[list(FEATURE_NAMES)].to_numpy()
    if len(feats) and not np.isfinite(feats).all():
        bad_row, bad_col = np.argwhere(~np.isfinite(feats))[0]
        raise ValueError(
            f"feature {FEATURE_NAMES[bad_col]!r} is not finite after warm-up at row {bad_row} "
            f"(symbol {frame['symbol'].iloc[bad_row]!r}, ts {frame['ts'].iloc[bad_row]})"
        )
    logger.debug("featurized %d rows (%d warm-up rows dropped)", len(frame), dropped)
    return FeatureSet(frame=frame, warmup_dropped=dropped)
