"""The per-run HTML report: the gate table, each model's figures and plots, the data checks.

Plain HTML with the PNGs copied beside it, so it opens from disk, from an MLflow artifact
view, or from a CI artifact without a server.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2430;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dde2ea;
padding-bottom:.3rem}.muted{color:#66708a}table{border-collapse:collapse;margin:.6rem 0;
font-size:.92rem}th,td{border:1px solid #dde2ea;padding:.3rem .6rem;text-align:left}
th{background:#f3f5f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#0a7a32;font-weight:600}.fail{color:#b3261e;font-weight:600}
.skip{color:#8a6d00;font-weight:600}
img{max-width:100%;border:1px solid #dde2ea;margin:.5rem 0}details{margin:.5rem 0}
code{background:#f3f5f9;padding:0 .25rem;border-radius:3px}
"""


@dataclass
class ModelSection:
    """One model's part of the report."""

    model: str
    status: str  # "published", "blocked", "failed", "skipped"
    detail: str
    gates: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)


class Raw(str):
    """Already-rendered HTML for a table cell."""


def _fmt(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            cls = (
                ' class="num"'
                if isinstance(cell, int | float) and not isinstance(cell, bool)
                else ""
            )
            cells.append(f"<td{cls}>{_fmt(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _status(status: str) -> str:
    cls = {"published": "pass", "blocked": "fail", "failed": "fail"}.get(status, "skip")
    return f'<span class="{cls}">{html.escape(status)}</span>'


def _verdict(passed: bool) -> str:
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


def _csv_table(path: Path, max_rows: int = 30) -> str:
    import pandas as pd

    frame = pd.read_csv(path)
    rows = frame.head(max_rows).itertuples(index=False)
    return _table([str(c) for c in frame.columns], [list(r) for r in rows])


def write_report(
    out_dir: Path,
    title: str,
    summary: Mapping[str, Any],
    sections: Sequence[ModelSection],
    data_checks: Mapping[str, Any] | None = None,
    data_images: Sequence[Path] = (),
) -> Path:
    """Write ``index.html`` (and copies of its images) under ``out_dir``; returns the page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    img_dir = out_dir / "img"
    img_dir.mkdir(exist_ok=True)

    def embed(path: Path, prefix: str) -> str:
        target = img_dir / f"{prefix}-{path.name}"
        if path.resolve() != target.resolve():
            shutil.copyfile(path, target)
        alt = html.escape(path.stem.replace("_", " "))
        return (
            f'<figure><img src="img/{target.name}" alt="{alt}"><figcaption class="muted">'
            f"{alt}</figcaption></figure>"
        )

    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append(_table(["field", "value"], [[k, v] for k, v in summary.items()]))

    parts.append("<h2>Gates</h2>")
    gate_rows = [
        [s.model, g["name"], g["value"], g["threshold"], Raw(_verdict(g["passed"]))]
        for s in sections
        for g in s.gates
    ]
    parts.append(_table(["model", "gate", "value", "threshold", "result"], gate_rows))
    outcomes = [[s.model, Raw(_status(s.status)), s.detail] for s in sections]
    parts.append(_table(["model", "outcome", "detail"], outcomes))

    for s in sections:
        parts.append(f"<h2>{html.escape(s.model)} — {_status(s.status)}</h2>")
        parts.append(f'<p class="muted">{html.escape(s.detail)}</p>')
        parts.extend(embed(p, s.model) for p in s.images if p.exists())
        for t in s.tables:
            if t.exists():
                parts.append(f"<h3>{html.escape(t.stem.replace('_', ' '))}</h3>{_csv_table(t)}")
        if s.metrics:
            rows = [[k, v] for k, v in sorted(s.metrics.items())]
            parts.append(
                f"<details><summary>all {len(rows)} metrics</summary>"
                f"{_table(['metric', 'value'], rows)}</details>"
            )

    if data_checks is not None or data_images:
        parts.append("<h2>Data</h2>")
        parts.extend(embed(p, "data") for p in data_images if p.exists())
        if data_checks is not None:
            pretty = html.escape(json.dumps(data_checks, indent=2, default=str))
            parts.append(
                f"<details open><summary>data checks</summary><pre>{pretty}</pre></details>"
            )

    page = out_dir / "index.html"
    page.write_text(
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style><body>"
        + "\n".join(parts)
        + "</body></html>",
        encoding="utf-8",
    )
    return page
