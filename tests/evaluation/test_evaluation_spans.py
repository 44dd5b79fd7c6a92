"""The test/confirmation layout every gate reads (pipelines/evaluation/spans.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluation.bootstrap import mean_difference
from pipelines.evaluation.gates import lower_bound_gates
from pipelines.evaluation.spans import (
    confirm_cut,
    confirm_key,
    paired_span_cis,
    put_span_intervals,
    span_masks,
)


def _ts(n: int, symbols: int = 2) -> pd.Series:
    times = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return pd.Series(np.tile(times, symbols))


def test_cut_is_one_time_across_symbols_and_splits_by_fraction() -> None:
    ts = _ts(100)
    masks = span_masks(ts, 0.3)
    assert masks["test"].sum() + masks["confirm"].sum() == len(ts)
    cut = confirm_cut(ts, 0.3)
    assert ts[masks["confirm"]].min() == cut
    assert ts[masks["test"]].max() < cut
    assert masks["confirm"].sum() == 60  # 30 bars of each of the two symbols


def test_bad_fraction_and_tiny_span_are_refused() -> None:
    with pytest.raises(ValueError, match="confirm_fraction"):
        confirm_cut(_ts(10), 1.0)
    with pytest.raises(ValueError, match="at least 2 held-out rows"):
        confirm_cut(_ts(1, 1), 0.5)


def test_each_span_has_its_own_interval_and_gates_read_both() -> None:
    ts = _ts(400, 1)
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, len(ts))
    # a lift on the earlier span only: the test gate may pass, the confirmation must not
    lift = np.where(np.arange(len(ts)) < 200, 1.0, 0.0)
    cis = paired_span_cis(
        ts,
        base + lift,
        base,
        mean_difference,
        block=5,
        n=200,
        level=0.9,
        seed=1,
        confirm_fraction=0.5,
    )
    assert cis["test"].value == pytest.approx(1.0)
    assert cis["confirm"].value == pytest.approx(0.0)
    metrics: dict[str, float] = {}
    put_span_intervals(metrics, "lift/x", cis)
    assert metrics["lift/x_ci_low"] == cis["test"].low
    assert metrics[confirm_key("lift/x") + "_ci_low"] == cis["confirm"].low
    test_gate, confirm_gate = lower_bound_gates("x", metrics, "lift/x", 0.0, "x lift")
    assert test_gate.passed and not confirm_gate.passed
    assert confirm_gate.span == "confirm" and confirm_gate.name == "x_confirmation"
    assert test_gate.estimate == pytest.approx(1.0)


def test_missing_confirmation_estimate_fails_its_gate() -> None:
    metrics = {"lift/x": 1.0, "lift/x_ci_low": 0.5, "lift/x_ci_high": 1.5}
    test_gate, confirm_gate = lower_bound_gates("x", metrics, "lift/x", 0.0, "x lift")
    assert test_gate.passed
    assert not confirm_gate.passed and math.isnan(confirm_gate.value)
