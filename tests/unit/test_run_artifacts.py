"""The Prefect artifacts of a run read right in the UI, which renders table cells as Markdown."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

from pipelines.evaluation.gates import Gate
from tasks.context import ModelOutcome
from tasks.reporting import gate_rows, number_cell, report_markdown

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
    assert [_rendered(r["direction"]) for r in rows] == ["<=", ">", ">=", "<"]
    parity, lift, *_ = rows
    assert _rendered(parity["value"]) == "3.2e-08"  # rounded to six decimals it read 0
    assert _rendered(parity["threshold"]) == "1e-05"
    assert (lift["estimate"], lift["ci_low"], lift["ci_high"]) == (
        "-0.0702",
        "-0.1411",
        "-0.007684",
    )
    assert _rendered(lift["passed"]) == "no" and parity["ci_low"] == ""


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
    assert "| regime | **blocked** | lift / below 0 |" in text  # a '|' would split the cell
    assert "workflowType=machine_learning" in text
