"""Stylized facts of the generator and the null world, against stated bands.

Bands, for hourly bars of the default config (24x7, 8766 bars a year):

* excess kurtosis of 1-bar log returns in [3, 30] per symbol: Student-t(5) innovations alone
  give 6, GARCH and the regime mixture add to it; real hourly FX and daily equities sit in
  about 3-30 (see benchmarks/results/generator.md);
* ACF of squared returns > 0.02 at every lag 1-20 (volatility clusters, GARCH persistence
  alpha + beta ~ 0.97-0.98);
* |ACF of returns| < 0.05 at lags 1-5. RANGE's level reversion (half-life 36, phi = 0.981)
  implies a lag-1 autocorrelation of -(1 - phi) / 2 ~ -0.01 inside RANGE, about -0.002 over
  the whole series (RANGE is ~20 % of bars); everything beyond that is sampling noise, whose
  s.d. on 20 000 heteroskedastic bars is about 0.01-0.02;
* annualized Sharpe of each true regime's bars within +-3 (design values +1.9, -1.9, 0,
  -2.0), measured on 300 000 bars so the sampling s.d. (~0.3) leaves room;
* volume alone does not name the regime: a logistic on log volume level and change reaches
  balanced accuracy < 0.4 (chance is 0.25; the old generator's volume level reached 0.89).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from threadpoolctl import threadpool_limits

from configs.data import SyntheticConfig
from configs.settings import load_config
from pipelines.data.schema import BAR_COLUMNS, REGIMES, TRUE_REGIME_COLUMN
from pipelines.data.synthetic import (
    _garch_shocks,
    generate_bars,
    generate_null_bars,
    generate_symbol,
)

BARS_PER_YEAR = 8766.0


def _cfg(n: int, symbols: list[str] | None = None) -> SyntheticConfig:
    cfg = load_config().data.synthetic
    return cfg.model_copy(update={"n_bars": n, "symbols": symbols or ["SYN1", "SYN2"]})


def _acf(x: np.ndarray, lag: int) -> float:
    d = x - x.mean()
    return float(d[:-lag] @ d[lag:] / (d @ d))


def _log_returns(g: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(g["close"].to_numpy()))


@pytest.mark.parametrize("seed", [7, 8])
def test_data_synthetic_stylized_facts(seed: int) -> None:
    bars = generate_bars(_cfg(20000), seed)
    for symbol, g in bars.groupby("symbol"):
        r = _log_returns(g)
        kurt = float(pd.Series(r).kurt())
        assert 3.0 <= kurt <= 30.0, (symbol, kurt)
        sq = r**2
        acf_sq = [_acf(sq, k) for k in range(1, 21)]
        assert min(acf_sq) > 0.02, (symbol, acf_sq)
        acf_r = [_acf(r, k) for k in range(1, 6)]
        assert max(abs(a) for a in acf_r) < 0.05, (symbol, acf_r)


@pytest.mark.parametrize("seed", [3, 4])
def test_data_synthetic_per_regime_sharpe_within_3(seed: int) -> None:
    bars = generate_symbol("SYN1", _cfg(300000, ["SYN1"]), seed)
    r = _log_returns(bars)
    regime = bars[TRUE_REGIME_COLUMN].to_numpy()[1:]
    for k, name in enumerate(REGIMES):
        rr = r[regime == k]
        assert rr.size > 5000, name
        ann_sharpe = rr.mean() / rr.std(ddof=1) * np.sqrt(BARS_PER_YEAR)
        assert -3.0 < ann_sharpe < 3.0, (name, ann_sharpe)


def test_data_synthetic_volume_does_not_classify_regime() -> None:
    """Fit on the first 70 % of time, score on the rest; balanced classes, two inputs."""
    bars = generate_bars(_cfg(20000), 7)
    feats, labels, times = [], [], []
    for _, g in bars.groupby("symbol"):
        lv = np.log(g["volume"].to_numpy())
        lv = lv - lv.mean()
        feats.append(np.c_[lv, np.diff(lv, prepend=lv[0])])
        labels.append(g[TRUE_REGIME_COLUMN].to_numpy())
        times.append(g["ts"].astype("int64").to_numpy())
    x, y, ts = np.vstack(feats), np.concatenate(labels), np.concatenate(times)
    train = ts <= np.quantile(ts, 0.7)
    with threadpool_limits(1):
        model = LogisticRegression(max_iter=1000, class_weight="balanced").fit(x[train], y[train])
    score = balanced_accuracy_score(y[~train], model.predict(x[~train]))
    assert score < 0.4, score


def test_data_synthetic_garch_matches_recursion() -> None:
    """The GARCH loop equals the textbook recursion with per-bar (regime) parameters."""
    rng = np.random.default_rng(1)
    n = 300
    z, jump = rng.standard_normal(n), np.where(rng.random(n) < 0.05, -0.02, 0.0)
    alpha = np.where(np.arange(n) < 150, 0.05, 0.12)
    beta = np.where(np.arange(n) < 150, 0.93, 0.85)
    omega = 1e-4 * (1 - alpha - beta)
    e, sig = _garch_shocks(z, jump, omega, alpha, beta)
    h = omega[0] / (1 - alpha[0] - beta[0])
    for t in range(n):
        if t:
            h = omega[t] + alpha[t] * e[t - 1] ** 2 + beta[t] * h
        assert sig[t] == pytest.approx(np.sqrt(h), rel=1e-12)
        assert e[t] == pytest.approx(np.sqrt(h) * z[t] + jump[t], rel=1e-12, abs=1e-15)


def test_data_synthetic_null_world_contract_and_facts() -> None:
    cfg = _cfg(20000)
    bars = generate_null_bars(cfg, 11)
    assert list(bars.columns) == list(BAR_COLUMNS)  # no regime column: nothing to learn
    assert TRUE_REGIME_COLUMN not in bars.columns
    pd.testing.assert_frame_equal(bars, generate_null_bars(cfg, 11))
    assert not np.allclose(bars["close"], generate_null_bars(cfg, 12)["close"])
    short = generate_null_bars(_cfg(1000), 11)
    head = bars.groupby("symbol", sort=True).head(1000).reset_index(drop=True)
    pd.testing.assert_frame_equal(short, head)
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    for _, g in bars.groupby("symbol"):
        r = _log_returns(g)
        assert float(pd.Series(r).kurt()) > 3.0
        assert min(_acf(r**2, k) for k in range(1, 21)) > 0.02
        # no drift: the mean is within 3 standard errors of zero
        assert abs(r.mean()) < 3 * r.std(ddof=1) / np.sqrt(r.size)
        assert max(abs(_acf(r, k)) for k in range(1, 6)) < 0.05


def test_data_synthetic_garch_stationarity_validated() -> None:
    params = load_config().data.synthetic.regimes["PANIC"].model_dump()
    with pytest.raises(ValueError, match="garch_alpha"):
        type(load_config().data.synthetic.regimes["PANIC"])(
            **{**params, "garch_alpha": 0.2, "garch_beta": 0.8}
        )


def test_data_synthetic_vol_cap_bounds_conditional_vol() -> None:
    """A run of huge shocks cannot compound past the cap (vol_cap x the regime's vol)."""
    n = 50
    z = np.full(n, 8.0)  # eight-sigma draws on every bar would explode an uncapped GARCH
    ones = np.ones(n)
    omega = 1e-4 * (1 - 0.12 - 0.85) * ones
    _, free = _garch_shocks(z, np.zeros(n), omega, 0.12 * ones, 0.85 * ones)
    _, capped = _garch_shocks(z, np.zeros(n), omega, 0.12 * ones, 0.85 * ones, 0.04 * ones)
    assert free[-1] > 1.0  # uncapped: conditional vol of more than 100 % per bar
    assert capped.max() == pytest.approx(0.04)
    bars = generate_symbol("SYN1", _cfg(20000, ["SYN1"]), 8)
    cfg = _cfg(20000, ["SYN1"])
    top = max(p.vol for p in cfg.regimes.values()) * cfg.vol_cap
    wick = (np.log(bars["high"]) - np.log(bars["low"])).to_numpy()
    assert np.quantile(wick, 0.999) < 5 * top
