"""The recommendation's report table: flat, readable cells, never a Python dict's text."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tasks.recommend import table_row

CELL = {
    "basis": "family-level (no regime champion)",
    "confidence_threshold": 0.7,
    "exits": {
        "candidate": "live",
        "challenger": "grid",
        "lift_bps_per_trade_test": [-25.265, -48.041, -5.581],
        "lift_bps_per_trade_confirmation": [34.223, 21.287, 56.26],
        "reason": "grid (4 / 2 ATR) did not beat the live settings on the test span",
        "trades": {"fit": 321, "held_out": 214},
    },
    "position_size_multiplier": 1.0,
    "provenance": {
        "confidence_threshold": "default: no regime champion (family-level)",
        "position_size_multiplier": "default: no sizer passed its gates",
        "risk_per_trade": "heuristic: 1% of equity x the size multiplier",
        "stop_loss_multiplier": "live (family-level): grid did not beat the live settings",
    },
    "risk_per_trade": 0.01,
    "samples": 11271,
    "stop_loss_multiplier": 2.0,
    "take_profit_multiplier": 3.0,
}


def test_a_cell_is_one_flat_row_with_its_exit_decision_and_sources(tmp_path: Path) -> None:
    row = table_row("ema_cross", "TREND_UP", json.loads(json.dumps(CELL)))
    path = tmp_path / "recommendation.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    text = path.read_text()
    assert "{" not in text and "'" not in text  # the old table held dict reprs
    back = pd.read_csv(path).iloc[0]
    assert back["stop_loss_multiplier"] == 2.0 and back["samples"] == 11271
    assert back["exits_from"] == (
        "live: grid (4 / 2 ATR) did not beat the live settings on the test span"
    )
    assert back["exit_lift_test_bps"] == "-25.27 [-48.04, -5.58]"
    assert back["exit_lift_confirmation_bps"] == "+34.22 [+21.29, +56.26]"
    assert back["position_size_multiplier_from"] == "default: no sizer passed its gates"
    assert back["risk_per_trade_from"].startswith("heuristic")


def test_a_cell_without_exit_evidence_says_not_judged() -> None:
    cell = {**CELL, "exits": {"candidate": "live", "reason": "too few trades (12 < 30)"}}
    row = table_row("breakout", "PANIC", cell)
    assert row["exits_from"] == "live: too few trades (12 < 30)"
    assert row["exit_lift_test_bps"] == "-" and row["exit_lift_confirmation_bps"] == "-"
