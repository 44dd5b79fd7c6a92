"""The per-run HTML report: why a model is blocked, the gates, each model's plots and tables.

Plain HTML with the PNGs copied beside it, so it opens from disk, from an MLflow artifact
view, or from a CI artifact without a server. What a person reads is shown in one unit per
quantity (``pipelines.plots.QUANTITY_UNITS``, named in every header), gates read as
``value >= threshold unit [CI low, high]``, and every table scrolls inside its own box so a
wide one never widens the page (headers wrap after ``_`` and ``/`` so most fit it).
"""

from __future__ import annotations

import html
import math
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.evaluation.gates import PARITY_GATE, Gate
from pipelines.plots import Unit, unit_for

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2430;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dde2ea;
padding-bottom:.3rem}.muted{color:#66708a}
.table-wrap{max-width:100%;overflow-x:auto;margin:.6rem 0}
.note{border-left:4px solid #8a6d00;background:#fffaeb;padding:.4rem .8rem;margin:.5rem 0}
table{border-collapse:collapse;font-size:.92rem}
th,td{border:1px solid #dde2ea;padding:.3rem .6rem;text-align:left;vertical-align:top;
overflow-wrap:normal;word-break:normal}
th{background:#f3f5f9;min-width:5ch}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}td.long{min-width:16ch}
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
    ``gates`` are :class:`~pipelines.evaluation.gates.Gate` objects (or their ``as_dict``
    form, as a manifest stores them): the report shows each in its own unit and direction,
    with its estimate, interval and span, and never guesses them from the gate's name.
    """

    model: str
    status: str  # "published", "blocked", "failed", "skipped"
    detail: str | Mapping[str, Any]
    gates: Sequence[Gate | Mapping[str, Any]] = field(default_factory=list)
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
    value += 0.0  # a negated zero prints as 0, never -0
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
    if isinstance(value, Num):
        return html.escape(value)
    return _breakable(str(value))


def _is_num(cell: Any) -> bool:
    return isinstance(cell, Num) or (isinstance(cell, int | float) and not isinstance(cell, bool))


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    caption: str = "",
    long_last: bool = False,
) -> str:
    """A table inside its own horizontally scrolling box.

    ``long_last``: the last column holds long values (paths, prose) that get a wider minimum
    width; they wrap at spaces, ``_`` and ``/`` like every cell.
    """
    head = "".join(f"<th>{_breakable(h)}</th>" for h in headers)
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


def _breakable(text: str) -> str:
    """Text that may wrap at spaces and after ``_`` and ``/`` (``accuracy_<wbr>mean``), never
    inside a word: a long snake_case name or path is one word to the browser, so a
    table of them was wider than the page; letting cells break anywhere instead split narrow
    columns mid-word (``confir m``). What still does not fit scrolls in the table's box."""
    return re.sub(r"([_/])", r"\1<wbr>", html.escape(text))


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
    empty = empty_table_reason(path, frame)
    if empty is not None:
        return f'<p class="note">{html.escape(empty)}</p>'
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


def as_gate(gate: Gate | Mapping[str, Any]) -> Gate:
    """A gate as the object the trainers' gate rules return; a manifest's dict (``as_dict``)
    is read back field by field, never guessed from its name."""
    if isinstance(gate, Gate):
        return gate

    def opt(key: str) -> float | None:
        value = gate.get(key)
        return None if value is None else float(value)

    return Gate(
        name=str(gate["name"]),
        value=float(gate["value"]),
        threshold=float(gate["threshold"]),
        passed=bool(gate["passed"]),
        direction=gate.get("direction", ">="),
        unit=str(gate.get("unit") or ""),
        ci_low=opt("ci_low"),
        ci_high=opt("ci_high"),
        description=str(gate.get("description") or ""),
        estimate=opt("estimate"),
        span=str(gate.get("span") or "test"),
    )


def gate_number(value: float | None) -> str:
    """A gate's figure in its own unit, 4 significant digits; zero never prints as ``-0``."""
    if value is None:
        return "n/a"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0.0:
        return "0"
    text = f"{value:.4g}"
    return "0" if re.fullmatch(r"-0(\.0*)?", text) else text


@dataclass(frozen=True)
class GateView:
    """One gate as the report shows it."""

    model: str
    name: str
    meaning: str
    check: str  # "lower bound -0.141 > 0 nats · estimate -0.07 [-0.141, -0.008]"
    value: str
    direction: str
    threshold: str
    unit: str
    span: str
    passed: bool


def _same_check(gate: Gate) -> str:
    """The quantity a gate checks: the parity gate, however a producer named it, counts once."""
    return (
        PARITY_GATE if gate.name == PARITY_GATE or gate.name.endswith("_onnx_parity") else gate.name
    )


def dedupe_gates(model: str, gates: Sequence[Gate | Mapping[str, Any]]) -> list[Gate]:
    """One gate per checked quantity, in first-seen order; a failing copy wins."""
    kept: dict[str, Gate] = {}
    for raw in gates:
        gate = as_gate(raw)
        key = _same_check(gate)
        if key not in kept or (kept[key].passed and not gate.passed):
            kept[key] = gate
    return list(kept.values())


def gate_view(model: str, gate: Gate | Mapping[str, Any]) -> GateView:
    """A gate in words, from its own fields: value, direction, threshold and unit as the log
    and Prefect show them; for a lower-bound gate the point estimate and its interval too."""
    g = as_gate(gate)
    unit = f" {g.unit}" if g.unit else ""
    value, threshold = gate_number(g.value), gate_number(g.threshold)
    check = f"{value} {g.direction} {threshold}{unit}"
    has_ci = g.ci_low is not None and g.ci_high is not None
    interval = f" [{gate_number(g.ci_low)}, {gate_number(g.ci_high)}]" if has_ci else ""
    if g.estimate is not None:
        lead = "lower bound " if has_ci and g.ci_low == g.value else ""
        check = f"{lead}{check} · estimate {gate_number(g.estimate)}{interval}"
    else:
        check += interval
    meaning = g.description or g.name.replace("_", " ")
    return GateView(
        model, g.name, meaning, check, value, g.direction, threshold, g.unit, g.span, g.passed
    )


def blocked_reason(section: ModelSection) -> str | None:
    """One line on why a model did not ship: its first failing gate in words, or the error."""
    if section.status == "blocked":
        for gate in dedupe_gates(section.model, section.gates):
            if not gate.passed:
                v = gate_view(section.model, gate)
                unit = f" {v.unit}" if v.unit else ""
                return (
                    f"{v.meaning} ({v.name}, {v.span} span) is {v.value}{unit}; "
                    f"it must be {v.direction} {v.threshold}{unit}."
                )
        return _detail_text(section.detail)
    if section.status == "failed":
        return _detail_text(section.detail)
    return None


# ---------------------------------------------------------------------------------- details


def _detail_text(detail: str | Mapping[str, Any]) -> str:
    if isinstance(detail, Mapping):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in detail.items())
    return detail


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def feature_set_line(record: Mapping[str, Any]) -> str:
    """The models' input columns in one line (the summary's ``features`` record lists each
    column): version, id and the count per source, e.g. ``v1 c651aa0abdacae16: 43 bars,
    8 cross_asset, 2 exogenous:vix``."""
    counts: dict[str, int] = {}
    for column in record.get("columns", []):
        source = str(column.get("source", "?"))
        counts[source] = counts.get(source, 0) + 1
    parts = ", ".join(f"{n} {source}" for source, n in counts.items())
    return f"v{record.get('version', '?')} {record.get('id', '?')}: {parts or 'none'}"


def _summary_cell(key: str, value: Any, status: str) -> str:
    if key == "status":
        return status
    if key == "features" and isinstance(value, Mapping):
        return feature_set_line(value)
    return _plain(value) if value not in ({}, [], None, "") else "none"


def _detail_html(detail: str | Mapping[str, Any]) -> str:
    """A detail as a sentence, or its named facts as a two-column table."""
    if not isinstance(detail, Mapping):
        return f'<p class="muted">{html.escape(detail)}</p>'
    rows = [[k, _plain(v)] for k, v in detail.items()]
    return _table(["field", "value"], rows, long_last=True)


def _fact_cell(value: Any) -> Any:
    """Numbers stay numbers (right-aligned); anything else reads as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return _plain(value) if value not in ({}, None) else "none"


def data_checks_html(checks: Mapping[str, Any]) -> str:
    """The data checks (``CheckReport.to_dict()``, or any mapping of facts) as tables: its
    plain facts in one, each list of records (files, symbols, gaps) in a table of its own."""
    facts, lists = [], []
    for key, value in checks.items():
        records = (
            isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value)
        )
        if records:
            lists.append((key, value))
        elif isinstance(value, list | tuple) and not value:
            facts.append([key, "none"])
        else:
            facts.append([key, _plain(value) if value not in ({}, None) else "none"])
    parts = ['<section id="data-checks"><h3>data checks</h3>']
    parts.append(_table(["check", "value"], facts, long_last=True))
    for key, records in lists:
        headers = list(dict.fromkeys(k for r in records for k in r))
        rows = [[_fact_cell(r.get(h, "")) for h in headers] for r in records]
        parts.append(f"<h4>{html.escape(str(key))}</h4>{_table(headers, rows)}")
    parts.append("</section>")
    return "".join(parts)


# ---------------------------------------------------------------------------------- page


def run_status_line(summary: Mapping[str, Any], sections: Sequence[ModelSection]) -> str:
    """What became of the run in words: how many models shipped, not a bare ``ok`` beside
    blocked ones. The recommendation is a parameter file, not a model: it is named apart, so
    a run whose four models were blocked does not read "1 of 5 models published"."""
    models = [s for s in sections if s.model not in PARAMETER_FILES]
    counts = {st: sum(s.status == st for s in models) for st in STATUSES}
    ended = {"failed": "run failed", "skipped": "run skipped"}.get(
        str(summary.get("status", "")), "run completed"
    )
    rest = ", ".join(f"{n} {st}" for st, n in counts.items() if n and st != "published")
    line = f"{ended}: {counts['published']} of {len(models)} models published"
    line = f"{line} ({rest})" if rest else line
    files = [f"the {s.model} {s.status}" for s in sections if s.model in PARAMETER_FILES]
    return "; ".join([line, *files])


STATUSES = ("published", "blocked", "failed", "skipped")

#: Sections that are published parameter files, not models (the run summary names them apart).
PARAMETER_FILES = ("recommendation",)

#: An ECE above this gets a sentence under the plot (a 0.05 gap is already visible in it).
ECE_COMMENT = 0.05


def reliability_comment(path: Path) -> str | None:
    """One sentence on a reliability table (bins with ``confidence``, ``accuracy``,
    ``count``): what its ECE means and whether the model is over- or under-confident."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if not {"confidence", "accuracy", "count"} <= set(frame.columns) or frame["count"].sum() <= 0:
        return None
    weight = frame["count"] / frame["count"].sum()
    gap = frame["confidence"] - frame["accuracy"]
    ece = float((weight * gap.abs()).sum())
    if ece <= ECE_COMMENT:
        return None
    side = "over-confident" if float((weight * gap).sum()) > 0 else "under-confident"
    worst = frame.loc[(weight * gap.abs()).idxmax()]
    return (
        f"ECE {ece:.3f}: on average the stated confidence is {ece:.3f} away from how often "
        f"the model is right; it is {side} (in the {float(worst['confidence']):.2f} "
        f"confidence bin it is right {float(worst['accuracy']):.1%} of the time, "
        f"{int(worst['count'])} rows). Do not read its probabilities at face value."
    )


def empty_table_reason(path: Path, frame: pd.DataFrame) -> str | None:
    """Why a table holds no information (no rows, or every measured value 0 or missing), in
    words; None when it has something to show. The first column is the table's key."""
    name = path.stem.replace("_", " ")
    if frame.empty:
        return f"no {name}: the trainer wrote no rows"
    measured = frame.select_dtypes("number").iloc[:, 1:]
    if measured.empty:
        return None
    values = measured.to_numpy(dtype="float64")
    if not bool(((values == 0) | ~pd.notna(values)).all()):
        return None
    said = []
    for col in measured.columns:
        col_values = measured[col]
        said.append(f"{col} is {'missing' if col_values.isna().all() else '0'}")
    key = frame.columns[0]
    return f"no {name}: {' and '.join(said)} at every one of the {len(frame)} {key} rows"


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


def _section_parts(s: ModelSection, embed: Callable[[Path, str], str]) -> list[str]:
    """One model's part of the page: outcome, plots (with a word on a poor calibration),
    tables and metrics."""
    parts = [f"<h2>{html.escape(s.model)} — {_status(s.status)}</h2>", _detail_html(s.detail)]
    parts.extend(embed(p, s.model) for p in s.images if p.exists())
    for t in s.tables:
        comment = reliability_comment(t) if t.exists() else None
        if comment:
            parts.append(f'<p class="note">{html.escape(comment)}</p>')
    for t in s.tables:
        if t.exists():
            parts.append(f"<h3>{html.escape(t.stem.replace('_', ' '))}</h3>{_csv_table(t)}")
    if s.metrics:
        parts.append(_metrics_table(s.metrics))
    return parts


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
    status = run_status_line(summary, sections)
    parts.insert(1, f'<p class="muted" id="run-status">{html.escape(status)}</p>')
    # An empty value (no heartbeat re-signed: {}) reads "none", as in the data checks, not a
    # blank cell that looks like a rendering fault.
    summary_rows = [[k, _summary_cell(k, v, status)] for k, v in summary.items()]
    parts.append(_table(["field", "value"], summary_rows, long_last=True))

    parts.append("<h2>Gates</h2>")
    gate_rows = []
    for s in sections:
        for g in dedupe_gates(s.model, s.gates):
            v = gate_view(s.model, g)
            gate_rows.append([s.model, v.name, v.meaning, v.span, v.check, Raw(_verdict(v.passed))])
    headers = ["model", "gate", "what it checks", "span", "check", "result"]
    parts.append(_table(headers, gate_rows))
    outcomes = [[s.model, Raw(_status(s.status)), _detail_text(s.detail)] for s in sections]
    parts.append(_table(["model", "outcome", "detail"], outcomes, long_last=True))

    for s in sections:
        parts.extend(_section_parts(s, embed))

    if data_checks is not None or data_images:
        parts.append("<h2>Data</h2>")
        parts.extend(embed(p, "data") for p in data_images if p.exists())
        if data_checks is not None:
            parts.append(data_checks_html(data_checks))

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
