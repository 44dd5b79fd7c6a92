"""``edgeflow health``: freshness, disk and the store, read-only; exit 1 when unhealthy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.options import OptionalConfigOpt, WorkdirOpt, settings_from_cli

if TYPE_CHECKING:
    from configs.settings import Settings


def register(app: typer.Typer) -> None:
    """Add ``health`` to ``app``."""
    app.command("health")(health_cmd)


def health_cmd(
    workdir: WorkdirOpt = None,
    store: Annotated[
        str | None,
        typer.Option(help="file://PATH or s3://BUCKET/PREFIX; default: the workdir's store."),
    ] = None,
    config: OptionalConfigOpt = None,
    data_max_age_h: Annotated[float, typer.Option(help="Newest bar at most this old.")] = 2.0,
    model_max_age_h: Annotated[float, typer.Option(help="Live model at most this old.")] = 48.0,
    training_max_age_h: Annotated[float, typer.Option(help="Last good training within.")] = 8.0,
    min_free_gb: Annotated[float, typer.Option(help="Free disk under the workdir.")] = 1.0,
) -> None:
    """Check freshness, disk and the store; JSON out; exit 1 when unhealthy. Read-only: it
    signs nothing (a rollback is an operator's `edgeflow rollback`)."""
    import os
    import shutil
    import tempfile

    settings = settings_from_cli(config, workdir)
    scratch, borrowed = None, []
    if not Path(settings.workdir).exists():
        # Read-only: a workdir that does not exist is reported, not created. Prefect's home
        # and the scratch folder (flows.health imports Prefect) go to a folder removed below.
        scratch = tempfile.mkdtemp(prefix="edgeflow-health-")
        for key, sub in (("PREFECT_HOME", "prefect"), ("TMPDIR", "tmp")):
            if key not in os.environ:
                os.environ[key] = str(Path(scratch) / sub)
                borrowed.append(key)
    from flows.cli.runtime import prepare_settings

    try:
        prepare_settings(settings, flows=False)  # flows.health imports Prefect; no server starts
        report = _health_report(
            settings, store, data_max_age_h, model_max_age_h, training_max_age_h, min_free_gb
        )
    finally:
        if scratch is not None:  # nothing of the removed folder stays in the environment
            for key in borrowed:
                os.environ.pop(key, None)
            tempfile.tempdir = None
            shutil.rmtree(scratch, ignore_errors=True)
    typer.echo(json.dumps(report, indent=2, default=str))
    if not report["healthy"]:
        raise typer.Exit(1)


def _health_report(
    settings: Settings,
    store: str | None,
    data_max_age_h: float,
    model_max_age_h: float,
    training_max_age_h: float,
    min_free_gb: float,
) -> dict[str, Any]:
    from flows.health import check_health

    limits = {
        "data_max_age_h": data_max_age_h,
        "model_max_age_h": model_max_age_h,
        "training_max_age_h": training_max_age_h,
        "min_free_gb": min_free_gb,
    }
    report: dict[str, Any] = check_health(settings, store, limits=limits)
    return report
