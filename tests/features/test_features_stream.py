"""Streaming features equal batch ``featurize``: every feature, every bar, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from configs.settings import load_config
from pipelines.data.sources import read_sample
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES, WARMUP_BARS, compute_symbol, featurize
from pipelines.features.compute import _utc_seconds
from pipelines.features.stream import StreamingFeatures, SymbolFeatureState, epoch_seconds

_COLS = ("high", "low", "close", "volume")


def _synthetic(n: int, symbols: list[str], seed: int = 7) -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": n, "symbols": symbols})
    return generate_bars(cfg, seed)


def _eurusd() -> pd.DataFrame:
    frame = read_sample(["EURUSD"])[0].frame.rename(columns=str.lower)
    frame.insert(1, "symbol", "EURUSD")
    return frame.iloc[:1500].reset_index(drop=True)


def _flat_and_quiet(n: int = 900) -> pd.DataFrame:
    """Flat-price stretches and zero-volume bars: the 0 / 0.5 fallbacks of every ratio."""
    rng = np.random.default_rng(3)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close[300:420] = close[299]  # flat: zero range, zero returns
    high = close * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = close * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    high[300:420] = low[300:420] = close[300:420]
    volume = rng.integers(0, 50, n).astype(np.float64)
    volume[500:560] = 0.0
    ts = pd.date_range("2024-03-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "ts": ts,
            "symbol": "FLAT",
            "open": close,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def _stream(g: pd.DataFrame) -> np.ndarray:
    state = SymbolFeatureState(str(g["symbol"].iloc[0]))
    sec = _utc_seconds(g["ts"])
    rows = []
    for t, (s, h, lo, c, v) in enumerate(
        zip(sec, *(g[k].to_numpy(np.float64) for k in _COLS), strict=True)
    ):
        out = state.update(int(s), h, lo, c, v)
        assert (out is None) == (t < WARMUP_BARS)
        if out is not None:
            rows.append(out)
    return np.asarray(rows).reshape(-1, len(FEATURE_NAMES))


@pytest.mark.parametrize("source", ["synthetic", "eurusd", "flat"])
def test_every_feature_every_bar_is_bit_identical_to_batch(source: str) -> None:
    bars = {
        "synthetic": lambda: _synthetic(1500, ["SYN1"]),
        "eurusd": _eurusd,
        "flat": _flat_and_quiet,
    }[source]()
    sec = _utc_seconds(bars["ts"])
    batch = compute_symbol(sec, *(bars[k].to_numpy(np.float64) for k in _COLS))[WARMUP_BARS:]
    got = _stream(bars)
    assert got.shape == batch.shape == (len(bars) - WARMUP_BARS, 43)
    for j, name in enumerate(FEATURE_NAMES):
        bad = np.flatnonzero(got[:, j] != batch[:, j])
        assert not len(bad), (
            f"{source}: feature {name!r} differs at bar {WARMUP_BARS + bad[0]}: "
            f"stream {got[bad[0], j]!r} batch {batch[bad[0], j]!r}"
        )


def test_interleaved_symbols_equal_featurize_frame() -> None:
    bars = _synthetic(700, ["SYN1", "SYN2"], seed=11).sort_values(["ts", "symbol"])
    stream = StreamingFeatures()
    rows: dict[str, list[np.ndarray]] = {"SYN1": [], "SYN2": []}
    for bar in bars.to_dict("records"):
        out = stream.update_bar(bar)
        if out is not None:
            rows[str(bar["symbol"])].append(out)
    fs = featurize(bars)
    for sym, got in rows.items():
        expected = fs.frame.loc[fs.frame["symbol"] == sym, list(FEATURE_NAMES)].to_numpy()
        np.testing.assert_array_equal(np.asarray(got).astype(np.float32), expected)


def test_bad_bars_are_refused_and_leave_the_state_unchanged() -> None:
    bars = _synthetic(260, ["SYN1"])
    sec = _utc_seconds(bars["ts"])
    state = SymbolFeatureState("SYN1")
    for s, h, lo, c, v in zip(sec[:230], *(bars[k].to_numpy()[:230] for k in _COLS), strict=True):
        state.update(int(s), h, lo, c, v)
    with pytest.raises(ValueError, match=r"symbol 'SYN1', bar 230 .*field 'close'"):
        state.update(int(sec[230]), 1.0, 1.0, float("nan"), 1.0)
    with pytest.raises(ValueError, match="field 'volume'"):
        state.update(int(sec[230]), 1.0, 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="field 'ts' is not after"):
        state.update(int(sec[229]), 1.0, 1.0, 1.0, 1.0)
    assert state.n_bars == 230
    # the refused bars changed nothing: the rest of the series still matches batch
    rest = [
        state.update(int(s), h, lo, c, v)
        for s, h, lo, c, v in zip(
            sec[230:], *(bars[k].to_numpy()[230:] for k in _COLS), strict=True
        )
    ]
    batch = compute_symbol(sec, *(bars[k].to_numpy(np.float64) for k in _COLS))
    np.testing.assert_array_equal(np.asarray(rest), batch[230:])


def test_epoch_seconds_reads_naive_as_utc_and_converts_offsets() -> None:
    assert epoch_seconds("1970-01-02T00:00:00") == 86400
    assert epoch_seconds(pd.Timestamp("1970-01-02T02:00:00+02:00")) == 86400
