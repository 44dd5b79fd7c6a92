"""Risk figures on arrays small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluation import risk

# 20 returns: the worst is -0.05, then -0.04, -0.03, then zeros and gains.
R20 = np.array([-0.05, -0.04, -0.03] + [0.0] * 7 + [0.01] * 10)


def test_var_cvar_by_hand() -> None:
    # alpha 0.05 of 20 -> 1 return in the tail
    assert risk.var(R20, 0.05) == pytest.approx(0.05)
    assert risk.cvar(R20, 0.05) == pytest.approx(0.05)
    # alpha 0.1 -> 2 returns: VaR is the 2nd worst, CVaR the mean of both
    assert risk.var(R20, 0.10) == pytest.approx(0.04)
    assert risk.cvar(R20, 0.10) == pytest.approx(0.045)
    # alpha 0.12 -> ceil(2.4) = 3
    assert risk.var(R20, 0.12) == pytest.approx(0.03)
    assert risk.cvar(R20, 0.12) == pytest.approx(0.04)
    # order does not matter
    shuffled = np.random.default_rng(0).permutation(R20)
    assert risk.cvar(shuffled, 0.12) == pytest.approx(0.04)


def test_cvar_at_least_var_and_sign_of_gains() -> None:
    r = np.random.default_rng(1).normal(0, 0.01, 500)
    assert risk.cvar(r, 0.05) >= risk.var(r, 0.05)
    # all gains: the "loss" is negative (the worst period still made money)
    assert risk.cvar([0.01, 0.02, 0.03], 0.3) == pytest.approx(-0.01)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        risk.cvar([0.1, 0.2], 0.0)
    with pytest.raises(ValueError):
        risk.var([], 0.05)
    with pytest.raises(ValueError):
        risk.sharpe([0.1, float("nan")])
    with pytest.raises(ValueError):
        risk.periods_per_year("0s")


def test_sharpe_sortino_by_hand() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])
    mean, sd = 0.005, np.std(r, ddof=1)
    assert risk.sharpe(r) == pytest.approx(mean / sd)
    assert risk.sharpe(r, 4.0) == pytest.approx(2 * mean / sd)
    # downside deviation: sqrt((0 + 1e-4 + 0 + 0) / 4) = 0.005
    assert risk.sortino(r) == pytest.approx(0.005 / 0.005)
    assert risk.sortino([0.01, 0.02]) == 0.0  # no downside: undefined -> 0
    assert risk.sharpe([0.01, 0.01, 0.01]) == 0.0  # flat: undefined -> 0


def test_max_drawdown_by_hand() -> None:
    # equity 1.1, 0.88, 0.968, 1.1616: peak 1.1 -> trough 0.88 is a 20% drawdown
    assert risk.max_drawdown([0.1, -0.2, 0.1, 0.2]) == pytest.approx(0.2)
    assert risk.max_drawdown([0.01, 0.02]) == 0.0
    # losing from the start counts from the initial capital
    assert risk.max_drawdown([-0.1, -0.1]) == pytest.approx(0.19)


def test_annualization_from_interval() -> None:
    assert risk.periods_per_year("1h") == pytest.approx(8766.0)
    assert risk.periods_per_year("1D") == pytest.approx(365.25)
    assert risk.periods_per_year("15min") == pytest.approx(35064.0)
    assert risk.periods_per_year("1D", year=pd.Timedelta(days=252)) == pytest.approx(252.0)
    ts = pd.Series(pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC"))
    # duplicated stamps (several symbols) and one gap still give the bar interval
    doubled = pd.concat([ts, ts.drop(index=[10])], ignore_index=True)
    assert risk.infer_interval(doubled) == pd.Timedelta("1h")


def test_annualized_return_by_hand() -> None:
    # 2 periods of +10% with 2 periods a year -> 21% a year; half a year of +10% -> 21% a year
    assert risk.annualized_return([0.1, 0.1], 2.0) == pytest.approx(0.21)
    assert risk.annualized_return([0.1], 2.0) == pytest.approx(0.21)
    assert risk.annualized_return([0.1, -1.0], 2.0) == -1.0
    assert math.isfinite(risk.annualized_return([0.01] * 10, 1e6))  # no overflow
    assert risk.annualized_log_return([0.1, 0.1], 2.0) == pytest.approx(2 * math.log(1.1))


def test_aggregate_returns_compounds_per_day() -> None:
    ts = pd.Series(pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-02 00:00"]))
    daily = risk.aggregate_returns([0.1, 0.1, -0.5], ts, "1D")
    np.testing.assert_allclose(daily, [0.21, -0.5])


def test_turnover_counts_entry() -> None:
    # |0.5 - 0| + |1.5 - 0.5| + |-1 - 1.5| = 0.5 + 1 + 2.5 = 4 over 3 bars
    assert risk.turnover([0.5, 1.5, -1.0]) == pytest.approx(4 / 3)
    assert risk.equity_curve([0.1, -0.5])[-1] == pytest.approx(0.55)
