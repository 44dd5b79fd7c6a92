"""Run bookkeeping: whether to train, what the last successful training was, the report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from pipelines.models.common import TrainOutcome
from pipelines.plots import plot_bars_overview
from pipelines.report import ModelSection, write_report
from pipelines.workdir import WorkdirLayout


def read_last_training(layout: WorkdirLayout) -> dict[str, Any] | None:
    """The state the last run that published something left, or None."""
    try:
        data: dict[str, Any] = json.loads(layout.last_training.read_text())
    except (OSError, ValueError):
        return None
    return data


def decide_training(
    layout: WorkdirLayout, bars: pd.DataFrame, min_new_bars: int, force: bool
) -> dict[str, Any]:
    """Train only when enough bars arrived since the last published model (or when forced)."""
    last = read_last_training(layout)
    if force:
        return {"train": True, "reason": "forced (--force)"}
    if last is None:
        return {"train": True, "reason": "no previous successful training"}
    new = len(bars) - int(last.get("bars", 0))
    if new < min_new_bars:
        return {
            "train": False,
            "reason": f"only {new} new bar(s) since the last published training at "
            f"{last.get('finished_at')} (training.min_new_bars={min_new_bars}); use --force",
        }
    return {"train": True, "reason": f"{new} new bar(s) since the last training"}


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


def _csv_tables(outcome: TrainOutcome) -> list[Path]:
    return [p for p in outcome.artifacts.values() if p.suffix == ".csv"]


def _images(outcome: TrainOutcome) -> list[Path]:
    return [p for p in outcome.artifacts.values() if p.suffix == ".png"]


@task(name="write_report", cache_policy=NO_CACHE)
def write_run_report(
    run_dir: Path,
    summary: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Any]],
    outcomes: Mapping[str, TrainOutcome],
    checks: Mapping[str, Any],
    bars: pd.DataFrame,
) -> Path:
    """The HTML page with every plot, the gate table and the data checks."""
    sections = []
    for name, result in results.items():
        outcome = outcomes.get(name)
        gates = [g.as_dict() for g in result.get("gates", [])]
        sections.append(
            ModelSection(
                model=name,
                status=str(result["status"]),
                detail=str(result["detail"]),
                gates=gates,
                metrics=dict(outcome.metrics) if outcome else {},
                images=_images(outcome) if outcome else [],
                tables=_csv_tables(outcome) if outcome else list(result.get("tables", [])),
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
