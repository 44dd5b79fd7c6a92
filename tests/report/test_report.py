"""The report's words and numbers: gates from their own fields, units, reasons, details."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from report_support import LOG_LOSS_GATE, SHARPE_GATE

from configs.metalabel import MetaLabelConfig
from pipelines.evaluation.gates import Gate, check, parity_gate
from pipelines.models.bandit.plots import ope_display_table
from pipelines.report import (
    ModelSection,
    blocked_reason,
    dedupe_gates,
    display_frame,
    empty_table_reason,
    format_number,
    gate_number,
    gate_view,
    reliability_comment,
    run_status_line,
    write_report,
)

LIFT_GATE = Gate("bandit_dr_lift_vs_best_arm", -0.8, 0.0, False, ">", "bps", span="confirm")


def test_lower_bound_gate_shows_bound_estimate_and_interval() -> None:
    view = gate_view("regime", LOG_LOSS_GATE)
    assert view.check == "lower bound -0.1411 > 0 nats · estimate -0.07 [-0.1411, -0.007684]"
    assert view.span == "test"


def test_gate_dict_from_a_manifest_reads_the_same_as_the_object() -> None:
    assert gate_view("regime", LOG_LOSS_GATE.as_dict()) == gate_view("regime", LOG_LOSS_GATE)


def test_gate_is_shown_in_its_own_unit_as_the_log_shows_it() -> None:
    precision = check("precision_lift_lower_bound", 0.004645, 0.0, ">", ci=(0.004645, 0.0117))
    assert gate_view("metalabel", precision).check == "0.004645 > 0 [0.004645, 0.0117]"
    assert f"{precision.value:.4g}" in precision.reason  # the log's figure, no bps here
    assert gate_view("bandit", LIFT_GATE).check == "-0.8 > 0 bps"


@pytest.mark.parametrize("value", [-0.0, -1e-9, 0.0])
def test_zero_never_prints_as_minus_zero(value: float) -> None:
    assert gate_number(value) in {"0", "-1e-09"}
    assert gate_view("sizer", SHARPE_GATE).check == "0.097 >= 0"


def test_parity_recorded_twice_counts_once_and_a_failing_copy_wins() -> None:
    gates = [
        {"name": "bandit_onnx_parity", "value": 2e-7, "threshold": 1e-5, "passed": True},
        LIFT_GATE,
        parity_gate(2e-4, 1e-5),
    ]
    kept = dedupe_gates("bandit", gates)
    assert [g.name for g in kept] == ["onnx_max_abs_diff", "bandit_dr_lift_vs_best_arm"]


def test_blocked_reason_is_the_first_failing_gate_with_its_span() -> None:
    passing = check("balanced_accuracy", 0.6, 0.4)
    section = ModelSection("bandit", "blocked", "blocked by gate(s) x", [passing, LIFT_GATE])
    assert blocked_reason(section) == (
        "bandit dr lift vs best arm (bandit_dr_lift_vs_best_arm, confirm span) is -0.8 bps; "
        "it must be > 0 bps."
    )
    assert blocked_reason(ModelSection("m", "published", "v1")) is None
    assert blocked_reason(ModelSection("m", "failed", "training raised X")) == "training raised X"


def test_status_line_counts_published_models() -> None:
    sections = [ModelSection(m, st, "") for m, st in [("a", "published"), ("b", "blocked")]]
    sections += [ModelSection("c", "blocked", ""), ModelSection("d", "blocked", "")]
    assert run_status_line({"status": "published"}, sections) == (
        "run completed: 1 of 4 models published (3 blocked)"
    )
    assert run_status_line({"status": "failed"}, sections[:1]).startswith("run failed: 1 of 1")


def test_status_line_names_the_recommendation_apart_from_the_models() -> None:
    sections = [ModelSection(m, "blocked", "") for m in ("regime", "bandit", "sizer", "metalabel")]
    sections.append(ModelSection("recommendation", "published", "version v000001"))
    assert run_status_line({"status": "blocked"}, sections) == (
        "run completed: 0 of 4 models published (4 blocked); the recommendation published"
    )
    sections[0] = ModelSection("regime", "published", "v000001")
    assert run_status_line({"status": "published"}, sections) == (
        "run completed: 1 of 4 models published (3 blocked); the recommendation published"
    )


def test_summary_table_says_none_for_an_empty_value(tmp_path: Path) -> None:
    summary = {"status": "blocked", "run_id": "r1", "heartbeats": {}, "warnings": []}
    sections = [ModelSection("regime", "blocked", "blocked by gate(s) x")]
    page = write_report(tmp_path, "edgeflow run r1", summary, sections).read_text(encoding="utf-8")
    for key in ("heartbeats", "warnings"):
        assert re.search(rf"<td>{key}</td>\s*<td[^>]*>none</td>", page), key


def test_reliability_comment_names_ece_and_side(tmp_path: Path) -> None:
    path = tmp_path / "regime_reliability.csv"
    pd.DataFrame({"confidence": [0.4, 0.93], "accuracy": [0.3, 0.067], "count": [900, 100]}).to_csv(
        path, index=False
    )
    text = reliability_comment(path)
    assert text is not None and text.startswith("ECE 0.176:") and "over-confident" in text
    pd.DataFrame({"confidence": [0.5], "accuracy": [0.51], "count": [10]}).to_csv(path)
    assert reliability_comment(path) is None  # well calibrated: nothing to say


def test_all_zero_or_nan_table_says_so_instead_of_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"threshold": [0.45, 0.5], "kept_share": 0.0, "mean_reward_kept": None})
    frame["mean_reward_kept"] = frame["mean_reward_kept"].astype("float64")
    path = tmp_path / "metalabel_thresholds.csv"
    assert empty_table_reason(path, frame) == (
        "no metalabel thresholds: kept_share is 0 and mean_reward_kept is missing at every one "
        "of the 2 threshold rows"
    )
    frame.loc[0, "kept_share"] = 0.3
    assert empty_table_reason(path, frame) is None


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
    assert list(view["policy"])[3:] == ["bandit − best_arm", "uniform − best_arm"]
    assert view["DR (bps) [CI]"].iloc[4] == "-2.50 [-3.00, -2.00]"


def test_tables_name_the_unit_in_the_header_and_scale_to_it() -> None:
    frame = pd.DataFrame(
        {"sizer": ["cvar_ppo"], "ann_return": [0.25], "cvar_bar": [0.0012], "safety_z": [1.5]}
    )
    view = display_frame(frame)
    assert list(view.columns) == ["sizer", "ann_return (%/yr)", "cvar_bar (bps)", "safety_z"]
    assert list(view.iloc[0]) == ["cvar_ppo", "25.00", "12.00", "1.5"]


def test_a_header_that_names_its_unit_is_shown_as_stored() -> None:
    """The champion table's lifts are in the slot's unit already (bps, Sharpe): the report
    multiplied them by 1e4 again under a "bps" header (a +2.07 bps lift read 20652)."""
    frame = pd.DataFrame(
        {
            "candidate": ["best_arm", "vol_target"],
            "lift_test (bps)": [2.0652, 0.0],
            "lift_confirm (Sharpe)": [0.0, 0.633],
            "why_not": ["-", "-"],
        }
    )
    view = display_frame(frame)
    assert list(view.columns) == list(frame.columns)
    assert str(view.iloc[0]["lift_test (bps)"]) == "2.065"
    assert str(view.iloc[1]["lift_confirm (Sharpe)"]) == "0.633"


@pytest.mark.parametrize(
    ("value", "text"),
    [(20000.0, "20000"), (12345.6, "12346"), (0.123456, "0.1235"), (3e-7, "3e-07")],
)
def test_numbers_without_a_unit_keep_their_digits(value: float, text: str) -> None:
    assert format_number(value) == text


def test_page_has_status_reasons_tables_and_no_raw_json(report_page: Path) -> None:
    page = report_page.read_text(encoding="utf-8")
    assert page.count("<table>") == page.count('<div class="table-wrap"><table>') > 5
    assert (
        "run completed: 1 of 4 models published (3 blocked); the recommendation published" in page
    )
    assert "<td>ok</td>" not in page
    why = page.index('<div class="why">')
    assert why < page.index("<h2>Gates</h2>")
    assert "estimate -0.07 [-0.1411, -0.007684]" in page
    assert "<th>span</th>" in page and "<td>confirm</td>" in page
    assert "{&quot;" not in page and "<pre>" not in page  # data checks are tables
    assert '<section id="data-checks">' in page and "<td>synthetic:SYN1</td>" in page
    assert "ECE 0.1" in page and "over-confident" in page
    assert "no metalabel thresholds: kept_share is 0" in page and "<td>nan</td>" not in page
    assert not re.search(r">-0(\.0+)?<| -0 ", page)
    for image in re.findall(r'<img src="([^"]+)"', page):
        assert (report_page.parent / image).stat().st_size > 1000


def test_a_zero_tolerance_gate_never_reads_minus_zero_in_log_manifest_or_report() -> None:
    """The sizer's Sharpe gate's threshold is ``-gate_sharpe_tolerance``, -0.0 by default: the
    log line (``Gate.reason``), the manifest's dict and the report printed ``-0``."""
    from configs.sizer import SizerConfig
    from pipelines.evaluation.gates import blocked_reason as gate_reason
    from pipelines.evaluation.gates import sizer_gates
    from pipelines.plots import BPS

    metrics = {"holdout/sharpe": 0.5, "baseline/constant/sharpe": 0.8}
    sharpe = next(g for g in sizer_gates(metrics, SizerConfig()) if g.name == "sharpe_vs_constant")
    assert not sharpe.passed and str(sharpe.as_dict()["threshold"]) == "0.0"
    minus_zero = re.compile(r"-0(?![.\d])|-0\.0*(?!\d)")
    assert "needs >= 0 (" in sharpe.reason and not minus_zero.search(gate_reason([sharpe]))
    assert gate_view("sizer", sharpe.as_dict()).check == "-0.3 >= 0"
    assert format_number(-0.0, BPS) == "0.00"


def test_precision_lift_reads_in_points_as_the_log_and_the_gate_say() -> None:
    """``lift/precision_within_arm`` is stored in points; the metrics table scaled it as a
    fraction to bps (3.38 pts shown as 33,815 bps) while the gate and the log said pts."""
    from pipelines.evaluation.gates import metalabel_gates
    from pipelines.report import _metrics_table

    metrics = {
        "lift/precision_within_arm": 3.3815,
        "lift/precision_within_arm_ci_low": 0.7647,
        "lift/precision_within_arm_ci_high": 5.705,
        "confirm/lift/precision_vs_unfiltered": 7.5594,
    }
    page = _metrics_table(metrics)
    assert '<td class="num">3.38</td><td>pts</td>' in page
    assert '<td class="num">7.56</td><td>pts</td>' in page and "bps" not in page
    gate = next(
        g
        for g in metalabel_gates(metrics, MetaLabelConfig())
        if g.name == "precision_within_arm_lower_bound"
    )
    thresholds = display_frame(pd.DataFrame({"threshold": [0.5], "mean_reward_kept": [-2.95e-4]}))
    assert list(thresholds.columns) == ["threshold", "mean_reward_kept (bps)"]
    assert thresholds.iloc[0, 1] == "-2.95"  # was a bare fraction beside the lift in bps
    assert gate.unit == "pts" and gate_view("metalabel", gate).check.startswith(
        "lower bound 0.7647 > 0 pts · estimate 3.381 [0.7647, 5.705]"
    )
