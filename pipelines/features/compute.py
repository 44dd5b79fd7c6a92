"""Bars → the 43 features, per symbol, causal and vectorized.

``compute_features`` keeps the input's rows (NaN in each symbol's warm-up); ``featurize`` is
what the pipeline calls: warm-up rows dropped explicitly, float32, sorted by (symbol, ts).
Each symbol is computed on its own arrays, so no value ever leaks across symbols.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipelines.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS
from pipelines.features import kernels as k
from pipelines.features.featureset import FeatureSet
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
_WEEK_SECONDS = 7 * 86400


def _div(a: np.ndarray, b: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``a / b`` where ``|b| > eps``, else ``fill`` (flat prices, zero volume); NaN kept."""
    return k.safe_div(a, b, fill, _EPS)


def _log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(a / b)`` for non-negative scales, floored so flat series give 0, not -inf."""
    out = np.log(np.maximum(a, _EPS))
    out -= np.log(np.maximum(b, _EPS))
    return out


def _log_of_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(a / b)`` for positive ``a``, ``b``: one division and one log, in place."""
    out = np.divide(a, b)
    return np.log(out, out=out)


def _utc_seconds(ts: pd.Series) -> np.ndarray:
    """Epoch seconds of a datetime column (naive timestamps are taken as UTC)."""
    idx = pd.DatetimeIndex(ts)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return np.asarray(idx.values.astype("datetime64[s]").astype(np.int64))


def _time_features(sec: np.ndarray) -> dict[str, np.ndarray]:
    """Hour-of-day and day-of-week angles as sin/cos.

    Bars sit on a grid (hourly bars: 24 seconds-of-day, 168 seconds-of-week), so on long series
    sin/cos is evaluated once per distinct second-of-week present and gathered: the same
    ``np.sin``/``np.cos`` of the same angles (bit-identical), at a few percent of the cost.
    """
    day = sec % 86400
    week = ((sec // 86400) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    if len(sec) < _WEEK_SECONDS // 16:  # short series: the table would cost more
        return _time_angles(day, week)
    key = week * 86400 + day
    present = np.zeros(_WEEK_SECONDS, dtype=bool)
    present[key] = True
    uniq = np.flatnonzero(present)
    if len(uniq) * 4 > len(sec):  # irregular timestamps: nothing to share
        return _time_angles(day, week)
    table = np.empty(_WEEK_SECONDS, dtype=np.int64)
    table[uniq] = np.arange(len(uniq))
    where = table[key]
    return {name: v[where] for name, v in _time_angles(uniq % 86400, uniq // 86400).items()}


def _time_angles(day: np.ndarray, week: np.ndarray) -> dict[str, np.ndarray]:
    """sin/cos of the hour angle of second-of-day ``day`` and the week angle of weekday
    ``week`` (Monday = 0) plus the fraction of the day."""
    hour_angle = day * (2.0 * np.pi / 86400.0)  # 2 pi hour / 24
    dow_angle = week + day / 86400.0
    dow_angle *= 2.0 * np.pi / 7.0
    return {
        "hour_sin": np.sin(hour_angle),
        "hour_cos": np.cos(hour_angle),
        "dow_sin": np.sin(dow_angle),
        "dow_cos": np.cos(dow_angle),
    }


def _price_features(
    h: np.ndarray, lo: np.ndarray, c: np.ndarray, lc: np.ndarray, r: np.ndarray
) -> dict[str, np.ndarray]:
    """Returns, volatility, ATR, EMA, RSI, MACD and Bollinger features.

    Rolling moments that several features share come from one prefix-sum pair per series
    (``k.rolling_mean_var``); ``r`` has one NaN head entry, handled without a NaN-masking pass.
    """
    f: dict[str, np.ndarray] = {f"ret_{n}": k.diff(lc, n) for n in (1, 6, 24, 72, 168)}

    for n, var in zip((24, 72, 200), k.rolling_vars(r, (24, 72, 200), ddof=1, head=1), strict=True):
        f[f"rv_{n}"] = np.sqrt(var, out=var)
    hl = np.log(h / lo)
    hl *= hl
    (park,) = k.window_sums(hl, (24,))
    park *= 1.0 / (24 * 4.0 * _LN2)
    f["park_vol_24"] = np.sqrt(park, out=park)
    f["rv_ratio_24_200"] = _log_ratio(f["rv_24"], f["rv_200"])

    atr14, atr100 = k.atrs(h, lo, c, (14, 100))
    f["atr_14"] = atr14 / c
    f["atr_ratio_14_100"] = _log_ratio(atr14, atr100)

    ema_windows = (12, 20, 26, 50, 200)
    e = dict(zip(ema_windows, k.emas(c, ema_windows), strict=True))
    f["close_ema_20"] = _log_of_ratio(c, e[20])
    f["close_ema_50"] = _log_of_ratio(c, e[50])
    f["close_ema_200"] = _log_of_ratio(c, e[200])
    f["ema_spread_20_50"] = _log_of_ratio(e[20], e[50])
    f["ema_spread_50_200"] = _log_of_ratio(e[50], e[200])
    cross = np.sign(e[20] - e[50])
    f["ema_cross_20_50"] = cross
    f["ema_cross_age_20_50"] = np.log1p(k.bars_since_change(cross, start=49))

    for n, value in zip((14, 50), k.rsi(c, (14, 50), fill=0.5), strict=True):
        f[f"rsi_{n}"] = value

    line = e[12] - e[26]
    signal = k.ema(line, 9, start=25)
    inv_c = 1.0 / c
    f["macd"] = line * inv_c
    f["macd_signal"] = signal * inv_c
    line -= signal
    line *= inv_c
    f["macd_hist"] = line

    ((mid, var),) = k.rolling_mean_var(lc, (20,))
    sd = np.sqrt(var, out=var)
    f["bb_pos_20"] = _div(lc - mid, 2.0 * sd)
    sd *= 4.0
    f["bb_width_20"] = sd
    return f


def _volume_features(
    h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, lc: np.ndarray, r: np.ndarray
) -> dict[str, np.ndarray]:
    """Volume z-scores and levels, signed volume and the volume-profile distances."""
    lv = np.log1p(v)
    (m24, var24), (m200, var200) = k.rolling_mean_var(lv, (24, 200))
    f = {
        "vol_z_24": _div(lv - m24, np.sqrt(var24, out=var24)),
        "vol_z_200": _div(lv - m200, np.sqrt(var200, out=var200)),
        "vol_ratio_24_200": m24 - m200,
        "vol_level_long": m24 - k.ewm_mean(lv, _VOLUME_BASELINE_HALFLIFE),
    }
    signed = np.sign(r)
    signed *= v
    (s_signed,) = k.window_sums(signed, (24,), head=1)
    (s_vol,) = k.window_sums(v, (24,))
    f["signed_vol_24"] = _div(s_signed, s_vol)
    typical = h + lo
    typical += c
    typical /= 3.0
    np.log(typical, out=typical)
    poc, supply, demand = k.volume_profile(typical, v, lc, _PROFILE_WINDOW, _PROFILE_BINS)
    f["poc_dist_100"] = poc
    f["supply_dist_100"] = supply
    f["demand_dist_100"] = demand
    return f


def _range_features(
    h: np.ndarray, lo: np.ndarray, c: np.ndarray, r: np.ndarray
) -> dict[str, np.ndarray]:
    """Range position, breakouts, lag-1 autocorrelation and jump frequency.

    The autocorrelation's two sums of squares are one prefix sum of ``r**2`` read at two lags
    (``sum r_{t-1}^2`` over the window ending at t is ``sum r^2`` over the window ending at
    t-1).
    """
    hh50, hh20 = k.rolling_extremes(h, (50, 20), np.maximum)
    ll50, ll20 = k.rolling_extremes(lo, (50, 20), np.minimum)
    rr = r * k.lag(r, 1)
    (num,) = k.window_sums(rr, (48,), head=2)
    r2 = r * r
    (s_r2,) = k.window_sums(r2, (48,), head=1)
    den = k.lag(s_r2, 1)
    den *= s_r2
    np.sqrt(den, out=den)
    r0 = np.nan_to_num(r)
    np.multiply(r0, r0, out=r2)
    sigma_prev = k.lag(np.sqrt(k.ewm_mean(r2, _JUMP_BASELINE_HALFLIFE)), 1)
    sigma_prev *= _JUMP_SIGMAS
    jump = (np.abs(r0) > sigma_prev).astype(np.float64)
    (jump_freq,) = k.window_sums(jump, (100,))
    jump_freq /= 100.0
    return {
        "range_pos_50": _div(c - ll50, hh50 - ll50, fill=0.5),
        "breakout_up_20": _log_of_ratio(c, k.lag(hh20, 1)),
        "breakout_dn_20": _log_of_ratio(c, k.lag(ll20, 1)),
        "autocorr_48": _div(num, den),
        "jump_freq_100": jump_freq,
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
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Features of rows ``skip..`` as a ``[n - skip, 43]`` array (written into ``out`` if given).

    Column-major by default, so each feature is written contiguously and pandas can adopt the
    float32 block without copying it. Each feature array is released as soon as it is copied.
    """
    f = _feature_dict(sec, high, low, close, volume)
    n = max(len(close) - skip, 0)
    if out is None:
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
    bars: pd.DataFrame,
    pos: np.ndarray,
    sec: np.ndarray,
    skip: int,
    dtype: type[np.floating],
    out: np.ndarray | None = None,
) -> np.ndarray:
    whole = len(pos) == len(bars) and bool(np.all(pos[1:] > pos[:-1]))  # rows already in order

    def col(name: str) -> np.ndarray:
        values = bars[name].to_numpy(dtype=np.float64)
        values = values if whole else values[pos]
        # always read-only (pandas hands out read-only views of whole columns): one numba
        # signature per kernel, so a process loads each kernel's machine code once, not twice
        values.flags.writeable = False
        return values

    return _feature_matrix(
        sec if whole else sec[pos],
        col("high"),
        col("low"),
        col("close"),
        col("volume"),
        skip=skip,
        dtype=dtype,
        out=out,
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
    groups = _symbol_positions(bars)
    keeps = [pos[WARMUP_BARS:] for _, pos in groups]
    total = sum(len(kp) for kp in keeps)
    dropped = len(bars) - total
    # one float32 block for every symbol: each symbol's features are written into their rows
    mat = np.empty((total, len(FEATURE_NAMES)), dtype=np.float32, order="F")
    row = 0
    for (_, pos), keep in zip(groups, keeps, strict=True):
        if len(keep):
            out = mat[row : row + len(keep)]
            _symbol_matrix(bars, pos, sec, skip=WARMUP_BARS, dtype=np.float32, out=out)
            row += len(keep)
    bad_row, bad_col = k.first_non_finite(mat) if total else (-1, -1)
    if bad_row >= 0:
        ends = np.cumsum([len(kp) for kp in keeps])
        sym = groups[int(np.searchsorted(ends, bad_row, side="right"))][0]
        raise ValueError(
            f"feature {FEATURE_NAMES[bad_col]!r} is not finite after warm-up at row {bad_row} "
            f"(symbol {sym!r}, ts {bars['ts'].iloc[np.concatenate(keeps)[bad_row]]})"
        )
    keep_all = np.concatenate(keeps) if keeps else np.empty(0, dtype=np.intp)
    frame = pd.DataFrame(mat, columns=list(FEATURE_NAMES), copy=False)
    symbols = bars["symbol"].iloc[keep_all].reset_index(drop=True).astype("str")
    frame.insert(0, "symbol", symbols)
    frame.insert(0, "ts", bars["ts"].iloc[keep_all].reset_index(drop=True))
    logger.debug("featurized %d rows (%d warm-up rows dropped)", len(frame), dropped)
    return FeatureSet(frame=frame, warmup_dropped=dropped)
