"""Run bookkeeping: whether to train, what the last successful training was, the report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from pipelines.evaluation.gates import Gate
from pipelines.models.base import ModelResult
from pipelines.plots import plot_bars_overview
from pipelines.report import PARAMETER_FILES, ModelSection, write_report
from pipelines.workdir import WorkdirLayout, atomic_write_text
from tasks.context import ModelOutcome, RunContext, store_uri
from tasks.data import CollectResult
from tasks.tracking import log_run_summary


def read_last_training(layout: WorkdirLayout) -> dict[str, Any] | None:
    """The state the last run that published something left, or None."""
    try:
        data: dict[str, Any] = json.loads(layout.last_training.read_text())
    except (OSError, ValueError):
        return None
    return data


@dataclass(frozen=True)
class TrainingDecision:
    """Whether this run trains, and why (logged either way)."""

    train: bool
    reason: str


def decide_training(
    layout: WorkdirLayout, bars: pd.DataFrame, min_new_bars: int, force: bool
) -> TrainingDecision:
    """Train only when enough bars arrived since the last published model (or when forced)."""
    last = read_last_training(layout)
    if force:
        return TrainingDecision(True, "forced (--force)")
    if last is None:
        return TrainingDecision(True, "no previous successful training")
    new = len(bars) - int(last.get("bars", 0))
    if new < min_new_bars:
        return TrainingDecision(
            False,
            f"only {new} new bar(s) since the last published training at "
            f"{last.get('finished_at')} (training.min_new_bars={min_new_bars}); use --force",
        )
    return TrainingDecision(True, f"{new} new bar(s) since the last training")


def record_training(layout: WorkdirLayout, summary: Mapping[str, Any], n_bars: int) -> None:
    """Written after a run that published: the freshness facts health and scheduling read."""
    layout.state.mkdir(parents=True, exist_ok=True)
    state = {
        "finished_at": summary["finished_at"],
        "run_id": summary["run_id"],
        "bars": n_bars,
        "models": summary["models"],
        "data_hash": summary["data_hash"],
    }
    tmp = layout.last_training.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, default=str))
    tmp.replace(layout.last_training)


def _csv_tables(result: ModelResult) -> list[Path]:
    return [p for p in result.artifacts.values() if p.suffix == ".csv"]


def _images(result: ModelResult) -> list[Path]:
    return [p for p in result.artifacts.values() if p.suffix == ".png"]


@task(name="write_report", cache_policy=NO_CACHE)
def write_run_report(
    run_dir: Path,
    summary: Mapping[str, Any],
    outcomes: Mapping[str, ModelOutcome],
    results: Mapping[str, ModelResult],
    checks: Mapping[str, Any],
    bars: pd.DataFrame,
) -> Path:
    """The HTML page with every plot, the gate table and the data checks (models in the
    registry's order)."""
    sections = []
    for name, outcome in outcomes.items():
        result = results.get(name)
        sections.append(
            ModelSection(
                model=name,
                status=outcome.status,
                detail=outcome.detail,
                gates=[g.as_dict() for g in outcome.gates],
                metrics=dict(result.metrics) if result else {},
                images=_images(result) if result else [],
                tables=_csv_tables(result) if result else list(outcome.tables),
            )
        )
    overview = plot_bars_overview(bars, run_dir / "report" / "bars_overview.png")
    shown = {k: v for k, v in summary.items() if k not in {"models"}}
    return write_report(
        run_dir / "report",
        f"edgeflow run {summary['run_id']}",
        shown,
        sections,
        data_checks=checks,
        data_images=[overview],
    )


#: How a gate's direction reads in a Prefect table artifact. The UI renders each cell as
#: Markdown, where a leading ``>`` opens a block quote (``>`` showed blank, ``>=`` as a quote
#: bar), so the comparison is escaped.
_DIRECTION_CELL = {">=": "\\>=", ">": "\\>", "<=": "\\<=", "<": "\\<"}


def number_cell(value: float | None) -> str:
    """A number as a table cell: four significant digits, so a parity difference of 3e-08
    reads ``3e-08`` (rounding to six decimals showed it as 0) and a threshold ``0``."""
    if value is None:
        return ""
    if value == 0:
        return "0"  # also -0.0
    return f"{value:.4g}"


def gate_rows(outcomes: Mapping[str, ModelOutcome]) -> list[dict[str, Any]]:
    """The gate artifact's rows: every gate of every model, whether it passed, the comparison
    it makes, and its point estimate with the bootstrap interval (as the report writes it).
    The span is in the gate's name (``_confirmation``) or beside it; the unit is said once."""
    return [
        {
            "model": name,
            "gate": g.name if g.span == "test" or "confirm" in g.name else f"{g.name} ({g.span})",
            "passed": "yes" if g.passed else "**no**",
            "compared": " ".join(
                part
                for part in (
                    number_cell(g.value),
                    _DIRECTION_CELL.get(g.direction, g.direction),
                    number_cell(g.threshold),
                    g.unit if g.estimate is None else "",
                )
                if part
            ),
            "estimate [95% CI]": _estimate_cell(g),
        }
        for name, o in outcomes.items()
        for g in o.gates
    ]


def _estimate_cell(g: Gate) -> str:
    if g.estimate is None:
        return ""
    cell = number_cell(g.estimate)
    if g.ci_low is not None and g.ci_high is not None:
        cell = f"{cell} [{number_cell(g.ci_low)}, {number_cell(g.ci_high)}]"
    return f"{cell} {g.unit}".rstrip()


def gate_markdown(outcomes: Mapping[str, ModelOutcome]) -> str:
    """The gate table as Markdown lists, one per model. The UI's tables (table artifacts and
    Markdown tables alike) do not wrap their cells: at 1400 px five columns of 45-character
    gate names still ran past the right edge and hid the estimates. List items wrap."""
    lines: list[str] = []
    for name, o in outcomes.items():
        rows = gate_rows({name: o})
        if not rows:
            continue
        lines += [f"#### {name} ({o.status})", ""]
        for r in rows:
            estimate = r["estimate [95% CI]"]
            tail = f"; estimate {estimate}" if estimate else ""
            lines.append(f"- `{r['gate']}`: {r['passed']}, {r['compared']}{tail}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def outcome_lines(outcomes: Mapping[str, ModelOutcome]) -> list[str]:
    """What became of each model as a Markdown list: the UI's Markdown tables do not wrap
    their cells, so a table's reason column ran past the right edge; list items wrap."""
    return [f"- **{name}** ({o.status}): {_cell(o.detail)}" for name, o in outcomes.items()]


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def _counts(outcomes: Mapping[str, ModelOutcome]) -> str:
    """The models' statuses counted, the recommendation named apart: it is a parameter file,
    and counted with the models a run that shipped one model read "2 published"."""
    models = [o.status for n, o in outcomes.items() if n not in PARAMETER_FILES]
    counts = ", ".join(
        f"{models.count(s)} {s}" for s in ("published", "blocked", "skipped", "failed")
    )
    files = [f"the {n} {o.status}" for n, o in outcomes.items() if n in PARAMETER_FILES]
    return "; ".join([counts, *files])


def report_markdown(summary: Mapping[str, Any], outcomes: Mapping[str, ModelOutcome]) -> str:
    """The report's key facts for the Prefect UI, and where the HTML page is: a ``file://``
    link does nothing from the UI's http page, so the path, its host and its copy in MLflow
    are named instead."""
    import socket

    run_id, report = summary["run_id"], summary.get("report")
    if report:  # the workdir may be relative (to the checkout a deployment runs in)
        report = str(Path(report).resolve())
    lines = [
        f"### edgeflow run `{run_id}`: {summary['status']} ({_counts(outcomes)})",
        "",
        *outcome_lines(outcomes),
        "",
        "**The HTML report** (every plot, the gate table with intervals, the data checks):",
        "",
        f"- file `{report}` on host `{socket.gethostname()}`" if report else "- not written",
        f"- in MLflow: artifact `report/index.html` of run `{summary.get('mlflow_run_id')}` "
        f"(tracking URI `{summary.get('mlflow_tracking_uri')}`)",
        f"- `edgeflow runs open {run_id} --workdir {summary.get('workdir', '<workdir>')}` "
        "prints its path",
    ]
    experiment = summary.get("mlflow_experiment_id")
    if experiment is not None:
        lines.append(
            f"- MLflow UI: `#/experiments/{experiment}?workflowType=machine_learning` "
            "(the Machine learning view; MLflow 3 opens the GenAI view otherwise)"
        )
    return "\n".join(lines)


def root_flow_run_id() -> Any:
    """The flow run at the top of this one's tree: the run ``prefect deployment run`` prints
    when this flow runs as its subflow, else this run itself (None outside a flow)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return None
    run = ctx.flow_run
    with get_client(sync_client=True) as client:
        for _ in range(8):  # a few levels at most: scheduled entry -> training
            if run.parent_task_run_id is None:
                break
            parent = client.read_task_run(run.parent_task_run_id)
            if parent.flow_run_id is None:
                break
            run = client.read_flow_run(parent.flow_run_id)
    return run.id


@task(name="publish_run_artifacts", cache_policy=NO_CACHE)
def publish_run_artifacts(summary: Mapping[str, Any], outcomes: Mapping[str, ModelOutcome]) -> None:
    """The run summary, the gate table and the report's key facts as Prefect artifacts of the
    top flow run (the one a deployment run prints; the training runs as its subflow)."""
    from prefect.artifacts import MarkdownArtifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    lines = [
        f"### edgeflow run `{summary['run_id']}`: {summary['status']} ({_counts(outcomes)})",
        "",
        *outcome_lines(outcomes),
    ]
    artifacts: list[MarkdownArtifact] = [
        MarkdownArtifact(key="edgeflow-run-summary", markdown="\n".join(lines)),
    ]
    if any(o.gates for o in outcomes.values()):
        artifacts.append(MarkdownArtifact(key="edgeflow-gates", markdown=gate_markdown(outcomes)))
    artifacts.append(
        MarkdownArtifact(key="edgeflow-report", markdown=report_markdown(summary, outcomes))
    )
    root = root_flow_run_id()
    with get_client(sync_client=True) as client:
        for artifact in artifacts:
            client.create_artifact(
                ArtifactCreate(
                    key=artifact.key,
                    type=artifact.type,
                    description=artifact.description,
                    data=artifact.format(_sync=True),  # type: ignore[call-arg]
                    flow_run_id=root,
                )
            )


@task(name="close_run", cache_policy=NO_CACHE)
def close_run(
    ctx: RunContext,
    parent: str,
    data: CollectResult,
    outcomes: Mapping[str, ModelOutcome],
    results: Mapping[str, ModelResult],
    heartbeats: Mapping[str, str],
    shadow: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The run summary, the report, the last-training record, MLflow's parent run closed and
    the Prefect artifacts; returns the summary. ``shadow``: with ``promotion: shadow``, the
    line saying what became of each slot's challenger in shadow (promoted, kept, withdrawn)."""
    status = run_status(outcomes)
    failed = status == "failed"
    summary: dict[str, Any] = {
        "status": status,
        "run_id": ctx.run_id,
        "started_at": ctx.started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "store": store_uri(ctx.settings),
        "mlflow_run_id": parent,
        "mlflow_tracking_uri": ctx.tracker.tracking_uri,
        "mlflow_experiment_id": ctx.tracker.experiment_id,
        "workdir": str(ctx.settings.workdir),
        "models": {name: o.summary() for name, o in outcomes.items()},
        "heartbeats": dict(heartbeats),
        **ctx.lineage,
    }
    if shadow:  # absent in direct mode: that summary is unchanged
        summary["shadow"] = dict(shadow)
    report = write_run_report(data.run_dir, summary, outcomes, results, data.checks, data.bars)
    ctx.tracker.log_artifact(parent, report.parent, "report")
    summary["report"] = str(report)
    atomic_write_text(data.run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    if any(o.status == "published" for o in outcomes.values()):
        record_training(ctx.layout, summary, len(data.bars))
    log_run_summary(ctx.tracker, parent, outcomes)
    ctx.tracker.end_run(parent, ok=not failed)
    publish_run_artifacts(summary, outcomes)
    return summary


def run_status(outcomes: Mapping[str, ModelOutcome]) -> str:
    """What became of the run in one word, the one the summary, the report, the Prefect
    state and the CI job all show: ``failed`` (a model failed), ``skipped`` (every model
    skipped: nothing was judged), ``blocked`` (no model shipped, the recommendation aside),
    else ``published``. A bare "ok" beside four blocked models read as success."""
    statuses = [o.status for o in outcomes.values()]
    if "failed" in statuses:
        return "failed"
    if statuses and all(s == "skipped" for s in statuses):
        return "skipped"
    models = [o.status for n, o in outcomes.items() if n not in PARAMETER_FILES]
    if "blocked" in models and "published" not in models:
        return "blocked"
    return "published"


def final_state(summary: dict[str, Any], outcomes: Mapping[str, ModelOutcome]) -> State[Any]:
    """The run's :func:`run_status` as a Prefect state: Failed, or Completed named Skipped,
    Blocked or Published, with the counts in its message."""
    counts = _counts(outcomes)
    if summary["status"] == "failed":
        failed = [n for n, o in outcomes.items() if o.status == "failed"]
        return Failed(message=f"{', '.join(failed)} failed ({counts})", data=summary)
    if summary["status"] == "skipped":
        return Completed(name="Skipped", message=f"every model skipped ({counts})", data=summary)
    if summary["status"] == "blocked":
        models = [o.status for n, o in outcomes.items() if n not in PARAMETER_FILES]
        shipped = outcomes.get("recommendation")
        tail = (
            "; only the recommendation published"
            if shipped and shipped.status == "published"
            else ""
        )
        message = (
            f"no model shipped: {models.count('blocked')} blocked, "
            f"{models.count('skipped')} skipped{tail}"
        )
        return Completed(name="Blocked", message=message, data=summary)
    return Completed(name="Published", message=counts, data=summary)
