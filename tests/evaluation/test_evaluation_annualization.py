"""Bars per year measured from the data's own timestamps."""

from __future__ import annotations

import pandas as pd
import pytest
from backtesting.test import EURUSD, GOOG

from pipelines.evaluation.risk import bars_per_year


def test_daily_equities_about_252() -> None:
    assert bars_per_year(GOOG.index) == pytest.approx(252, abs=3)


def test_fx_24x5_hourly_about_6200() -> None:
    assert bars_per_year(EURUSD.index) == pytest.approx(6200, rel=0.02)
    # built by hand: Sunday 22:00 to Friday 22:00 UTC, 120 bars a week, for two years
    hours = pd.date_range("2022-01-02 22:00", "2024-01-01", freq="1h", tz="UTC")
    week_hour = (hours.dayofweek * 24 + hours.hour - 6 * 24 - 22) % (7 * 24)
    fx = hours[week_hour < 120]
    assert bars_per_year(fx) == pytest.approx(120 * 365.25 / 7, rel=0.005)  # 6261


def test_crypto_24x7_hourly_is_calendar() -> None:
    ts = pd.date_range("2023-01-01", periods=20000, freq="1h", tz="UTC")
    assert bars_per_year(ts) == pytest.approx(8766, rel=1e-3)


def test_median_over_symbols_and_business_days() -> None:
    days = pd.bdate_range("2020-01-01", "2023-12-31", tz="UTC")  # no holidays: ~261
    gappy = days[::2]  # a symbol with every other day missing: ~130
    ts = pd.Series(list(days) + list(gappy) + list(days))
    sym = ["A"] * len(days) + ["B"] * len(gappy) + ["C"] * len(days)
    assert bars_per_year(ts, sym) == pytest.approx(261, abs=1.5)


def test_short_span_and_bad_input_raise() -> None:
    week = pd.bdate_range("2024-01-01", periods=5, tz="UTC")
    with pytest.raises(ValueError, match="need a span of at least"):
        bars_per_year(week)
    with pytest.raises(ValueError, match="timestamps but"):
        bars_per_year(week, ["A", "B"])
