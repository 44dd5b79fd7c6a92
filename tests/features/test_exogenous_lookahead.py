"""Look-ahead: changing every input after T changes no exogenous or cross-asset feature <= T.

The as-of join and the cross-asset windows are causal by construction; this proves it on the
features themselves, bit for bit, for every added feature (and the 43 alongside), on three
symbols with different calendars and two exogenous series (one daily with a publication lag,
one irregular and intraday with none).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from configs.data import CrossAssetConfig, SyntheticConfig
from pipelines.data.exogenous import ExogenousData
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.features.cross_asset import CROSS_ASSET_NAMES
from pipelines.features.exogenous import exogenous_feature_names
from pipelines.features.extended import extended_feature_names, featurize_extended

START = pd.Timestamp("2024-01-01T00:00:00Z")


def _bars() -> pd.DataFrame:
    bars = generate_bars(SyntheticConfig(n_bars=1500, symbols=["AAA", "BBB", "CCC"]), 7)
    # CCC trades only on weekdays: the symbols' timestamps differ, as real calendars do
    ccc = bars["symbol"] == "CCC"
    return bars[~ccc | (bars["ts"].dt.dayofweek < 5)].reset_index(drop=True)


def _series(seed: int) -> list[ExogenousData]:
    rng = np.random.default_rng(seed)
    daily_ts = pd.date_range(START - pd.Timedelta("20D"), periods=90, freq="1D")
    daily = pd.DataFrame({"ts": daily_ts, "close": 20 + rng.standard_normal(90).cumsum()})
    daily["spread"] = rng.standard_normal(90)
    steps = rng.integers(1, 9, size=800).cumsum()
    intraday_ts = START + pd.to_timedelta(steps * 30, unit="min")
    intraday = pd.DataFrame({"ts": intraday_ts, "value": rng.standard_normal(800)})
    day = pd.Timedelta("1D")
    return [
        ExogenousData("vol", "daily.csv", daily, day, day, 5 * day),
        ExogenousData(
            "flow", "flow.csv", intraday, pd.Timedelta("2h"), pd.Timedelta(0), pd.Timedelta("6h")
        ),
    ]


def _after(series: list[ExogenousData], cut: pd.Timestamp, seed: int) -> list[ExogenousData]:
    rng = np.random.default_rng(seed)
    out = []
    for s in series:
        frame = s.frame.copy()
        late = frame["ts"] > cut
        for c in s.columns:
            frame.loc[late, c] = rng.standard_normal(int(late.sum())) * 100
        out.append(ExogenousData(s.name, s.origin, frame, s.frequency, s.lag, s.max_age))
    return out


def _bars_after(bars: pd.DataFrame, cut: pd.Timestamp, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = bars.copy()
    late = (out["ts"] > cut).to_numpy()
    scale = np.exp(rng.normal(0, 0.2, size=int(late.sum())))
    for c in ("open", "high", "low", "close"):
        out.loc[late, c] = out.loc[late, c].to_numpy() * scale
    out.loc[late, "volume"] = out.loc[late, "volume"].to_numpy() * rng.uniform(0.1, 10, late.sum())
    return out


@pytest.mark.parametrize("benchmark", [None, "BBB"])
@pytest.mark.parametrize("cut_bar", [300, 777, 1200])
def test_no_feature_before_t_changes_when_everything_after_t_does(
    benchmark: str | None, cut_bar: int
) -> None:
    bars = _bars()
    cut = START + pd.Timedelta(hours=cut_bar) + pd.Timedelta(minutes=17)  # between bars
    series = _series(3)
    xa = CrossAssetConfig(enabled=True, benchmark=benchmark)
    base = featurize_extended(bars, series, xa).frame
    changed = featurize_extended(_bars_after(bars, cut, 5), _after(series, cut, 9), xa).frame
    names = extended_feature_names(series, xa)
    added = [*CROSS_ASSET_NAMES, *exogenous_feature_names(series)]
    assert list(names) == [*FEATURE_NAMES, *added]
    early = (base["ts"] <= cut).to_numpy()
    assert early.sum() > 200 and (~early).sum() > 200
    for name in names:
        a = base.loc[early, name].to_numpy()
        b = changed.loc[early, name].to_numpy()
        assert a.tobytes() == b.tobytes(), f"{name} changed before {cut}"
    # and the change is real: the late rows do differ, for every exogenous value and most
    # cross-asset features (so the test would catch a leak)
    late_diff = {n: bool((base.loc[~early, n] != changed.loc[~early, n]).any()) for n in added}
    assert all(late_diff[n] for n in ("xa_corr", "xa_beta", "xa_rs_24", "xa_dispersion_24"))
    assert all(late_diff[n] for n in ("exo_vol_close", "exo_vol_spread", "exo_flow_value"))


def test_a_value_is_seen_from_its_publication_on_not_a_nanosecond_before() -> None:
    from pipelines.features.exogenous import join_exogenous

    day = pd.Timedelta("1D")
    frame = pd.DataFrame({"ts": pd.DatetimeIndex(["2024-01-02", "2024-01-03"], tz="UTC")})
    frame["close"] = [11.0, 12.0]
    s = ExogenousData("vix", "vix.csv", frame, day, day, 3 * day)
    ts = pd.Series(
        pd.DatetimeIndex(
            [
                "2024-01-02T23:00:00",  # before the first publication (01-03 00:00)
                "2024-01-03T00:00:00",  # exactly at it
                "2024-01-03T23:59:59.999999999",
                "2024-01-04T00:00:00",
                "2024-01-07T00:00:00",  # 01-03's value is 3 days old: still shown
                "2024-01-07T00:00:00.000000001",  # older than max_age: masked
            ],
            tz="UTC",
        )
    )
    out = join_exogenous(ts, [s])
    assert out["exo_vix_close"].tolist() == [0.0, 11.0, 11.0, 12.0, 12.0, 0.0]
    assert out["exo_vix_missing"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    # rows in any order give the same per-row values
    rev = join_exogenous(ts[::-1].reset_index(drop=True), [s])
    assert rev["exo_vix_close"][::-1].tolist() == out["exo_vix_close"].tolist()


def test_default_featurize_is_unchanged_and_the_schema_has_a_fixed_shape() -> None:
    bars = _bars()
    plain = featurize(bars)
    assert featurize_extended(bars).frame.equals(plain.frame)
    assert list(featurize_extended(bars).frame.columns) == ["ts", "symbol", *FEATURE_NAMES]
    xa = CrossAssetConfig(enabled=True)
    # a series that publishes nothing within the bars' span: same columns, all masked
    far = _series(3)[0]
    gone = ExogenousData(
        far.name,
        far.origin,
        far.frame.assign(ts=far.frame["ts"] + pd.Timedelta("3650D")),
        far.frequency,
        far.lag,
        far.max_age,
    )
    with_data = featurize_extended(bars, [far], xa)
    without = featurize_extended(bars, [gone], xa)
    assert list(with_data.frame.columns) == list(without.frame.columns)
    assert (without.frame["exo_vol_missing"] == 1).all()
    assert (without.frame[["exo_vol_close", "exo_vol_spread"]] == 0).all().all()
    assert with_data.frame[list(FEATURE_NAMES)].equals(plain.frame[list(FEATURE_NAMES)])
    np.testing.assert_array_equal(with_data.X, plain.X)  # X stays the 43
