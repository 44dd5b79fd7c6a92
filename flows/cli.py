"""The ``edgeflow`` command line: run the pipeline, check health, and manage the model store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.text import Text

from configs import ConfigError, load_config
from configs.settings import Settings
from flows.runtime import prepare_environment

app = typer.Typer(
    name="edgeflow",
    help=(
        "edgeflow retrains a trading system's models (regime classifier, strategy bandit, "
        "CVaR-PPO sizer) on a schedule and ships them, signed, to the live bot.\n\n"
        "Start with: edgeflow run --config configs/demo.yaml"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="YAML profile (configs/demo.yaml, configs/default.yaml "
        "or your own); EDGEFLOW_* environment variables override it.",
    ),
]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option(
        "--workdir",
        "-w",
        help="Folder for everything a run writes: bars, MLflow "
        "store, model store, reports, Prefect state. Default: the config's workdir "
        "(./.edgeflow).",
    ),
]


def settings_from_cli(
    config: Path | str | None,
    workdir: Path | None = None,
    data: Path | None = None,
    store: str | None = None,
    sets: list[str] | None = None,
) -> Settings:
    """The entry point's one config build: file -> environment -> command-line overrides."""
    overrides: dict[str, Any] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. seed=3)")
        overrides[key.strip()] = yaml.safe_load(value)
    if workdir is not None:
        overrides["workdir"] = str(workdir)
    if data is not None:
        overrides["data.source"] = "files"
        overrides["data.path"] = str(data)
    if store is not None:
        overrides["registry.store"] = store
    return load_config(config, overrides=overrides)


@app.command()
def run(
    config: ConfigOpt = Path("configs/demo.yaml"),
    workdir: WorkdirOpt = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Your own bars: a CSV/Parquet file or a folder of them. Columns are "
            "matched case-insensitively: ts|timestamp|datetime|date|time, open, high, "
            "low, close, volume and optional symbol (else the file name is the symbol)."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(help="Model store: file://PATH or s3://BUCKET/PREFIX (overrides config)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Train even when too little new data has arrived.")
    ] = False,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override one config value, KEY=VALUE with a dotted key "
            "(repeatable), e.g. --set sizer.total_timesteps=5000.",
        ),
    ] = None,
) -> None:
    """Run the training flow: collect, check, featurize, train, gate, export, publish, report."""
    settings = settings_from_cli(config, workdir, data, store, sets)
    prepare_environment(settings.workdir)
    from flows.training import run_training

    summary = run_training(settings, force=force)
    if summary.get("status") == "rejected":
        from tasks.data import RejectedInputError

        raise RejectedInputError(summary["reason"])
    typer.echo(json.dumps(summary, indent=2, default=str))
    if summary.get("status") == "failed":
        raise typer.Exit(1)


@app.command()
def collect(
    config: ConfigOpt = Path("configs/demo.yaml"),
    workdir: WorkdirOpt = None,
    data: Annotated[Path | None, typer.Option(help="Your own bars (file or folder).")] = None,
) -> None:
    """Collect new bars incrementally, check them and update the features (no training)."""
    settings = settings_from_cli(config, workdir, data)
    prepare_environment(settings.workdir)
    from flows.collect import run_collect

    typer.echo(json.dumps(run_collect(settings), indent=2, default=str))


def _register_optional_commands() -> None:
    """Add the store and health commands (they import Prefect: after prepare_environment)."""
    if any(c.name == "health" for c in app.registered_commands):
        return
    from flows.health import register as register_health
    from flows.registry_cli import register as register_registry

    register_registry(app)
    register_health(app)


def _early_workdir(argv: list[str]) -> Path:
    """The run's workdir, found before Prefect is imported (its settings are read at import)."""
    for flag in ("--workdir", "-w"):
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv):
                return Path(argv[i + 1])
            if arg.startswith(f"{flag}="):
                return Path(arg.split("=", 1)[1])
    config: str | None = None
    for flag in ("--config", "-c"):
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv):
                config = argv[i + 1]
    try:
        return load_config(config).workdir
    except ConfigError:
        return Path(".edgeflow")  # the command itself will report the config error


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: user errors print one clear line, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    prepare_environment(_early_workdir(args))
    _register_optional_commands()
    from pipelines.data.errors import DataError
    from tasks.data import RejectedInputError

    try:
        code = app(args=args, standalone_mode=False)
        if isinstance(code, int):  # click returns Exit codes instead of raising them here
            return code
    except (ConfigError, DataError, RejectedInputError) as exc:
        console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
