"""``edgeflow runs`` and ``runs open``: the runs in a workdir and their reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.options import JsonOpt, OptionalConfigOpt, WorkdirOpt, settings_from_cli

if TYPE_CHECKING:
    from configs.settings import Settings

runs_app = typer.Typer(
    help="List the runs in a workdir; 'runs open ID' prints (or opens) a run's report.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


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
                collect=None,
            )
        else:
            reports = sorted(folder.glob("report/*.html")) or sorted(folder.glob("*.html"))
            started = run_id_time(folder.name)
            collected = _collect_line(folder)
            row.update(
                time=started.isoformat() if started else None,
                status=unreadable
                or ("collected" if collected else "no summary (rejected, skipped or interrupted)"),
                collect=collected,
                published=[],
                blocked=[],
                failed=[],
                skipped=[],
                report=str(reports[0]) if reports else None,
            )
        rows.append(row)
    return rows


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _collect_line(folder: Path) -> str | None:
    """What a collect run did, from the record it leaves in its run folder (a training run
    leaves ``summary.json``); None when the folder holds no readable record. A good scheduled
    collect used to be listed as a run that wrote no summary."""
    from flows.collect import COLLECT_RECORD

    record = _read_json(folder / COLLECT_RECORD)
    if record is None or record.get("kind") != "collect":
        return None
    checks = _read_json(folder / "data_checks.json") or {}
    quarantined = sum((record.get("quarantined") or {}).values())
    checked = f"{checks['rows_in']} rows checked, " if "rows_in" in checks else ""
    return (
        f"collect: {checked}{record.get('rows_added', '?')} new, {quarantined} quarantined; "
        f"{record.get('bars', '?')} bars, {record.get('feature_rows', '?')} feature rows"
    )


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
        if r.get("collect"):
            typer.echo(f"    {r['collect']}")
        else:
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
