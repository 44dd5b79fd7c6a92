"""Contract of the features: names, dtype, warm-up, determinism, causality, symbol isolation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from configs.settings import load_config
from pipelines.data.synthetic import generate_bars
from pipelines.features import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    WARMUP_BARS,
    FeatureSet,
    compute_features,
    featurize,
)


def _bars(n: int, symbols: list[str], seed: int = 7) -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": n, "symbols": symbols})
    return generate_bars(cfg, seed)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return _bars(1200, ["SYN1", "SYN2"])


@pytest.fixture(scope="module")
def fs(bars: pd.DataFrame) -> FeatureSet:
    return featurize(bars)


def test_names_are_43_unique_and_grouped() -> None:
    assert isinstance(FEATURE_NAMES, tuple)
    assert len(FEATURE_NAMES) == 43
    assert len(set(FEATURE_NAMES)) == 43
    assert tuple(n for g in FEATURE_GROUPS.values() for n in g) == FEATURE_NAMES
    assert "regime" not in FEATURE_NAMES


def test_frame_columns_dtype_and_finite(fs: FeatureSet) -> None:
    frame = fs.frame
    assert list(frame.columns) == ["ts", "symbol", *FEATURE_NAMES]
    assert all(frame[n].dtype == np.float32 for n in FEATURE_NAMES)
    assert str(frame["ts"].dtype).startswith("datetime64") and "UTC" in str(frame["ts"].dtype)
    assert np.isfinite(fs.X).all()
    assert fs.X.shape == (len(frame), 43) and fs.X.dtype == np.float32
    assert list(frame.index) == list(range(len(frame)))


def test_warmup_dropped_per_symbol(bars: pd.DataFrame, fs: FeatureSet) -> None:
    assert fs.warmup_dropped == 2 * WARMUP_BARS
    assert len(fs.frame) == len(bars) - 2 * WARMUP_BARS
    for sym, g in bars.groupby("symbol"):
        out = fs.frame[fs.frame["symbol"] == sym]
        assert out["ts"].iloc[0] == g["ts"].iloc[WARMUP_BARS]
        assert out["ts"].is_monotonic_increasing
    # compute_features keeps every row: NaN exactly in the warm-up, finite after it
    full = compute_features(bars)
    assert full.index.equals(bars.index)
    warm = bars.groupby("symbol").cumcount().to_numpy() < WARMUP_BARS
    assert full[warm].isna().all().all()
    assert np.isfinite(full[~warm].to_numpy()).all()


def test_short_symbol_contributes_no_rows() -> None:
    short = _bars(150, ["SHORT"])
    fs = featurize(short)
    assert len(fs.frame) == 0 and fs.warmup_dropped == 150
    assert list(fs.frame.columns) == ["ts", "symbol", *FEATURE_NAMES]


def test_deterministic(bars: pd.DataFrame, fs: FeatureSet) -> None:
    again = featurize(bars.copy())
    pd.testing.assert_frame_equal(fs.frame, again.frame)
    assert again.warmup_dropped == fs.warmup_dropped


def test_input_not_modified(bars: pd.DataFrame) -> None:
    before = bars.copy(deep=True)
    featurize(bars)
    compute_features(bars)
    pd.testing.assert_frame_equal(bars, before)


def test_symbols_computed_independently(bars: pd.DataFrame, fs: FeatureSet) -> None:
    alone = featurize(bars[bars["symbol"] == "SYN2"].reset_index(drop=True)).frame
    pooled = fs.frame[fs.frame["symbol"] == "SYN2"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, pooled)
    # a wildly different other symbol (100x price, 1000x volume) changes nothing for SYN2
    other = bars[bars["symbol"] == "SYN1"].copy()
    for col in ("open", "high", "low", "close"):
        other[col] *= 100.0
    other["volume"] *= 1000.0
    mixed = pd.concat([other, bars[bars["symbol"] == "SYN2"]], ignore_index=True)
    got = featurize(mixed).frame
    pd.testing.assert_frame_equal(got[got["symbol"] == "SYN2"].reset_index(drop=True), pooled)


def test_unsorted_input_gives_same_result(bars: pd.DataFrame, fs: FeatureSet) -> None:
    shuffled = bars.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(featurize(shuffled).frame, fs.frame)
    by_index = compute_features(shuffled)
    assert by_index.index.equals(shuffled.index)
    pd.testing.assert_frame_equal(by_index.sort_index(), compute_features(bars))


def test_scale_free_across_price_and_volume_levels(bars: pd.DataFrame, fs: FeatureSet) -> None:
    scaled = bars.copy()
    for col in ("open", "high", "low", "close"):
        scaled[col] *= 37.0
    scaled["volume"] *= 50.0
    got = featurize(scaled).X
    # log1p(volume) is scale-free only up to the +1, and float32 rounding; both are tiny here
    np.testing.assert_allclose(got, fs.X, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("t", [WARMUP_BARS, 333, 517, 899])
def test_no_lookahead(t: int) -> None:
    """Features at bar t are bit-identical when every bar after t is replaced."""
    base = _bars(900, ["SYN1"])
    rng = np.random.default_rng(t)
    altered = base.copy()
    after = altered.index > t
    k = int(after.sum())
    if k:
        close = altered["close"].to_numpy().copy()
        close[after] = close[t] * np.exp(np.cumsum(rng.normal(0.0, 0.05, k)))
        altered["close"] = close
        altered.loc[after, "open"] = close[after] * np.exp(rng.normal(0, 0.01, k))
        oc = altered.loc[after, ["open", "close"]]
        altered.loc[after, "high"] = oc.max(axis=1) * np.exp(np.abs(rng.normal(0, 0.02, k)))
        altered.loc[after, "low"] = oc.min(axis=1) * np.exp(-np.abs(rng.normal(0, 0.02, k)))
        altered.loc[after, "volume"] = rng.uniform(1.0, 1e6, k)
    a = compute_features(base).to_numpy()
    b = compute_features(altered).to_numpy()
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    if t + 1 < len(base):  # the alteration is real: later rows do change
        assert not np.array_equal(a[t + 1 :], b[t + 1 :], equal_nan=True)


def test_bad_input_is_refused(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing column"):
        featurize(bars.drop(columns=["volume"]))
    bad = bars.copy()
    bad.loc[5, "close"] = -1.0
    with pytest.raises(ValueError, match=r"'close'.*row 5"):
        featurize(bad)
    dup = pd.concat([bars.iloc[:300], bars.iloc[[10]]], ignore_index=True)
    with pytest.raises(ValueError, match="duplicate bar"):
        featurize(dup)
