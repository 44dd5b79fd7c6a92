"""Streaming cross-asset and exogenous features equal the batch ones bit for bit, every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from configs.data import CrossAssetConfig, SyntheticConfig
from pipelines.data.exogenous import ExogenousData
from pipelines.data.synthetic import generate_bars
from pipelines.features.cross_asset import CROSS_ASSET_NAMES, cross_asset_features
from pipelines.features.exogenous import join_exogenous
from pipelines.features.stream_extra import CrossAssetStream, ExogenousStream


def _bars(k: int) -> pd.DataFrame:
    symbols = ["AAA", "BBB", "CCC", "DDD"][:k]
    bars = generate_bars(SyntheticConfig(n_bars=900, symbols=symbols), 11)
    if k >= 3:  # CCC trades on weekdays only, so the grid has rows without it
        ccc = bars["symbol"] == "CCC"
        bars = bars[~ccc | (bars["ts"].dt.dayofweek < 5)]
    if k >= 2:  # BBB starts later
        late = (bars["symbol"] == "BBB") & (bars["ts"] < bars["ts"].min() + pd.Timedelta("5D"))
        bars = bars[~late]
    return bars.reset_index(drop=True)


@pytest.mark.parametrize(("k", "benchmark"), [(1, None), (2, None), (3, None), (4, "AAA")])
def test_cross_asset_stream_equals_batch(k: int, benchmark: str | None) -> None:
    bars = _bars(k)
    cfg = CrossAssetConfig(enabled=True, benchmark=benchmark, window=48)
    batch = cross_asset_features(bars["ts"], bars["symbol"], bars["close"].to_numpy(), cfg)
    want = np.column_stack([batch[n] for n in CROSS_ASSET_NAMES])
    stream = CrossAssetStream(sorted(bars["symbol"].unique()), cfg)
    got = np.full_like(want, np.nan)
    for ts, rows in bars.groupby("ts", sort=True):
        out = stream.update(ts, dict(zip(rows["symbol"], rows["close"], strict=True)))
        for i, sym in zip(rows.index, rows["symbol"], strict=True):
            got[i] = out[sym]
    assert got.tobytes() == want.tobytes()


def test_exogenous_stream_equals_batch() -> None:
    rng = np.random.default_rng(2)
    day = pd.Timedelta("1D")
    daily = pd.DataFrame(
        {"ts": pd.date_range("2023-12-20", periods=40, freq="1D", tz="UTC")}
    ).assign(close=rng.standard_normal(40), other=rng.standard_normal(40))
    daily = daily.drop(index=range(10, 17)).reset_index(drop=True)  # a week-long outage
    series = [ExogenousData("vol", "v.csv", daily, day, day, 3 * day)]
    ts = pd.Series(pd.date_range("2024-01-01", periods=900, freq="1h", tz="UTC"))
    batch = join_exogenous(ts, series)
    stream = ExogenousStream(series)
    got = np.vstack([stream.features(t) for t in ts])
    want = np.column_stack([batch[n] for n in stream.names])
    assert got.tobytes() == want.tobytes()
    assert want[:, -1].any() and not want[:, -1].all()  # the outage is masked, the rest not
    # values published one at a time, as a live feed does, give the same answers
    live = ExogenousStream([ExogenousData("vol", "v.csv", daily.iloc[:0], day, day, 3 * day)])
    rows = iter(daily.itertuples(index=False))
    pending = next(rows, None)
    for i, t in enumerate(ts):
        while pending is not None and pending.ts + day <= t:
            live.publish("vol", pending.ts, [pending.close, pending.other])
            pending = next(rows, None)
        assert live.features(t).tobytes() == want[i].tobytes()


def test_extended_stream_equals_featurize_extended() -> None:
    from pipelines.features.extended import featurize_extended
    from pipelines.features.stream_extra import ExtendedStreamingFeatures

    bars = _bars(3)
    day = pd.Timedelta("1D")
    rng = np.random.default_rng(4)
    daily = pd.DataFrame(
        {"ts": pd.date_range("2023-12-25", periods=50, freq="1D", tz="UTC")}
    ).assign(close=20 + rng.standard_normal(50))
    series = [ExogenousData("vix", "vix.csv", daily, day, day, 5 * day)]
    cfg = CrossAssetConfig(enabled=True)
    frame = featurize_extended(bars, series, cfg).frame
    stream = ExtendedStreamingFeatures(sorted(bars["symbol"].unique()), series, cfg)
    assert list(frame.columns[2:]) == list(stream.names)
    rows: dict[tuple[str, pd.Timestamp], np.ndarray] = {}
    for ts, group in bars.groupby("ts", sort=True):
        out = stream.update_row(ts, {r.symbol: r._asdict() for r in group.itertuples()})
        rows.update({(s, ts): v for s, v in out.items() if v is not None})
    got = np.vstack([rows[(s, t)] for s, t in zip(frame["symbol"], frame["ts"], strict=True)])
    want = frame[list(stream.names)].to_numpy()
    assert len(rows) == len(frame)
    assert got.astype(np.float32).tobytes() == want.tobytes()
