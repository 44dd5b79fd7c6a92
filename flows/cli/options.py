"""The options the commands share and the one config build: file, environment, command line.

Light on purpose: typer and the standard library at import; yaml, pydantic and the settings
load when a command builds its settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from configs.settings import Settings

#: The profile ``run`` (and ``config show``) read when no --config is given.
DEFAULT_CONFIG = Path("configs/demo.yaml")

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


def parse_sets(sets: list[str] | None) -> dict[str, Any]:
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


def cli_overrides(
    workdir: Path | None,
    data: Path | None,
    store: str | None,
    sets: list[str] | None,
    exogenous: list[Path] | None = None,
) -> dict[str, tuple[Any, str]]:
    """Command-line overrides as ``dotted key -> (value, option that set it)``."""
    labelled: dict[str, tuple[Any, str]] = {k: (v, "--set") for k, v in parse_sets(sets).items()}
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

    labelled = cli_overrides(workdir, data, store, sets, exogenous)
    return load_config(config, overrides={k: v for k, (v, _) in labelled.items()})
