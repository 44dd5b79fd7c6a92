"""The ``edgeflow`` Typer app and its dispatch: which command runs, and with what exit code.

Errors a user can fix (a usage mistake, a bad config, bad input) are one line on stderr and
exit 2, never a traceback; Ctrl-C is one line and exit 130. The commands live in
:mod:`flows.cli.commands`, by area; the store commands are loaded on first use.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from typer._click import Command, Context, HelpFormatter
from typer.core import TyperCommand, TyperGroup

from flows.cli.commands import config, health, pipeline, runs

#: The store commands live in flows.cli.commands.registry, which imports the registry and the
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
        from flows.cli.commands.registry import register

        sub = typer.Typer(rich_markup_mode=None)
        register(sub)
        group = typer.main.get_command(sub)
        assert isinstance(group, TyperGroup)
        for name, command in group.commands.items():
            self.commands.setdefault(name, command)


#: The spec list's models (``pipelines.models.specs.SPECS``, in its order) by their titles;
#: copied here, not imported, because the spec list imports pandas and the gate rules and
#: ``--help`` must answer at once. tests/cli checks this copy against the specs.
MODEL_TITLES = {
    "regime": "regime classifier",
    "bandit": "strategy bandit",
    "sizer": "CVaR-PPO sizer",
    "metalabel": "meta-labeler",
}

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
pipeline.register(app)
health.register(app)
app.add_typer(config.config_app, name="config")
app.add_typer(runs.runs_app, name="runs")


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


# --------------------------------------------------------------------------- entry point


def _register_optional_commands() -> None:
    """Register the store commands on ``app`` now (tests); the CLI loads them on first use."""
    if any(c.name == "verify" for c in app.registered_commands):
        return
    from flows.cli.commands.registry import register as register_registry

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
        from pipelines.data.errors import DataError, RejectedInputError

        if isinstance(exc, (ConfigError, DataError, RejectedInputError)):
            typer.echo(f"error: {exc}", err=True)
            return 2
        if isinstance(exc, click_exc.ClickException):
            typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
