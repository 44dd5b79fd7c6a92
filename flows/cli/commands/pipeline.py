"""The pipeline commands: ``run``, ``collect``, ``reset-data`` and ``replay``.

Each checks its input first (:mod:`flows.cli.preflight`), then points Prefect at the workdir
and starts its local API (:mod:`flows.cli.runtime`, :mod:`flows.cli.local_api`) before the
flow and its heavy imports load.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.options import (
    DEFAULT_CONFIG,
    ConfigOpt,
    ExogenousOpt,
    OptionalConfigOpt,
    SetOpt,
    WorkdirOpt,
    settings_from_cli,
)
from flows.cli.preflight import check_input, check_store_uri, precheck
from pipelines.data.errors import RejectedInputError


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to ``app``, in the order ``--help`` lists them."""
    app.command()(run)
    app.command()(collect)
    app.command("reset-data")(reset_data)
    app.command()(replay)


def _limit_threads() -> None:
    """One thread per numeric library pool, set before anything imports numpy or torch
    (``flows.cli.runtime.limit_threads``: the flow runs one training per core already). Called
    first by every command that reads bars, so it also lets the import notes through."""
    from flows.cli.runtime import limit_threads, show_import_notes

    show_import_notes()
    limit_threads()


def run(
    config: ConfigOpt = DEFAULT_CONFIG,
    workdir: WorkdirOpt = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Your own bars: a CSV/Parquet file or a folder of them. Columns are "
            "matched case-insensitively: ts|timestamp|datetime|date|time, open, high, "
            "low, close (or adj close), volume and optional symbol (else the file name is "
            "the symbol). Separator, epoch units and time zone: see data.files in the docs."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(help="Model store: file://PATH or s3://BUCKET/PREFIX (overrides config)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Train even when too little new data has arrived.")
    ] = False,
    sets: SetOpt = None,
    exogenous: ExogenousOpt = None,
) -> None:
    """Run the training flow: collect, check, featurize, train, gate, export, publish, report."""
    _limit_threads()
    settings = settings_from_cli(config, workdir, data, store, sets, exogenous)
    check_store_uri(settings)
    skipped = precheck(settings)  # provenance, the input itself, history per symbol
    if skipped is not None:
        typer.echo(json.dumps(skipped, indent=2, default=str))
        return
    from flows.cli.local_api import serve_local_api
    from flows.cli.runtime import prepare_settings

    prepare_settings(settings)
    api = serve_local_api()
    from flows.training import run_training

    with api:
        summary = run_training(settings, force=force)
    if summary.get("status") == "rejected":
        raise RejectedInputError(summary["reason"])
    typer.echo(json.dumps(summary, indent=2, default=str))
    if summary.get("status") == "failed":
        raise typer.Exit(1)


def collect(
    config: ConfigOpt = Path("configs/demo.yaml"),
    workdir: WorkdirOpt = None,
    data: Annotated[Path | None, typer.Option(help="Your own bars (file or folder).")] = None,
    sets: SetOpt = None,
    exogenous: ExogenousOpt = None,
) -> None:
    """Collect new bars incrementally, check them and update the features (no training)."""
    _limit_threads()
    settings = settings_from_cli(config, workdir, data, None, sets, exogenous)
    check_input(settings)  # bad input refused in seconds, as by `run`
    from flows.cli.local_api import serve_local_api
    from flows.cli.runtime import prepare_settings

    prepare_settings(settings, tracks=False)  # collect logs nothing to MLflow
    api = serve_local_api()
    from flows.collect import run_collect

    with api:
        summary = run_collect(settings)
    typer.echo(json.dumps(summary, indent=2, default=str))


def reset_data(
    config: OptionalConfigOpt = None,
    workdir: WorkdirOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the workdir's bar store (to collect from another source); models are kept."""
    import shutil

    from pipelines.data.provenance import read_provenance
    from pipelines.data.store import watermarks
    from pipelines.workdir import WorkdirLayout

    settings = settings_from_cli(config, workdir)
    bars = WorkdirLayout(settings.workdir).bars
    if not bars.exists():
        typer.echo(f"{bars}: no bar store, nothing to reset")
        return
    record = read_provenance(bars)
    held = record.describe() if record is not None else "an unrecorded source"
    n_symbols = len(watermarks(bars))
    if not yes:
        if not sys.stdin.isatty():
            raise typer.BadParameter(
                f"{bars} holds {n_symbols} symbol(s) from {held}; pass --yes to delete it",
                param_hint="--yes",
            )
        typer.confirm(f"delete {bars} ({n_symbols} symbol(s) from {held})?", abort=True)
    shutil.rmtree(bars)
    typer.echo(f"deleted {bars} ({n_symbols} symbol(s) from {held})")


def replay(
    config: ConfigOpt = Path("configs/demo.yaml"),
    cycles: Annotated[int, typer.Option(min=1, help="Training cycles to replay.")] = 3,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Your own bars (file or folder); default: the config's data.source "
            "(its generator when synthetic)."
        ),
    ] = None,
    cycle_bars: Annotated[
        int, typer.Option(min=1, help="Bars (per symbol) traded between two trainings.")
    ] = 500,
    initial_bars: Annotated[
        int | None,
        typer.Option(min=1, help="Bars before the first cycle (default: the rest, >= 1000)."),
    ] = None,
    workdir: WorkdirOpt = None,
    sets: SetOpt = None,
) -> None:
    """Closed-loop replay: the bot trades the bars cycle by cycle, the training flow retrains
    on its bars and logs after each cycle and the bot hot-reloads; reward per cycle vs a frozen
    first-cycle policy, the best single arm and (synthetic data) the oracle. JSON out; plot
    and HTML page under <workdir>/replay."""
    _limit_threads()
    settings = settings_from_cli(config, workdir, None, None, sets)
    from flows.replay_input import replay_input

    # the folder, the bars and the plan, refused in seconds rather than after Prefect starts
    checked = replay_input(settings, cycles, cycle_bars, data, initial_bars)
    from flows.cli.local_api import serve_local_api
    from flows.cli.runtime import prepare_settings

    prepare_settings(settings)
    api = serve_local_api()
    from flows.replay import run_closed_loop

    with api:
        summary = run_closed_loop(settings, cycles, cycle_bars, data, initial_bars, checked)
    typer.echo(summary["verdict"], err=True)
    typer.echo(summary["exits_verdict"], err=True)
    typer.echo(json.dumps(summary, indent=2, default=str))
