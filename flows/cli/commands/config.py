"""``edgeflow config show``: the resolved settings, each with where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.options import DEFAULT_CONFIG, JsonOpt, SetOpt, WorkdirOpt, cli_overrides

config_app = typer.Typer(
    help="Inspect the resolved configuration.", no_args_is_help=True, rich_markup_mode=None
)


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

    _, rows = explain_config(config, cli_overrides(workdir, None, None, sets))
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
