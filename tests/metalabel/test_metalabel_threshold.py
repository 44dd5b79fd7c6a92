"""The meta-labeler's threshold reads the same in its table, its log and the recommendation:
the threshold table marks the chosen row, and every candidate lies within the bounds the
recommendation's ``confidence_threshold`` is clamped into (0.45 was a default candidate: it
was logged and gated at 0.45 and shipped as 0.5)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_metalabel_timeconv import _trades

from configs.metalabel import CONFIDENCE_THRESHOLD_BOUNDS, MetaLabelConfig
from configs.settings import ConfigError, load_config
from pipelines.models.metalabel.train import MetaData, MetaLabelTrainer, choose_threshold
from pipelines.recommendations import SAFE_BOUNDS, _clamp
from pipelines.seeding import Streams


def test_every_default_candidate_ships_as_the_value_it_was_chosen_and_gated_at() -> None:
    assert SAFE_BOUNDS["confidence_threshold"] == CONFIDENCE_THRESHOLD_BOUNDS
    for t in MetaLabelConfig().thresholds:
        assert _clamp("confidence_threshold", t) == t


def test_a_candidate_outside_the_recommendation_bounds_is_refused_naming_it() -> None:
    with pytest.raises(
        ConfigError, match=r"metalabel\.thresholds: .*0\.45 outside \[0\.5, 0\.95\]"
    ):
        load_config(None, {"metalabel.thresholds": [0.45, 0.5]})


def test_threshold_table_marks_the_threshold_it_returns() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.3, 0.8, 2_000)
    q = rng.uniform(0.3, 0.8, 2_000)
    reward = np.where(rng.uniform(size=2_000) < p, 0.002, -0.002)
    cfg = MetaLabelConfig()
    threshold, table = choose_threshold(p, q, reward, cfg)
    assert table["chosen"].sum() == 1
    assert float(table.loc[table["chosen"], "threshold"].iloc[0]) == threshold


def test_without_out_of_fold_trades_the_lowest_candidate_is_marked_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Too few trades for any fold: the table is all-missing, the threshold is the lowest
    candidate, and the log says it was not chosen on evidence (it read as a choice)."""
    trades = _trades(200, np.random.default_rng(4))
    cfg = MetaLabelConfig(n_estimators=10, min_child_samples=5, n_folds=2)
    data = MetaData(trades, trades.iloc[:150], trades.iloc[150:], trades.iloc[150:], trades)
    with caplog.at_level(logging.INFO, logger="pipelines.models.metalabel.train"):
        fitted = MetaLabelTrainer().fit(data, cfg, Streams(1))
    table = fitted.threshold_table
    assert fitted.threshold == min(cfg.thresholds)
    assert table["lift_vs_arm_prior_per_trade"].isna().all()
    assert table.loc[table["chosen"], "threshold"].tolist() == [fitted.threshold]
    said = "threshold 0.50, the lowest candidate: none kept at least min_trade_share=0.1 of the"
    assert said in caplog.text and "so none was chosen on evidence" in caplog.text


def test_the_kept_share_gate_names_the_threshold_it_was_measured_at() -> None:
    """The log, Prefect and the report showed "kept_trade_share 0.91 >= 0.1" beside a table
    of thresholds without saying at which one: the gate names it."""
    from pipelines.evaluation.gates import metalabel_gates

    metrics = {"holdout/kept_share": 0.236, "holdout/threshold": 0.52}
    gate = next(
        g for g in metalabel_gates(metrics, MetaLabelConfig()) if g.name == "kept_trade_share"
    )
    assert gate.passed and "at its P(win) threshold 0.52 (the threshold table's chosen row)" in (
        gate.reason
    )
