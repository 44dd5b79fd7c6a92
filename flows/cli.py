"""The ``edgeflow`` command line: run the pipeline, check health, and manage the model store.

Start-up matters: a person types ``edgeflow --help`` and expects an answer at once, so this
module imports only typer and the standard library. Settings, pandas, Prefect, MLflow and the
model code are imported inside the commands that need them, and Prefect's environment
(``PREFECT_HOME`` under the workdir) is set just before the first flow import. Commands that
need no flow (verify, models, rollback, publish, heartbeat, health, config, runs) never
start Prefect.

Errors a user can fix (a usage mistake, a bad config, bad input) are one line on stderr and
exit 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer._click import Command, Context, HelpFormatter
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from configs.settings import Settings
    from pipelines.data.precheck import Precheck

#: The store commands live in flows.registry_cli, which imports the registry and the settings
#: (numpy, pydantic: a quarter of a second); they are loaded when one of them is used, and the
#: top-level help lists them with these one-liners.
LAZY_COMMANDS = {
    "verify": "Check pointer, manifest signature, every file's sha256 and size.",
    "models": "List models and their versions with status (live, ok, INVALID).",
    "rollback": "Publish a new signed pointer to an older, verified version.",
    "publish": "Sign and publish files as the next version of a model.",
    "heartbeat": "Re-sign a fresh pointer to each model's verified live version.",
}


class LazyGroup(TyperGroup):
    """The root group: loads the store commands on first use, not at start-up."""

    _listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        names = list(super().list_commands(ctx))
        return names + [n for n in LAZY_COMMANDS if n not in names]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            if self._listing:
                return TyperCommand(cmd_name, help=LAZY_COMMANDS[cmd_name])
            self._load_store_commands()
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

    def _load_store_commands(self) -> None:
        from flows.registry_cli import register

        sub = typer.Typer(rich_markup_mode=None)
        register(sub)
        group = typer.main.get_command(sub)
        assert isinstance(group, TyperGroup)
        for name, command in group.commands.items():
            self.commands.setdefault(name, command)


#: The registry's models (``pipelines.models.registry.MODEL_NAMES``, in its order) in words;
#: here, not imported, because the registry imports every trainer (torch) and ``--help`` must
#: answer at once. tests/cli checks the names against the registry.
MODEL_TITLES = {
    "regime": "regime classifier",
    "bandit": "strategy bandit",
    "sizer": "CVaR-PPO sizer",
    "metalabel": "meta-labeler",
}
#: The profile ``run`` (and ``config show``) read when no --config is given.
DEFAULT_CONFIG = Path("configs/demo.yaml")

HELP = (
    f"edgeflow retrains a trading system's models ({', '.join(MODEL_TITLES.values())}) on a "
    "schedule and ships them, signed, to the live bot.\n\n"
    "Start with: edgeflow run --config configs/demo.yaml"
)

app = typer.Typer(
    cls=LazyGroup,
    name="edgeflow",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: flags render as flags ("--force"), not "--force <bool>", and no rich import.
    rich_markup_mode=None,
)
config_app = typer.Typer(
    help="Inspect the resolved configuration.", no_args_is_help=True, rich_markup_mode=None
)
runs_app = typer.Typer(
    help="List the runs in a workdir; 'runs open ID' prints (or opens) a run's report.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")
app.add_typer(runs_app, name="runs")

ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="YAML profile (configs/demo.yaml, configs/default.yaml "
        "or your own); EDGEFLOW_* environment variables override it.",
    ),
]
OptionalConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML profile or profile name (default: built-ins)."),
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
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override one config value with a dotted key (repeatable), "
        "e.g. --set sizer.total_timesteps=5000.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ExogenousOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--exogenous",
        help="Exogenous series beside the bars (repeatable): a CSV/Parquet file or a folder "
        "(one series per file, named by its stem): a timestamp column and value columns, "
        "each value known one observation interval after its timestamp. Replaces "
        "data.exogenous; set columns, lag or max_age there (docs/exogenous.md).",
    ),
]


def _parse_sets(sets: list[str] | None) -> dict[str, Any]:
    import yaml

    from configs.settings import ConfigError

    overrides: dict[str, Any] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. seed=3)")
        _check_dotted_key(key.strip(), item)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _check_dotted_key(key: str, item: str) -> None:
    """Refuse a --set key that names no setting, naming the whole dotted key (validation alone
    would name only its first unknown part: ``nosuch``, not ``nosuch.key``)."""
    import typing

    from pydantic import BaseModel

    from configs.settings import ConfigError, Settings

    model: type[BaseModel] = Settings
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:depth]) or "the top level"
            known = ", ".join(sorted(fields))
            raise ConfigError(
                f"--set {item!r}: no setting {key!r} ({part!r} is not a key of {where}; "
                f"known there: {known}; see `edgeflow config show`)"
            )
        annotation = fields[part].annotation
        subs = [a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type)]
        nested = [a for a in subs if issubclass(a, BaseModel)]
        if not nested:
            return  # a leaf or a mapping: its own validation judges the rest
        model = nested[0]


def _cli_overrides(
    workdir: Path | None,
    data: Path | None,
    store: str | None,
    sets: list[str] | None,
    exogenous: list[Path] | None = None,
) -> dict[str, tuple[Any, str]]:
    """Command-line overrides as ``dotted key -> (value, option that set it)``."""
    labelled: dict[str, tuple[Any, str]] = {k: (v, "--set") for k, v in _parse_sets(sets).items()}
    if exogenous:
        for path in exogenous:
            if not path.exists():
                raise typer.BadParameter(f"{path}: path does not exist", param_hint="--exogenous")
        series = [{"path": str(path)} for path in exogenous]
        labelled["data.exogenous"] = (series, "--exogenous")
    if workdir is not None:
        labelled["workdir"] = (str(workdir), "--workdir")
    if data is not None:
        if not data.exists():  # answer now, not after Prefect's temporary server has started
            raise typer.BadParameter(f"{data}: path does not exist", param_hint="--data")
        labelled["data.source"] = ("files", "--data")
        labelled["data.path"] = (str(data), "--data")
    if store is not None:
        labelled["registry.store"] = (store, "--store")
    return labelled


def settings_from_cli(
    config: Path | str | None,
    workdir: Path | None = None,
    data: Path | None = None,
    store: str | None = None,
    sets: list[str] | None = None,
    exogenous: list[Path] | None = None,
) -> Settings:
    """The entry point's one config build: file -> environment -> command-line overrides."""
    from configs.settings import load_config

    labelled = _cli_overrides(workdir, data, store, sets, exogenous)
    return load_config(config, overrides={k: v for k, (v, _) in labelled.items()})


def _refuse_mixed_sources(settings: Settings) -> None:
    """Stop before any flow starts when the workdir holds bars of another source.

    The collect stage checks (and records) this too; checking here first answers in a second
    rather than after Prefect has started.
    """
    from pipelines.data.provenance import claim_store, source_fingerprint
    from pipelines.workdir import WorkdirLayout

    fp = source_fingerprint(settings.data, settings.seed, settings.profile, hash_files=False)
    bars = WorkdirLayout(settings.workdir).bars
    claim_store(bars, fp, workdir=settings.workdir, record=False)


def _check_input(settings: Settings) -> Precheck | None:
    """Refuse bad input before Prefect starts and the heavy imports load.

    The checks that need no model (provenance, read, schema and values, history per symbol)
    take a second or two; the flow repeats them (a scheduled run has no command line). A bad
    input raises DataError (one line, exit 2). Returns None for a source only the flow reads
    (S3), after refusing a store that holds another source's bars.
    """
    from datetime import UTC, datetime

    from pipelines.data.precheck import precheck_input
    from pipelines.workdir import WorkdirLayout, new_run_id

    layout = WorkdirLayout(settings.workdir)
    run_dir = layout.run_dir(new_run_id())
    found = precheck_input(
        settings.data,
        settings.seed,
        settings.profile,
        layout.bars,
        layout.root,
        now=datetime.now(UTC),
        quarantine_dir=run_dir / "quarantine",
    )
    if found is None:  # a source only the flow reads (S3): still refuse a mixed store now
        _refuse_mixed_sources(settings)
    return found


def _precheck(settings: Settings) -> dict[str, Any] | None:
    """:func:`_check_input`, then stop a run that every model would skip.

    A run with too little history for every model returns its summary (status ``skipped``,
    exit 0: the input is fine, there is just not enough of it yet). Returns None when the
    flow should run.
    """
    from pipelines.data.precheck import MIN_FEATURE_ROWS

    found = _check_input(settings)
    if found is None or found.skip_reason is None:
        return None
    return {
        "status": "skipped",
        "reason": found.skip_reason,
        "feature_rows": found.feature_rows,
        "models": {name: {"status": "skipped"} for name in MIN_FEATURE_ROWS},
    }


#: Where the data readers and checks log what they decided (separator, decimal comma, epoch
#: unit, which close): docs/data-import.md promises these lines. Prefect's logging leaves the
#: root logger at WARNING, so a library logger without a level of its own drops INFO.
IMPORT_LOGGER = "pipelines.data"


def _show_import_notes() -> None:
    """Let the data import's INFO lines through (they reach the console via the root logger's
    handlers, which Prefect sets up)."""
    logging.getLogger(IMPORT_LOGGER).setLevel(logging.INFO)


def _limit_threads() -> None:
    """One thread per numeric library pool, set before anything imports numpy or torch
    (``flows.runtime.limit_threads``: the flow runs one training per core already). Called
    first by every command that reads bars, so it also lets the import notes through."""
    from flows.runtime import limit_threads

    _show_import_notes()
    limit_threads()


def _start_local_api() -> AbstractContextManager[None]:
    """Start Prefect's local API now, as a subprocess; the returned context waits for it and
    runs the flows inside against it (``flows.local_api.serving``), then says where the run
    can be looked at once it has ended (:func:`api_note`).

    The subprocess comes up on the other core while this process imports the training code
    (torch, SB3, LightGBM, MLflow); on a fresh workdir its database is the migrated template.
    Nothing starts when a server is configured (``PREFECT_API_URL``) or ephemeral mode is off.
    """
    import contextlib
    import os

    from flows.local_api import serving, start_local_api

    home = Path(os.environ["PREFECT_HOME"])
    api = start_local_api(home)

    @contextlib.contextmanager
    def serve_then_note() -> Iterator[None]:
        with serving(api):
            yield
        typer.echo(api_note(None if api is None else api.url, home, os.environ), err=True)

    return serve_then_note()


def api_note(local_url: str | None, home: Path, environ: Mapping[str, str]) -> str:
    """One line after a flow: Prefect's "View at" link names this run's temporary API (no UI)
    that stops with the process, so say so and how to browse the run; or, with a configured
    server, where the run is."""
    if local_url is None:
        server = environ.get("PREFECT_UI_URL") or environ.get("PREFECT_API_URL", "")
        where = server.removesuffix("/").removesuffix("/api") or "the configured Prefect server"
        return f"note: this run is in the Prefect server at {where}"
    base = local_url.removesuffix("/api")
    return (
        f"note: the 'View at {base}/...' link above was this run's temporary Prefect API, "
        f"stopped now that the run has ended; the run is kept in {home / 'prefect.db'}: "
        f"run `PREFECT_HOME={home} prefect server start` and open http://127.0.0.1:4200"
    )


def _check_store_uri(settings: Settings) -> None:
    """Refuse a store URI edgeflow cannot open before the flow starts, not after training."""
    if settings.registry.store is None:
        return
    from pipelines.registry import RegistryError, open_store

    try:
        open_store(settings.registry.store, endpoint_url=settings.registry.s3_endpoint_url)
    except RegistryError as exc:
        raise typer.BadParameter(str(exc), param_hint="--store / registry.store") from None


def _prepare(settings: Settings, *, flows: bool = True, tracks: bool = True) -> None:
    """Point Prefect & co. at the workdir; call before importing anything that imports Prefect.

    ``flows=False`` for a command that runs no flow (no Prefect database is seeded);
    ``tracks=False`` for one that logs nothing to MLflow (no MLflow store is seeded)."""
    from flows.runtime import prepare_environment, seed_mlflow_database

    prepare_environment(settings.workdir, flows=flows)
    if flows and tracks and settings.mlflow.tracking_uri is None:  # the workdir's own store
        from pipelines.workdir import WorkdirLayout

        layout = WorkdirLayout(settings.workdir)
        seed_mlflow_database(layout.mlflow_db, layout.mlartifacts)


# --------------------------------------------------------------------------- root options


def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"edgeflow {version('edgeflow')}")
        except PackageNotFoundError:
            typer.echo("edgeflow (not installed as a package)")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_version_callback,
            help="Print the edgeflow version and exit.",
        ),
    ] = False,
) -> None:
    """edgeflow retrains and ships trading models; see the commands below."""


# --------------------------------------------------------------------------- pipeline


@app.command()
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
    _check_store_uri(settings)
    skipped = _precheck(settings)  # provenance, the input itself, history per symbol
    if skipped is not None:
        typer.echo(json.dumps(skipped, indent=2, default=str))
        return
    _prepare(settings)
    api = _start_local_api()
    from flows.training import run_training

    with api:
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
    sets: SetOpt = None,
    exogenous: ExogenousOpt = None,
) -> None:
    """Collect new bars incrementally, check them and update the features (no training)."""
    _limit_threads()
    settings = settings_from_cli(config, workdir, data, None, sets, exogenous)
    _check_input(settings)  # bad input refused in seconds, as by `run`
    _prepare(settings, tracks=False)  # collect logs nothing to MLflow
    api = _start_local_api()
    from flows.collect import run_collect

    with api:
        summary = run_collect(settings)
    typer.echo(json.dumps(summary, indent=2, default=str))


@app.command("reset-data")
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


@app.command()
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
    _prepare(settings)
    api = _start_local_api()
    from flows.replay import run_closed_loop

    with api:
        summary = run_closed_loop(settings, cycles, cycle_bars, data, initial_bars, checked)
    typer.echo(summary["verdict"], err=True)
    typer.echo(summary["exits_verdict"], err=True)
    typer.echo(json.dumps(summary, indent=2, default=str))


# --------------------------------------------------------------------------- health


@app.command("health")
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
    try:
        _prepare(settings, flows=False)  # flows.health imports Prefect; no server starts
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


# --------------------------------------------------------------------------- config


@config_app.command("show")
def config_show(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="YAML profile or profile name (default: what `run` reads)."
        ),
    ] = DEFAULT_CONFIG,
    workdir: WorkdirOpt = None,
    sets: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The resolved settings, each with where it came from (default, file, env, --set)."""
    from configs.explain import explain_config

    _, rows = explain_config(config, _cli_overrides(workdir, None, None, sets))
    if as_json:
        doc = [{"key": k, "value": v, "source": s} for k, v, s in rows]
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    width = max(len(k) for k, _, _ in rows)
    from configs.settings import resolve_profile

    profile = next(v for k, v, _ in rows if k == "profile")
    typer.echo(
        f"# what `edgeflow run -c {config}` uses: {resolve_profile(config)}, profile {profile!r}"
    )
    for key, value, source in rows:
        shown = json.dumps(value, default=str)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        typer.echo(f"{key:<{width}}  {shown:<60}  {source}")


# --------------------------------------------------------------------------- runs


def _run_rows(settings: Settings) -> list[dict[str, Any]]:
    from pipelines.workdir import WorkdirLayout, run_id_time

    runs = WorkdirLayout(settings.workdir).runs
    rows: list[dict[str, Any]] = []
    if not runs.is_dir():
        return rows
    # only folders named by a run id: a folder of notes would sort first and pose as "latest"
    folders = (p for p in runs.iterdir() if p.is_dir() and run_id_time(p.name) is not None)
    for folder in sorted(folders, reverse=True):
        row: dict[str, Any] = {"id": folder.name, "path": str(folder)}
        summary = folder / "summary.json"
        doc, unreadable = None, ""
        if summary.is_file():
            try:
                doc = json.loads(summary.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                unreadable = f"summary.json unreadable ({type(exc).__name__}: {exc})"
        if isinstance(doc, dict):
            models = doc.get("models", {})
            row.update(
                time=doc.get("started_at"),
                status=doc.get("status", "?"),
                published=sorted(k for k, v in models.items() if v.get("status") == "published"),
                blocked=sorted(k for k, v in models.items() if v.get("status") == "blocked"),
                failed=sorted(k for k, v in models.items() if v.get("status") == "failed"),
                skipped=sorted(k for k, v in models.items() if v.get("status") == "skipped"),
                report=doc.get("report"),
            )
        else:
            reports = sorted(folder.glob("report/*.html")) or sorted(folder.glob("*.html"))
            started = run_id_time(folder.name)
            row.update(
                time=started.isoformat() if started else None,
                status=unreadable or "no summary (rejected, skipped or interrupted)",
                published=[],
                blocked=[],
                failed=[],
                skipped=[],
                report=str(reports[0]) if reports else None,
            )
        rows.append(row)
    return rows


@runs_app.callback()
def runs_list(
    ctx: typer.Context,
    config: OptionalConfigOpt = None,
    workdir: WorkdirOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (newest first).")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List runs (newest first): id, time, status, published/blocked models, report path."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_from_cli(config, workdir)
    rows = _run_rows(settings)[:limit]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        typer.echo(f"no runs under {Path(settings.workdir) / 'runs'}")
        return
    for r in rows:
        models = " ".join(
            [f"published={','.join(r['published'])}"] * bool(r["published"])
            + [f"blocked={','.join(r['blocked'])}"] * bool(r["blocked"])
            + [f"failed={','.join(r['failed'])}"] * bool(r["failed"])
            + [f"skipped={','.join(r['skipped'])}"] * bool(r["skipped"])
        )
        typer.echo(f"{r['id']}  {r['time'] or '-':<32}  {r['status']:<6}  {models or '-'}")
        typer.echo(f"    report: {r['report'] or '-'}")


@runs_app.command("open")
def runs_open(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id, a prefix, or 'latest'.")],
    config: OptionalConfigOpt = None,
    workdir: WorkdirOpt = None,
    browser: Annotated[
        bool, typer.Option("--browser", help="Also open the report in a web browser.")
    ] = False,
) -> None:
    """Print the report path of a run (and open it with --browser)."""
    settings = settings_from_cli(config, workdir)
    rows = _run_rows(settings)
    if run_id == "latest":
        matches = rows[:1]
    else:
        matches = [r for r in rows if r["id"] == run_id] or [
            r for r in rows if r["id"].startswith(run_id)
        ]
    if not matches:
        known = ", ".join(r["id"] for r in rows[:5]) or "none"
        raise typer.BadParameter(f"no run {run_id!r} (newest: {known})", param_hint="ID")
    if len(matches) > 1:
        raise typer.BadParameter(
            f"{run_id!r} matches {len(matches)} runs: {', '.join(r['id'] for r in matches[:5])}",
            param_hint="ID",
        )
    report = matches[0]["report"]
    if not report:
        raise typer.BadParameter(f"run {matches[0]['id']} has no report", param_hint="ID")
    typer.echo(report)
    if browser:
        import webbrowser

        if not webbrowser.open(Path(report).resolve().as_uri()):
            typer.echo(
                "error: no web browser could be opened (no display, no browser found); "
                "nothing opened: open the path above yourself",
                err=True,
            )
            raise typer.Exit(1)


# --------------------------------------------------------------------------- entry point


def _register_optional_commands() -> None:
    """Register the store commands on ``app`` now (tests); the CLI loads them on first use."""
    if any(c.name == "verify" for c in app.registered_commands):
        return
    from flows.registry_cli import register as register_registry

    register_registry(app)


def _command_path(args: list[str]) -> str:
    """``edgeflow <command> [<subcommand>]`` named by the leading words of ``args``.

    Some usage errors (an option missing its value) come without a context; naming the
    command from the arguments still points at the right ``--help``.
    """
    group = typer.main.get_command(app)
    ctx = Context(group, info_name="edgeflow")
    words, command = ["edgeflow"], group
    for arg in args:
        if arg.startswith("-") or not isinstance(command, TyperGroup):
            break
        sub = command.get_command(ctx, arg)
        if sub is None:
            break
        words.append(arg)
        command = sub
    return " ".join(words)


def _usage_line(exc: Exception, args: list[str] | None = None) -> str:
    """A usage error as one line: what was wrong and where to look."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else _command_path(args or [])
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.split())
    extra = message.removeprefix("Got unexpected extra argument(s) (").removesuffix(")")
    if extra != message and extra.lower() in {"true", "false", "yes", "no", "1", "0", "on", "off"}:
        message += "; flags take no value: write the flag alone to turn it on, omit it for off"
    return f"error: {path}: {message} (see '{path} --help')"


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: user errors print one clear line, never a traceback.

    Ctrl-C also sets ``pipelines.interrupt.STOP``, so the trainings on their threads stop at
    their next step. Whatever the interrupt surfaces as (a library may wrap it in an error of
    its own) ends as one line and exit 130.
    """
    from pipelines.interrupt import STOP, join_trainings, stop_on_sigint

    args = sys.argv[1:] if argv is None else argv
    try:
        with stop_on_sigint():
            code = _dispatch(args)
    except BaseException:
        if not STOP.is_set():
            raise
        code = 130
    if code == 130 and STOP.is_set():
        try:  # after a second Ctrl-C the trainings may still be reaching their checkpoint
            join_trainings(timeout=20)
        except KeyboardInterrupt:  # a third: leave now
            pass
        # Threads still winding down (a task that was waiting for its upstream) may log against
        # an interpreter that is shutting down; their handlers' failures are not news.
        logging.raiseExceptions = False
        runs = bool(args) and args[0] in {"run", "replay"}
        typer.echo(f"interrupted: stopped at Ctrl-C{'; the run wrote no summary' * runs}", err=True)
    return code


def _dispatch(args: list[str]) -> int:
    """Run the command; a usage error, a bad config or bad input is one line and exit 2."""
    from typer._click import exceptions as click_exc

    try:
        code = app(args=args, prog_name="edgeflow", standalone_mode=False)
        if isinstance(code, int):  # click returns Exit codes instead of raising them here
            return code
    except click_exc.NoArgsIsHelpError as exc:
        typer.echo(exc.format_message())
        typer.echo(f"error: {exc.ctx.command_path}: missing command", err=True)
        return 2
    except click_exc.UsageError as exc:
        typer.echo(_usage_line(exc, args), err=True)
        return 2
    except typer.Abort:
        from pipelines.interrupt import STOP

        if not STOP.is_set():  # a prompt answered "no"; main() words an interrupt itself
            typer.echo("aborted", err=True)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        from configs.settings import ConfigError
        from pipelines.data.errors import DataError

        rejected: tuple[type[Exception], ...] = (ConfigError, DataError)
        if "tasks.data" in sys.modules:
            rejected += (sys.modules["tasks.data"].RejectedInputError,)
        if isinstance(exc, rejected):
            typer.echo(f"error: {exc}", err=True)
            return 2
        if isinstance(exc, click_exc.ClickException):
            typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
