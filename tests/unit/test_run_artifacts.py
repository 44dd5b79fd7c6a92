"""The Prefect artifacts of a run read right in the UI, which renders table cells as Markdown."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

from pipelines.evaluation.gates import Gate
from tasks.context import ModelOutcome
from tasks.reporting import gate_markdown, gate_rows, number_cell, report_markdown

GATES = [
    Gate("onnx_parity", 3.2e-08, 1e-05, True, direction="<=", unit="abs diff"),
    Gate(
        "lift_lower_bound",
        -0.1411,
        0.0,
        False,
        direction=">",
        unit="nats",
        ci_low=-0.1411,
        ci_high=-0.007684,
        estimate=-0.0702,
    ),
    Gate("coverage", 0.91, 0.9, True, direction=">=", unit="share"),
    Gate("drawdown", 0.04, 0.05, True, direction="<", unit="share"),
]


def _rendered(cell: str) -> str:
    """A cell as CommonMark renders it (what the UI shows), tags stripped."""
    out = MarkdownIt("commonmark").render(cell)
    assert "<blockquote>" not in out, (cell, out)  # '>' and '>=' opened block quotes
    return html.unescape(re.sub(r"<[^>]+>", "", out)).strip()


def test_gate_cells_render_as_the_comparison_they_state() -> None:
    rows = gate_rows({"regime": ModelOutcome("regime", "blocked", "x", GATES)})
    assert [_rendered(r["compared"]) for r in rows] == [
        "3.2e-08 <= 1e-05 abs diff",  # rounded to six decimals the value read 0
        "-0.1411 > 0",  # the unit is said once, after the estimate
        "0.91 >= 0.9 share",
        "0.04 < 0.05 share",
    ]
    parity, lift, *_ = rows
    assert lift["estimate [95% CI]"] == "-0.0702 [-0.1411, -0.007684] nats"
    assert _rendered(lift["passed"]) == "no" and parity["estimate [95% CI]"] == ""


def test_gate_table_keeps_to_five_columns_and_names_a_span_its_gate_does_not() -> None:
    """Eleven columns ran past the UI's right edge at 1400 px (its table cells do not wrap)."""
    gates = [*GATES, Gate("drift", 0.1, 0.2, True, direction="<", span="confirm")]
    rows = gate_rows({"regime": ModelOutcome("regime", "blocked", "x", gates)})
    assert {len(r) for r in rows} == {5}
    assert rows[-1]["gate"] == "drift (confirm)" and rows[0]["gate"] == "onnx_parity"


def test_gate_artifact_is_a_list_per_model_that_wraps() -> None:
    """The UI's tables do not wrap their cells: the gate table ran past the right edge at
    1400 px and hid the estimates. Each gate is a list item, the comparison rendered as such."""
    outcomes = {
        "regime": ModelOutcome("regime", "blocked", "x", GATES),
        "recommendation": ModelOutcome("recommendation", "published", "v1"),
    }
    text = gate_markdown(outcomes)
    assert "<table>" not in MarkdownIt("commonmark").render(text)
    assert "recommendation" not in text  # no gates, no heading
    lines = [ln for ln in text.splitlines() if ln.startswith("- ")]
    assert len(lines) == len(GATES) and text.startswith("#### regime (blocked)")
    assert _rendered(lines[1]) == (
        "lift_lower_bound: no, -0.1411 > 0; estimate -0.0702 [-0.1411, -0.007684] nats"
    )


def test_numbers_keep_four_significant_digits_and_no_negative_zero() -> None:
    assert [number_cell(v) for v in (0.0, -0.0, 1234.5678, -2.5e-09, None)] == [
        "0",
        "0",
        "1235",
        "-2.5e-09",
        "",
    ]


def test_report_artifact_names_the_file_instead_of_a_dead_link() -> None:
    outcomes = {"regime": ModelOutcome("regime", "blocked", "lift | below 0", GATES)}
    summary = {
        "run_id": "20260101T000000Z-abc",
        "status": "published",
        "report": "/w/runs/r/report/index.html",
        "mlflow_run_id": "f00",
        "mlflow_tracking_uri": "sqlite:////w/mlflow.db",
        "mlflow_experiment_id": "1",
        "workdir": "/w",
    }
    text = report_markdown(summary, outcomes)
    assert "file://" not in text and "`/w/runs/r/report/index.html`" in text
    # a list, not a table: the UI's table cells do not wrap, so a long reason ran off the page
    assert "- **regime** (blocked): lift / below 0" in text
    assert "workflowType=machine_learning" in text
