"""The report's words and numbers: gates, units, lift names, reasons, details, layout."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from pipelines.models.bandit.plots import ope_display_table
from pipelines.report import (
    ModelSection,
    blocked_reason,
    dedupe_gates,
    display_frame,
    format_number,
    gate_view,
)

LIFT_GATE = {
    "name": "bandit_dr_lift_vs_best_arm",
    "value": -8e-5,
    "threshold": 0.0,
    "passed": False,
}


def test_gate_with_every_field_reads_value_direction_threshold_unit_ci() -> None:
    gate = {
        "name": "cvar_bar_improvement_vs_fixed_1x",
        "value": 43.0,
        "threshold": 20.0,
        "passed": True,
        "direction": ">=",
        "unit": "%",
        "ci_low": 31.0,
        "ci_high": 52.5,
        "description": "CVaR(5%) per bar, reduction against fixed 1.0x",
    }
    view = gate_view("sizer", gate)
    assert view.check == "43  >=  20  %  [31, 52.5]"
    assert view.meaning == gate["description"]


def test_gate_without_unit_takes_it_from_its_name_and_scales_to_bps() -> None:
    view = gate_view("bandit", LIFT_GATE)
    assert view.check == "-0.80  >=  0.00  bps"
    assert view.meaning == "DR reward lift bandit − best_arm"


@pytest.mark.parametrize(
    ("value", "threshold", "passed", "direction"),
    [
        (0.6, 0.4, True, ">="),
        (0.3, 0.4, False, ">="),
        (1e-7, 1e-5, True, "<="),
        (1e-3, 1e-5, False, "<="),
    ],
)
def test_direction_without_the_field_follows_value_threshold_and_verdict(
    value: float, threshold: float, passed: bool, direction: str
) -> None:
    gate = {"name": "g", "value": value, "threshold": threshold, "passed": passed}
    assert gate_view("m", gate).direction == direction


def test_parity_recorded_twice_counts_once_and_a_failing_copy_wins() -> None:
    gates = [
        {"name": "bandit_onnx_parity", "value": 2e-7, "threshold": 1e-5, "passed": True},
        LIFT_GATE,
        {"name": "onnx_max_abs_diff", "value": 2e-4, "threshold": 1e-5, "passed": False},
    ]
    kept = dedupe_gates("bandit", gates)
    assert [g["name"] for g in kept] == ["onnx_max_abs_diff", "bandit_dr_lift_vs_best_arm"]
    assert dedupe_gates("bandit", [gates[0], gates[0]]) == [gates[0]]


def test_blocked_reason_is_the_first_failing_gate_in_words() -> None:
    passing = {"name": "balanced_accuracy", "value": 0.6, "threshold": 0.4, "passed": True}
    section = ModelSection("bandit", "blocked", "blocked by gate(s) x", [passing, LIFT_GATE])
    assert blocked_reason(section) == (
        "DR reward lift bandit − best_arm (bandit_dr_lift_vs_best_arm) is -0.80 bps; "
        "it must be >= 0.00 bps."
    )
    described = {**LIFT_GATE, "description": "bandit beats the best single arm"}
    section.gates = [described]
    assert blocked_reason(section).startswith("bandit beats the best single arm (")
    assert blocked_reason(ModelSection("m", "published", "v1")) is None
    assert blocked_reason(ModelSection("m", "failed", "training raised X")) == "training raised X"


def test_ope_table_names_lifts_policy_minus_reference_in_bps() -> None:
    frame = pd.DataFrame(
        {
            "policy": ["bandit", "best_arm", "uniform", "lift/bandit", "lift/uniform"],
            "true_value": [1.2e-4, 2e-4, -5e-5, float("nan"), float("nan")],
            "dr": [1.2e-4, 2e-4, -5e-5, -8e-5, -2.5e-4],
            "dr_ci_low": [0.4e-4, 1.2e-4, -1.3e-4, -1.3e-4, -3e-4],
            "dr_ci_high": [2e-4, 2.8e-4, 0.3e-4, -0.3e-4, -2e-4],
        }
    )
    view = ope_display_table(frame)
    assert list(view["policy"]) == [
        "bandit",
        "best_arm",
        "uniform",
        "bandit − best_arm",
        "uniform − best_arm",
    ]
    assert list(view.columns) == ["policy", "true value (bps)", "DR (bps) [CI]"]
    assert view["DR (bps) [CI]"].iloc[4] == "-2.50 [-3.00, -2.00]"
    assert view["true value (bps)"].iloc[0] == "1.20"
    assert view["true value (bps)"].iloc[3] == ""
    with pytest.raises(ValueError, match="policy"):
        ope_display_table(frame.drop(columns="policy"))


def test_tables_name_the_unit_in_the_header_and_scale_to_it() -> None:
    frame = pd.DataFrame(
        {"sizer": ["cvar_ppo"], "ann_return": [0.25], "cvar_bar": [0.0012], "safety_z": [1.5]}
    )
    view = display_frame(frame)
    assert list(view.columns) == ["sizer", "ann_return (%/yr)", "cvar_bar (bps)", "safety_z"]
    assert list(view.iloc[0]) == ["cvar_ppo", "25.00", "12.00", "1.5"]


@pytest.mark.parametrize(
    ("value", "text"),
    [(20000.0, "20000"), (12345.6, "12346"), (0.123456, "0.1235"), (3e-7, "3e-07")],
)
def test_numbers_without_a_unit_keep_their_digits(value: float, text: str) -> None:
    assert format_number(value) == text


def test_page_has_reasons_wrapped_tables_and_no_dict_repr(report_page: Path) -> None:
    page = report_page.read_text(encoding="utf-8")
    # every table sits in its own scrolling box
    assert page.count("<table>") == page.count('<div class="table-wrap"><table>') > 5
    # the blocked model's reason comes before the gate table
    why = page.index('<div class="why">')
    assert why < page.index("<h2>Gates</h2>")
    assert "bandit_dr_lift_vs_best_arm) is -0.80 bps" in page[why:]
    # the recommendation's sources are a table, not a Python dict
    assert "{'" not in page and "&#x27;regime&#x27;:" not in page
    assert "<th>sources</th>" in page
    # parity once for the bandit, lifts named policy − reference, no bare lift/ rows
    gate_table = page[page.index("<h2>Gates</h2>") : page.index("<h2>regime")]
    parity_rows = r"<td>bandit</td><td>[^<]*(parity|onnx)"
    assert len(re.findall(parity_rows, gate_table)) == 1
    assert "uniform − best_arm" in page
    assert not re.search(r"<td>lift/[a-z_]+</td>", page)  # OPE rows, not metric keys
    assert "ann_return (%/yr)" in page
    for image in re.findall(r'<img src="([^"]+)"', page):
        assert (report_page.parent / image).stat().st_size > 1000
