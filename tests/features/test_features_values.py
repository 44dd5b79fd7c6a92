"""Hand-checked feature values: TA-Lib for shared indicators, plain loops for the kernels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from configs.settings import load_config
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES, WARMUP_BARS, compute_symbol, featurize
from pipelines.features import kernels as k
from pipelines.features.compute import _time_features, _utc_seconds

N = 1000


@pytest.fixture(scope="module")
def one() -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": N, "symbols": ["SYN1"]})
    return generate_bars(cfg, 11)


@pytest.fixture(scope="module")
def feats(one: pd.DataFrame) -> dict[str, np.ndarray]:
    """float64 features (no float32 rounding) keyed by name."""
    mat = compute_symbol(
        _utc_seconds(one["ts"]),
        one["high"].to_numpy(),
        one["low"].to_numpy(),
        one["close"].to_numpy(),
        one["volume"].to_numpy(),
    )
    return {name: mat[:, j] for j, name in enumerate(FEATURE_NAMES)}


def _ohlcv(one: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(one[c].to_numpy() for c in ("open", "high", "low", "close", "volume"))


S = slice(WARMUP_BARS, None)


def test_returns_are_log_returns(one: pd.DataFrame, feats: dict[str, np.ndarray]) -> None:
    c = one["close"].to_numpy()
    for n in (1, 6, 24, 72, 168):
        t = np.arange(WARMUP_BARS, N)
        np.testing.assert_allclose(feats[f"ret_{n}"][S], np.log(c[t] / c[t - n]), atol=1e-14)


def test_rsi_matches_talib(one: pd.DataFrame, feats: dict[str, np.ndarray]) -> None:
    c = one["close"].to_numpy()
    for n in (14, 50):
        np.testing.assert_allclose(
            100.0 * feats[f"rsi_{n}"][S], talib.RSI(c, timeperiod=n)[S], atol=1e-8
        )


def test_ema_and_atr_match_talib(one: pd.DataFrame, feats: dict[str, np.ndarray]) -> None:
    _, h, lo, c, _ = _ohlcv(one)
    for n in (20, 50, 200):
        ours = c / np.exp(feats[f"close_ema_{n}"])
        np.testing.assert_allclose(ours[S], talib.EMA(c, timeperiod=n)[S], rtol=1e-10)
    np.testing.assert_allclose(
        feats["atr_14"][S] * c[S], talib.ATR(h, lo, c, timeperiod=14)[S], rtol=1e-10
    )
    atr100 = talib.ATR(h, lo, c, timeperiod=100)
    np.testing.assert_allclose(
        feats["atr_ratio_14_100"][S],
        np.log(talib.ATR(h, lo, c, timeperiod=14)[S] / atr100[S]),
        atol=1e-10,
    )


def test_macd_matches_talib_after_seeding_decays(
    one: pd.DataFrame, feats: dict[str, np.ndarray]
) -> None:
    c = one["close"].to_numpy()
    macd, signal, hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    late = slice(400, None)  # TA-Lib seeds the fast EMA later; the difference decays as 0.85^t
    np.testing.assert_allclose(feats["macd"][late] * c[late], macd[late], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(feats["macd_signal"][late] * c[late], signal[late], atol=1e-9)
    np.testing.assert_allclose(feats["macd_hist"][late] * c[late], hist[late], atol=1e-9)


def test_bollinger_on_log_close_matches_talib(
    one: pd.DataFrame, feats: dict[str, np.ndarray]
) -> None:
    lc = np.log(one["close"].to_numpy())
    upper, mid, _ = talib.BBANDS(lc, timeperiod=20, nbdevup=2.0, nbdevdn=2.0)
    np.testing.assert_allclose(feats["bb_pos_20"][S], ((lc - mid) / (upper - mid))[S], atol=1e-6)
    np.testing.assert_allclose(feats["bb_width_20"][S], 2.0 * (upper - mid)[S], rtol=1e-6)


def test_volatility_and_volume_match_pandas(
    one: pd.DataFrame, feats: dict[str, np.ndarray]
) -> None:
    r = np.log(one["close"]).diff()
    for n in (24, 72, 200):
        np.testing.assert_allclose(feats[f"rv_{n}"][S], r.rolling(n).std().to_numpy()[S], 1e-9)
    lv = np.log1p(one["volume"])
    z = (lv - lv.rolling(24).mean()) / lv.rolling(24).std(ddof=0)
    np.testing.assert_allclose(feats["vol_z_24"][S], z.to_numpy()[S], rtol=1e-8, atol=1e-9)
    ewm = lv.ewm(halflife=1000.0, adjust=True).mean()
    np.testing.assert_allclose(
        feats["vol_level_long"][S], (lv.rolling(24).mean() - ewm).to_numpy()[S], atol=1e-9
    )
    ac = (r * r.shift(1)).rolling(48).sum() / np.sqrt(
        (r * r).rolling(48).sum() * (r.shift(1) ** 2).rolling(48).sum()
    )
    np.testing.assert_allclose(feats["autocorr_48"][S], ac.to_numpy()[S], atol=1e-9)


def test_range_and_breakout(one: pd.DataFrame, feats: dict[str, np.ndarray]) -> None:
    _, h, lo, c, _ = _ohlcv(one)
    t = 500
    hh, ll = h[t - 49 : t + 1].max(), lo[t - 49 : t + 1].min()
    assert feats["range_pos_50"][t] == pytest.approx((c[t] - ll) / (hh - ll), rel=1e-12)
    assert feats["breakout_up_20"][t] == pytest.approx(np.log(c[t] / h[t - 20 : t].max()))
    assert feats["breakout_dn_20"][t] == pytest.approx(np.log(c[t] / lo[t - 20 : t].min()))
    assert 0.0 <= feats["range_pos_50"][S].min() and feats["range_pos_50"][S].max() <= 1.0


def test_time_encodings() -> None:
    # Monday 2024-01-01 06:00 UTC: hour angle 90 degrees; day-of-week 0.25 of a day into Monday
    sec = _utc_seconds(pd.Series(pd.to_datetime(["2024-01-01T06:00:00Z"])))
    enc = _time_features(sec)
    hour_sin, hour_cos, dow_sin, dow_cos = (enc[n] for n in FEATURE_NAMES[-4:])
    assert hour_sin[0] == pytest.approx(1.0) and hour_cos[0] == pytest.approx(0.0, abs=1e-12)
    angle = 2 * np.pi * 0.25 / 7
    assert dow_sin[0] == pytest.approx(np.sin(angle)) and dow_cos[0] == pytest.approx(np.cos(angle))


def _naive_profile(
    p: np.ndarray, v: np.ndarray, ref: np.ndarray, n: int, bins: int, t: int
) -> tuple[float, float, float]:
    wp, wv = p[t - n + 1 : t + 1], v[t - n + 1 : t + 1]
    lo, hi = wp.min(), wp.max()
    idx = np.minimum(((wp - lo) / (hi - lo) * bins).astype(int), bins - 1)
    hist = np.zeros(bins)
    for i, w in zip(idx, wv, strict=True):
        hist[i] += w
    centre = lo + (np.arange(bins) + 0.5) / bins * (hi - lo)
    poc = ref[t] - centre[np.argmax(hist)]
    up = [(hist[j], centre[j]) for j in range(bins) if centre[j] > ref[t]]
    dn = [(hist[j], centre[j]) for j in range(bins) if centre[j] < ref[t]]
    supply = max(max(up)[1] - ref[t], 0.0) if up else max(hi - ref[t], 0.0)
    demand = max(ref[t] - max(dn)[1], 0.0) if dn else max(ref[t] - lo, 0.0)
    return poc, supply, demand


def test_volume_profile_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    p = np.cumsum(rng.normal(0, 0.01, 400))
    v = rng.uniform(1, 100, 400)
    ref = p + rng.normal(0, 0.003, 400)
    poc, supply, demand = k.volume_profile(p, v, ref, 30, 7)
    assert np.isnan(poc[:29]).all() and np.isfinite(poc[29:]).all()
    for t in range(29, 400, 7):
        want = _naive_profile(p, v, ref, 30, 7, t)
        np.testing.assert_allclose((poc[t], supply[t], demand[t]), want, atol=1e-9)


def test_rolling_kernels_match_plain_loops() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    x[:3] = np.nan  # NaN head, like returns
    x[100] = np.nan
    for n in (1, 5, 20):
        want_sum = np.array(
            [np.nan if t < n - 1 else x[t - n + 1 : t + 1].sum() for t in range(300)]
        )
        np.testing.assert_allclose(k.rolling_sum(x, n), want_sum, atol=1e-12)
        y = np.nan_to_num(x)
        want_max = np.array(
            [np.nan if t < n - 1 else y[t - n + 1 : t + 1].max() for t in range(300)]
        )
        want_min = np.array(
            [np.nan if t < n - 1 else y[t - n + 1 : t + 1].min() for t in range(300)]
        )
        np.testing.assert_array_equal(k.rolling_max(y, n), want_max)
        np.testing.assert_array_equal(k.rolling_min(y, n), want_min)
    state = np.array([1, 1, -1, -1, -1, 1, 1, 1, 1, -1], dtype=float)
    np.testing.assert_array_equal(
        k.bars_since_change(state, 1), [np.nan, 0, 0, 1, 2, 0, 1, 2, 3, 0]
    )


def test_flat_prices_give_finite_features() -> None:
    n = 400
    bars = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"),
            "symbol": "FLAT",
            "open": 10.0,
            "high": 10.0,
            "low": 10.0,
            "close": 10.0,
            "volume": 0.0,
        }
    )
    fs = featurize(bars)
    assert len(fs.frame) == n - WARMUP_BARS
    assert np.isfinite(fs.X).all()
    assert (fs.frame["rsi_14"] == 0.5).all() and (fs.frame["ret_24"] == 0.0).all()
