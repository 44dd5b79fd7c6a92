"""The per-run HTML report: why a model is blocked, the gates, each model's plots and tables.

Plain HTML with the PNGs copied beside it, so it opens from disk, from an MLflow artifact
view, or from a CI artifact without a server. What a person reads is shown in one unit per
quantity (``pipelines.plots.QUANTITY_UNITS``, named in every header), gates read as
``value >= threshold unit [CI low, high]``, and every table scrolls inside its own box so a
wide one never widens the page.
"""

from __future__ import annotations

import ast
import html
import json
import math
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.plots import Unit, unit_for

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2430;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dde2ea;
padding-bottom:.3rem}.muted{color:#66708a}
.table-wrap{max-width:100%;overflow-x:auto;margin:.6rem 0}
table{border-collapse:collapse;font-size:.92rem}
th,td{border:1px solid #dde2ea;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f5f9;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}td.long{overflow-wrap:anywhere;min-width:16ch}
.pass{color:#0a7a32;font-weight:600}.fail{color:#b3261e;font-weight:600}
.skip{color:#8a6d00;font-weight:600}
.why{border-left:4px solid #b3261e;background:#fdf3f2;padding:.5rem 1rem;margin:1rem 0}
.why li{margin:.2rem 0}
figure{margin:.5rem 0}img{max-width:100%;height:auto;border:1px solid #dde2ea}
details{margin:.5rem 0}pre{max-width:100%;overflow-x:auto;background:#f7f8fb;padding:.5rem}
code{background:#f3f5f9;padding:0 .25rem;border-radius:3px}
"""

MAX_TABLE_ROWS = 30


@dataclass
class ModelSection:
    """One model's part of the report.

    ``detail`` is a sentence, or a mapping of named facts (rendered as a small table).
    ``gates`` are gate dicts: ``name``, ``value``, ``threshold``, ``passed`` and, when the
    trainer gives them, ``direction`` (``">="``/``"<="``), ``unit``, ``ci_low``, ``ci_high``
    and ``description``.
    """

    model: str
    status: str  # "published", "blocked", "failed", "skipped"
    detail: str | Mapping[str, Any]
    gates: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)


class Raw(str):
    """Already-rendered HTML for a table cell."""


class Num(str):
    """A formatted number: right-aligned in its cell."""


def format_number(value: float, unit: Unit | None = None) -> str:
    """``value`` (already in display units) with the unit's digits, or 4 significant ones
    (whole numbers in full).

    Tiny or huge magnitudes fall back to scientific notation so no figure shows as 0.00.
    """
    if not math.isfinite(value):
        return str(value)
    if unit is None:
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # counts, sizes, folds: all digits, no exponent
        return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    magnitude = abs(value)
    if magnitude and (magnitude < 10.0 ** (-unit.digits) or magnitude >= 1e7):
        return f"{value:.2e}"
    return f"{value:.{unit.digits}f}"


def _fmt(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    return html.escape(str(value))


def _is_num(cell: Any) -> bool:
    return isinstance(cell, Num) or (isinstance(cell, int | float) and not isinstance(cell, bool))


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    caption: str = "",
    long_last: bool = False,
) -> str:
    """A table inside its own horizontally scrolling box.

    ``long_last``: the last column holds long unbroken values (paths, hashes) that may wrap
    anywhere, so the table fits the page instead of scrolling for them.
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if _is_num(cell) else ""
            if long_last and i == len(row) - 1:
                cls = ' class="long"'
            cells.append(f"<td{cls}>{_fmt(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f'<caption class="muted">{html.escape(caption)}</caption>' if caption else ""
    return f'<div class="table-wrap"><table>{cap}<tr>{head}</tr>{"".join(body)}</table></div>'


def _status(status: str) -> str:
    cls = {"published": "pass", "blocked": "fail", "failed": "fail"}.get(status, "skip")
    return f'<span class="{cls}">{html.escape(status)}</span>'


def _verdict(passed: bool) -> str:
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


# ---------------------------------------------------------------------------------- tables


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns with a known unit scaled to it, the unit named in the header.

    Columns without a known unit keep their stored values and header.
    """
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        series = frame[col]
        unit = unit_for(str(col))
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if numeric and unit is not None:
            header = f"{col} ({unit.label})"
            out[header] = [Num(format_number(float(v) * unit.scale, unit)) for v in series]
        elif numeric:
            out[str(col)] = [Num(format_number(float(v))) for v in series]
        else:
            out[str(col)] = series.astype(str)
    return out


def _ope_view(frame: pd.DataFrame) -> pd.DataFrame:
    # imported here: the bandit package loads torch, which a report alone does not need
    from pipelines.models.bandit.plots import ope_display_table

    return ope_display_table(frame)


# How a person reads a trainer's CSV, by file stem; anything else goes through display_frame.
TABLE_VIEWS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "ope_table": _ope_view,
}


def _csv_table(path: Path, max_rows: int = MAX_TABLE_ROWS) -> str:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        return f'<p class="fail">{html.escape(path.name)}: unreadable ({html.escape(str(exc))})</p>'
    view = TABLE_VIEWS.get(path.stem, display_frame)(frame)
    shown = view.head(max_rows)
    caption = f"first {max_rows} of {len(view)} rows" if len(view) > max_rows else ""
    rows = [[_cell(v) for v in r] for r in shown.itertuples(index=False)]
    return _table([str(c) for c in view.columns], rows, caption)


def _cell(value: Any) -> Any:
    """Keep ``Num`` marks; strings that are plain numbers right-align too."""
    if isinstance(value, str) and not isinstance(value, Num):
        return Num(value) if re.fullmatch(r"[-+−]?\d[\d.,e+-]*( \[.*\])?", value) else value
    return value


# ---------------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class GateView:
    """One gate as the report shows it."""

    model: str
    name: str
    meaning: str
    check: str  # "value >= threshold unit [CI low, high]"
    value: str
    direction: str
    threshold: str
    unit: str
    passed: bool


_LIFT = re.compile(r"^(?:(?P<policy>.+?)_)??(?:(?P<est>dr|ips|snips)_)?lift_vs_(?P<ref>.+)$")
_PARITY_NAMES = ("onnx_max_abs_diff", "onnx_parity")


def _canonical_gate(model: str, name: str) -> str:
    """The quantity a gate checks, so two gates on it (``bandit_onnx_parity`` and
    ``onnx_max_abs_diff``) count once."""
    bare = name[len(model) + 1 :] if name.startswith(f"{model}_") else name
    return "onnx_parity" if bare in _PARITY_NAMES else bare


def dedupe_gates(model: str, gates: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One gate per checked quantity and model, in first-seen order; a failing copy wins."""
    kept: dict[str, Mapping[str, Any]] = {}
    for gate in gates:
        key = _canonical_gate(model, str(gate["name"]))
        if key not in kept or (kept[key]["passed"] and not gate["passed"]):
            kept[key] = gate
    return list(kept.values())


def gate_meaning(model: str, name: str) -> str:
    """Words for a gate without a ``description``: lifts as ``policy − reference``."""
    bare = name[len(model) + 1 :] if name.startswith(f"{model}_") else name
    if _canonical_gate(model, name) == "onnx_parity":
        return "ONNX graph vs the trained model, largest absolute output difference"
    lift = _LIFT.match(name)
    if lift:
        policy = lift.group("policy") or model
        est = f"{lift.group('est').upper()} " if lift.group("est") else ""
        return f"{est}reward lift {policy} − {lift.group('ref')}"
    if bare.startswith("margin_over_"):
        return f"balanced accuracy − that of {bare[len('margin_over_') :]}"
    return bare.replace("_vs_", " vs ").replace("_", " ")


def _direction(gate: Mapping[str, Any]) -> str:
    given = gate.get("direction")
    if given in (">=", "<=", ">", "<"):
        return str(given)
    value, threshold, passed = float(gate["value"]), float(gate["threshold"]), gate["passed"]
    if math.isnan(value) or math.isnan(threshold) or value == threshold:
        return ">=" if passed else "<="
    # the side of the threshold the value is on, turned round when the gate failed
    above = value > threshold
    return ">=" if above == bool(passed) else "<="


def gate_view(model: str, gate: Mapping[str, Any]) -> GateView:
    """A gate dict in words: ``value >= threshold unit [CI low, high]``.

    A gate that names its ``unit`` is shown in it as stored; otherwise the unit (and scale)
    comes from its name (``unit_for``), e.g. a reward lift stored as a fraction reads in bps.
    """
    name = str(gate["name"])
    given_unit = gate.get("unit")
    unit: Unit | None
    if given_unit:
        unit, label = None, str(given_unit)
        scale = 1.0
    else:
        unit = unit_for(name)
        label, scale = (unit.label, unit.scale) if unit else ("", 1.0)

    def num(x: Any) -> str:
        return format_number(float(x) * scale, unit)

    value, threshold, direction = num(gate["value"]), num(gate["threshold"]), _direction(gate)
    check = f"{value}  {direction}  {threshold}" + (f"  {label}" if label else "")
    if gate.get("ci_low") is not None and gate.get("ci_high") is not None:
        check += f"  [{num(gate['ci_low'])}, {num(gate['ci_high'])}]"
    meaning = str(gate.get("description") or gate_meaning(model, name))
    return GateView(
        model, name, meaning, check, value, direction, threshold, label, bool(gate["passed"])
    )


def blocked_reason(section: ModelSection) -> str | None:
    """One line on why a model did not ship: its first failing gate in words, or the error."""
    if section.status == "blocked":
        for gate in dedupe_gates(section.model, section.gates):
            if not gate["passed"]:
                v = gate_view(section.model, gate)
                unit = f" {v.unit}" if v.unit else ""
                return (
                    f"{v.meaning} ({v.name}) is {v.value}{unit}; "
                    f"it must be {v.direction} {v.threshold}{unit}."
                )
        return _detail_text(section.detail)
    if section.status == "failed":
        return _detail_text(section.detail)
    return None


# ---------------------------------------------------------------------------------- details


def _literal_mapping(text: str) -> tuple[str, str, Mapping[str, Any]] | None:
    """A sentence ending in a Python/JSON mapping literal, as (sentence, label, mapping).

    ``"version 3 (sources: {'regime': 'published'})"`` gives ``("version 3", "sources",
    {...})``; a detail that carries no mapping gives None.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        value = ast.literal_eval(text[start : end + 1])
    except (ValueError, SyntaxError):
        return None
    if not isinstance(value, Mapping):
        return None
    head = text[:start].rstrip(" :")
    label = "field"
    match = re.search(r"\(\s*([\w ]+)$", head)
    if match:
        label, head = match.group(1).strip(), head[: match.start()].rstrip()
    return head, label, value


def _detail_text(detail: str | Mapping[str, Any]) -> str:
    if isinstance(detail, Mapping):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in detail.items())
    parsed = _literal_mapping(detail)
    if parsed is None:
        return detail
    head, label, facts = parsed
    listed = "; ".join(f"{k}: {_plain(v)}" for k, v in facts.items())
    return f"{head}; {label} — {listed}" if head else f"{label} — {listed}"


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def _detail_html(detail: str | Mapping[str, Any]) -> str:
    """A detail as a sentence, with any mapping it carries as a two-column table."""
    if isinstance(detail, Mapping):
        head, label, facts = "", "field", detail
    else:
        parsed = _literal_mapping(detail)
        if parsed is None:
            return f'<p class="muted">{html.escape(detail)}</p>'
        head, label, facts = parsed
    lead = f'<p class="muted">{html.escape(head)}</p>' if head else ""
    rows = [[k, _plain(v)] for k, v in facts.items()]
    return lead + _table([label, "value"], rows, long_last=True)


# ---------------------------------------------------------------------------------- page


def _metrics_table(metrics: Mapping[str, float]) -> str:
    rows = []
    for key, value in sorted(metrics.items()):
        unit = unit_for(key)
        shown = float(value) * unit.scale if unit else float(value)
        rows.append([key, Num(format_number(shown, unit)), unit.label if unit else ""])
    return (
        f"<details><summary>all {len(rows)} metrics</summary>"
        f"{_table(['metric', 'value', 'unit'], rows)}</details>"
    )


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
    reasons = [(s.model, s.status, blocked_reason(s)) for s in sections]
    why = [
        f"<li><b>{html.escape(m)}</b> {_status(st)}: {html.escape(r)}</li>"
        for m, st, r in reasons
        if r
    ]
    if why:
        parts.append(f'<div class="why"><ul>{"".join(why)}</ul></div>')
    summary_rows = [[k, _plain(v)] for k, v in summary.items()]
    parts.append(_table(["field", "value"], summary_rows, long_last=True))

    parts.append("<h2>Gates</h2>")
    gate_rows = []
    for s in sections:
        for g in dedupe_gates(s.model, s.gates):
            v = gate_view(s.model, g)
            gate_rows.append([s.model, v.name, v.meaning, Num(v.check), Raw(_verdict(v.passed))])
    parts.append(_table(["model", "gate", "what it checks", "check", "result"], gate_rows))
    outcomes = [[s.model, Raw(_status(s.status)), _detail_text(s.detail)] for s in sections]
    parts.append(_table(["model", "outcome", "detail"], outcomes, long_last=True))

    for s in sections:
        parts.append(f"<h2>{html.escape(s.model)} — {_status(s.status)}</h2>")
        parts.append(_detail_html(s.detail))
        parts.extend(embed(p, s.model) for p in s.images if p.exists())
        for t in s.tables:
            if t.exists():
                parts.append(f"<h3>{html.escape(t.stem.replace('_', ' '))}</h3>{_csv_table(t)}")
        if s.metrics:
            parts.append(_metrics_table(s.metrics))

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
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style><body>"
        + "\n".join(parts)
        + "</body></html>",
        encoding="utf-8",
    )
    return page
