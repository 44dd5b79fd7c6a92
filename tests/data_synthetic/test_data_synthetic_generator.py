"""The synthetic generator: prefix stability, determinism, and RANGE's level mean reversion.

The point of the RANGE dynamics is economic (mean-reversion arms beat trend arms there), so
that is tested on the real strategy arms, next to the statistical properties (AR(1)
coefficient of the deviation from the anchor, variance ratio). Stylized facts (fat tails,
volatility clustering, per-regime Sharpe, volume carrying no label) are in
``test_data_synthetic_stylized.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from configs.data import RegimeParams, SyntheticConfig
from configs.settings import load_config
from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN
from pipelines.data.synthetic import _reverting_log_returns, generate_bars, generate_symbol
from pipelines.strategies import arm_rewards, compute_signals

RANGE = REGIMES.index("RANGE")
TREND_UP = REGIMES.index("TREND_UP")
TREND_DOWN = REGIMES.index("TREND_DOWN")


def _cfg(n: int, symbols: list[str] | None = None, **range_update: object) -> SyntheticConfig:
    cfg = load_config().data.synthetic
    update: dict[str, object] = {"n_bars": n, "symbols": symbols or ["SYN1", "SYN2"]}
    if range_update:
        regimes = dict(cfg.regimes)
        regimes["RANGE"] = regimes["RANGE"].model_copy(update=range_update)
        update["regimes"] = regimes
    return cfg.model_copy(update=update)


def _segments(regime: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each maximal run of one regime."""
    starts = np.flatnonzero(np.diff(regime.astype(np.int64), prepend=-1) != 0)
    ends = np.append(starts[1:], len(regime))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _range_deviations(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (x_{t-1}, x_t) of the log price's deviation from each RANGE segment's anchor."""
    prev, cur = [], []
    for _, g in bars.groupby("symbol"):
        logp = np.log(g["close"].to_numpy())
        regime = g[TRUE_REGIME_COLUMN].to_numpy()
        for start, end in _segments(regime):
            if regime[start] != RANGE or start == 0 or end - start < 30:
                continue
            x = np.concatenate([[0.0], logp[start:end] - logp[start - 1]])
            prev.append(x[:-1])
            cur.append(x[1:])
    return np.concatenate(prev), np.concatenate(cur)


def _variance_ratio(bars: pd.DataFrame, regime_index: int, k: int) -> float:
    """Var of k-bar log returns / (k * var of 1-bar ones), within runs of one regime."""
    one, many = [], []
    for _, g in bars.groupby("symbol"):
        logp = np.log(g["close"].to_numpy())
        regime = g[TRUE_REGIME_COLUMN].to_numpy()
        for start, end in _segments(regime):
            if regime[start] != regime_index or end - start < 3 * k:
                continue
            seg = logp[start:end]
            one.append(np.diff(seg))
            many.append(seg[k:] - seg[:-k])
    return float(np.var(np.concatenate(many)) / (k * np.var(np.concatenate(one))))


@pytest.mark.parametrize("seed", [0, 7, 11, 123])
def test_data_synthetic_prefix_stable(seed: int) -> None:
    short = generate_bars(_cfg(1000), seed)
    long = generate_bars(_cfg(5000), seed)
    head = long.groupby("symbol", sort=True).head(1000).reset_index(drop=True)
    pd.testing.assert_frame_equal(short, head)


def test_data_synthetic_deterministic_and_seeded() -> None:
    a = generate_bars(_cfg(2000), 5)
    b = generate_bars(_cfg(2000), 5)
    pd.testing.assert_frame_equal(a, b)
    c = generate_bars(_cfg(2000), 6)
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())


def test_data_synthetic_reverting_returns_match_recursion() -> None:
    """The vectorised per-segment filter equals the textbook bar-by-bar recursion."""
    rng = np.random.default_rng(0)
    regime = np.repeat(rng.integers(0, 4, size=40), rng.integers(1, 60, size=40)).astype(np.int8)
    innov = rng.normal(size=len(regime))
    phi_by_regime = np.array([1.0, 1.0, 0.9, 0.5])
    got = _reverting_log_returns(innov, regime, phi_by_regime)

    expected = np.empty_like(innov)
    x = 0.0
    for t in range(len(innov)):
        phi = phi_by_regime[regime[t]]
        if t == 0 or regime[t] != regime[t - 1]:
            x = 0.0  # the new segment's anchor is the price just before it
        if phi >= 1.0:
            expected[t] = innov[t]
        else:
            x_new = phi * x + innov[t]
            expected[t] = x_new - x
            x = x_new
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    random_walk = np.isin(regime, [0, 1])
    np.testing.assert_array_equal(got[random_walk], innov[random_walk])


def test_data_synthetic_range_is_ar1_around_anchor() -> None:
    """Regressing the deviation on its lag recovers phi = 0.5 ** (1 / half_life)."""
    cfg = _cfg(20000, ["SYN1"])
    half_life = cfg.regimes["RANGE"].half_life
    assert half_life is not None
    prev, cur = _range_deviations(generate_symbol("SYN1", cfg, 3))
    phi_hat = float(prev @ cur / (prev @ prev))
    assert phi_hat == pytest.approx(0.5 ** (1.0 / half_life), abs=0.02)
    # The deviation stays bounded: a few stationary stds, not a random walk's drift away.
    sd = cfg.regimes["RANGE"].vol / np.sqrt(1.0 - (0.5 ** (1.0 / half_life)) ** 2)
    assert np.quantile(np.abs(cur), 0.99) < 5 * sd


def test_data_synthetic_variance_ratio_by_regime() -> None:
    """Level reversion shows as a low variance ratio in RANGE only; half_life=None removes it."""
    bars = generate_symbol("SYN1", _cfg(100000, ["SYN1"]), 4)
    ratio_range = _variance_ratio(bars, RANGE, 72)
    assert ratio_range < 0.7
    for trend in (TREND_UP, TREND_DOWN):
        assert _variance_ratio(bars, trend, 72) > 0.8  # a random walk (plus drift) is ~1
    walk = generate_symbol("SYN1", _cfg(100000, ["SYN1"], half_life=None), 4)
    assert _variance_ratio(walk, RANGE, 72) > ratio_range + 0.15


@pytest.mark.parametrize("seed", [21, 22])
def test_data_synthetic_range_favours_mean_reversion_arms(seed: int) -> None:
    """Per 6-bar decision in RANGE, Bollinger reversion beats the slow EMA cross by > 5 bps:
    the context structure the bandit can use. (With trend Sharpe ~2 a year, no arm wins by
    a wide margin inside trends, as on real markets; that is not asserted.)"""
    bars = generate_bars(_cfg(12000, ["SYN1", "SYN2"]), seed)
    rewards = arm_rewards(bars, compute_signals(bars), horizon=6, cost_bps=1.0, slippage_bps=0.5)
    regime = bars[TRUE_REGIME_COLUMN].to_numpy()
    valid = rewards.notna().all(axis=1).to_numpy()

    def mean_bps(arm: str, which: int) -> float:
        return float(rewards[arm].to_numpy()[valid & (regime == which)].mean() * 1e4)

    assert mean_bps("mr_bollinger_20", RANGE) - mean_bps("ema_24_120", RANGE) > 5.0


def test_data_synthetic_trend_direction_learnable_with_lag() -> None:
    """Trends persist: the sign of the trailing 168-bar return agrees with the trend's
    direction on more than 55 % of trend bars (steady state ~ Phi(0.02 sqrt(168)) = 0.60)."""
    bars = generate_symbol("SYN1", _cfg(100000, ["SYN1"]), 5)
    logc = np.log(bars["close"].to_numpy())
    regime = bars[TRUE_REGIME_COLUMN].to_numpy()
    past = np.r_[np.full(168, np.nan), logc[168:] - logc[:-168]]
    agree = []
    for which, sign in ((TREND_UP, 1.0), (TREND_DOWN, -1.0)):
        rows = (regime == which) & np.isfinite(past)
        agree.append(np.mean(np.sign(past[rows]) == sign))
    assert float(np.mean(agree)) > 0.55, agree


def test_data_synthetic_prices_plausible() -> None:
    """No blow-ups: finite positive OHLC, sane bar moves, and no 100x fall or rise."""
    for seed in (1, 2, 3):
        bars = generate_bars(_cfg(5000), seed)
        ohlc = bars[["open", "high", "low", "close"]].to_numpy()
        assert np.isfinite(ohlc).all() and (ohlc > 0).all()
        assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
        for _, g in bars.groupby("symbol"):
            close = g["close"].to_numpy()
            assert np.abs(np.diff(np.log(close))).max() < 0.3
            assert close.min() > close[0] / 100 and close.max() < close[0] * 100


def test_data_synthetic_half_life_validated() -> None:
    params = load_config().data.synthetic.regimes["RANGE"].model_dump()
    for bad in (0.0, -5.0):
        with pytest.raises(ValidationError):
            RegimeParams(**{**params, "half_life": bad})
    assert RegimeParams(**{**params, "half_life": None}).half_life is None
