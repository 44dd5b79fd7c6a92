"""Cross-asset features: the formulas of docs/features.md, any number of symbols, one symbol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from configs.data import CrossAssetConfig, SyntheticConfig
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES
from pipelines.features.cross_asset import CROSS_ASSET_NAMES, cross_asset_features
from pipelines.features.extended import featurize_extended

W = 72


def _panel(n: int, k: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """``k`` symbols on one hourly grid; returns share a common factor. Returns (bars, r)."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(n) * 0.01
    r = common[:, None] * rng.uniform(0.5, 1.5, k) + rng.standard_normal((n, k)) * 0.01
    r[0] = 0.0
    lc = np.cumsum(r, axis=0) + np.log(100.0)
    ts = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    frames = [
        pd.DataFrame({"ts": ts, "symbol": f"S{j}", "close": np.exp(lc[:, j])}) for j in range(k)
    ]
    return pd.concat(frames, ignore_index=True), np.diff(lc, axis=0, prepend=np.nan)


def _feats(bars: pd.DataFrame, **kw: object) -> pd.DataFrame:
    cfg = CrossAssetConfig(enabled=True, window=W, **kw)  # type: ignore[arg-type]
    out = cross_asset_features(bars["ts"], bars["symbol"], bars["close"].to_numpy(), cfg)
    return pd.DataFrame(out).assign(symbol=bars["symbol"].to_numpy())


def test_formulas_against_pandas_on_one_grid() -> None:
    n, k = 600, 3
    bars, r = _panel(n, k)
    got = _feats(bars)
    rr = pd.DataFrame(r)
    for s in range(k):
        mine = got[got["symbol"] == f"S{s}"].reset_index(drop=True)
        q = rr.drop(columns=s).mean(axis=1)  # the mean of the other symbols
        x = rr[s]
        sl = slice(W + 1, None)  # full windows only
        np.testing.assert_allclose(mine["xa_corr"][sl], x.rolling(W).corr(q)[sl], rtol=0, atol=1e-9)
        beta = x.rolling(W).cov(q) / q.rolling(W).var()
        np.testing.assert_allclose(mine["xa_beta"][sl], beta[sl], rtol=0, atol=1e-9)
        lead = x.rolling(W).corr(q.shift(1))
        np.testing.assert_allclose(mine["xa_lead"][W + 2 :], lead[W + 2 :], atol=1e-9)
        lag = x.shift(1).rolling(W).corr(q)
        np.testing.assert_allclose(mine["xa_lag"][W + 2 :], lag[W + 2 :], atol=1e-9)
        for win in (24, 168):
            rs = (x - q).rolling(win).sum()
            full = max(win + 1, W)  # masked (0) while the correlation window is short
            np.testing.assert_allclose(mine[f"xa_rs_{win}"][full:], rs[full:], rtol=0, atol=1e-12)
        ret24 = pd.DataFrame(np.log(bars.pivot(index="ts", columns="symbol", values="close")))
        disp = ret24.diff(24).std(axis=1, ddof=0).to_numpy()
        np.testing.assert_allclose(mine["xa_dispersion_24"][24:], disp[24:], atol=1e-12)
        assert (mine["xa_missing"][W:] == 0).all()


def test_benchmark_symbol_is_the_reference_and_itself_uses_the_others() -> None:
    bars, r = _panel(500, 4, seed=3)
    got = _feats(bars, benchmark="S2")
    rr = pd.DataFrame(r)
    for s in range(4):
        mine = got[got["symbol"] == f"S{s}"].reset_index(drop=True)
        q = rr[2] if s != 2 else rr.drop(columns=2).mean(axis=1)
        ref = rr[s].rolling(W).corr(q)
        np.testing.assert_allclose(mine["xa_corr"][W + 1 :], ref[W + 1 :], atol=1e-9)
    with pytest.raises(ValueError, match="benchmark 'NOPE' is not among the symbols"):
        _feats(bars, benchmark="NOPE")


def test_lead_lag_finds_a_follower() -> None:
    rng = np.random.default_rng(0)
    n = 800
    lead = rng.standard_normal(n) * 0.01
    follow = np.roll(lead, 1) * 0.9 + rng.standard_normal(n) * 0.003  # follows one bar late
    ts = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    bars = pd.concat(
        [
            pd.DataFrame({"ts": ts, "symbol": "LEAD", "close": np.exp(np.cumsum(lead))}),
            pd.DataFrame({"ts": ts, "symbol": "FOLLOW", "close": np.exp(np.cumsum(follow))}),
        ],
        ignore_index=True,
    )
    got = _feats(bars)
    f = got[got["symbol"] == "FOLLOW"].iloc[200:]
    ld = got[got["symbol"] == "LEAD"].iloc[200:]
    assert f["xa_lead"].mean() > 0.8  # FOLLOW's return at t goes with LEAD's at t-1
    assert abs(f["xa_lag"].mean()) < 0.2
    assert ld["xa_lag"].mean() > 0.8  # LEAD's return at t-1 goes with FOLLOW's at t
    assert abs(f["xa_corr"].mean()) < 0.2


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_any_number_of_symbols_same_columns_finite(k: int) -> None:
    bars, _ = _panel(300, k)
    got = _feats(bars)
    assert list(got.columns[:-1]) == list(CROSS_ASSET_NAMES)
    assert np.isfinite(got[list(CROSS_ASSET_NAMES)].to_numpy()).all()
    if k == 1:  # no other symbol: documented as all 0 with xa_missing = 1
        assert (got["xa_missing"] == 1).all()
        assert (got[list(CROSS_ASSET_NAMES[:-1])] == 0).all().all()


def test_rows_in_any_order_and_extended_frame() -> None:
    bars = generate_bars(SyntheticConfig(n_bars=700), 7)
    shuffled = bars.sample(frac=1.0, random_state=0)
    a = _feats(bars)
    b = _feats(shuffled).set_index(shuffled.index).sort_index()
    pd.testing.assert_frame_equal(a, b)
    fs = featurize_extended(shuffled, (), CrossAssetConfig(enabled=True))
    assert list(fs.frame.columns) == ["ts", "symbol", *FEATURE_NAMES, *CROSS_ASSET_NAMES]
    assert fs.frame[list(CROSS_ASSET_NAMES)].dtypes.eq(np.float32).all()
    assert (fs.frame["xa_missing"] == 0).all()  # warm-up (200 bars) covers the windows
