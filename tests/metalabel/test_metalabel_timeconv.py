"""Timestamp <-> integer conversions and the meta-labeler's fold cuts on a datetime64[us]
column (the unit Parquet hands back): on the old code every cut landed in 1970."""

from __future__ import annotations

import numpy as np
import pandas as pd

from configs.metalabel import MetaLabelConfig
from pipelines.features import FEATURE_NAMES
from pipelines.models.metalabel.train import (
    MetaData,
    MetaLabelTrainer,
    fit_arm_prior,
    keep_at_share,
)
from pipelines.seeding import Streams
from pipelines.timeconv import from_epoch_ns, to_epoch_ns, to_epoch_seconds


def _us_column(n: int) -> pd.Series:
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return pd.Series(ts).astype("datetime64[us, UTC]")


def test_epoch_ns_is_unit_independent() -> None:
    us = _us_column(3)
    ns = us.astype("datetime64[ns, UTC]")
    assert (to_epoch_ns(us) == to_epoch_ns(ns)).all()
    assert to_epoch_ns(us)[0] == 1_704_067_200_000_000_000
    assert to_epoch_seconds(us)[1] == 1_704_070_800
    assert from_epoch_ns(to_epoch_ns(us)[2]) == us.iloc[2]
    assert from_epoch_ns(float(to_epoch_ns(us)[1])) == us.iloc[1]


def _trades(n: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    frame.insert(0, "ts", _us_column(n))
    frame.insert(1, "symbol", "SYN1")
    frame["bar"] = np.arange(n)
    frame["arm"] = rng.integers(0, 12, n)
    frame["reward"] = rng.normal(0, 1e-3, n) + 2e-4 * frame["ret_1"]
    frame["win"] = (frame["reward"] > 0).astype(np.int64)
    return frame


def test_fold_cuts_train_on_a_microsecond_column() -> None:
    rng = np.random.default_rng(3)
    trades = _trades(3000, rng)
    cfg = MetaLabelConfig(n_estimators=20, min_child_samples=20)
    data = MetaData(trades, trades.iloc[:2400], trades.iloc[2400:], trades.iloc[2400:], trades)
    fitted = MetaLabelTrainer().fit(data, cfg, Streams(1))
    assert fitted.threshold_table["kept_share"].notna().all()
    assert (fitted.threshold_table["kept_share"] > 0).any()  # out-of-fold rows exist


def test_keep_at_share_keeps_exactly_that_share_by_prior() -> None:
    q = np.array([0.3, 0.3, 0.5, 0.5, 0.5, 0.7])
    w = keep_at_share(q, 0.5)
    assert np.isclose(w.sum(), 3.0)
    assert w[5] == 1.0 and np.allclose(w[2:5], 2 / 3) and (w[:2] == 0).all()


def test_arm_prior_reads_the_arms_win_rate() -> None:
    rng = np.random.default_rng(5)
    trades = _trades(6000, rng)
    trades["win"] = (trades["arm"] < 6).astype(np.int64)
    cfg = MetaLabelConfig(prior_strength=0.0)
    q = fit_arm_prior(trades, cfg).predict(trades)
    assert np.allclose(q, (trades["arm"] < 6).astype(float))
