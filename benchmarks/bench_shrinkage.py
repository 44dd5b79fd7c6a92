"""Shrinkage: how much of a slot's test-span lift is still there on the confirmation span and
on bars no run saw, across generator seeds (the winner's curse, measured).

Each seed draws the demo generator's world with 25 % more bars than the profile asks for;
every model of the registry is trained on the first 80 % exactly as the training flow trains
it (its own spans: fit, validation, test, confirmation; its upstream results) and the same fit
is scored on the last 20 % (``benchmarks/forward.py``, as the real-data scorecard does). The
figures are each slot's primary lower-bound gate (its lift over the comparator), and the
champion stage's challenger lift over the bot's fallback. Shrinkage is the mean drop from the
test span to the later one; "given test > 0" is the mean over the seeds whose test estimate
was positive, the selection a gate makes. Writes ``benchmarks/results/shrinkage.md``.

    .venv/bin/python benchmarks/bench_shrinkage.py [--seeds 1 2 ... 12] [--budget config]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "shrinkage.md"
sys.path.insert(0, str(ROOT))

from benchmarks.bench_real import MODELS, SMALL_BUDGET, Dataset, run_model  # noqa: E402
from configs import load_config  # noqa: E402

#: the share of each seed's bars the models train on; the rest is the later span
TRAIN_SHARE = 0.8


@dataclass(frozen=True)
class Row:
    """One seed and slot: the same statistic on the test, confirmation and later spans."""

    seed: int
    slot: str
    what: str  # the gate, or "champion: <challenger>"
    unit: str
    test: float
    confirm: float
    later: float
    shipped: bool


def _estimate(g: Any) -> float:
    if g is None:
        return math.nan
    return float(g.estimate if g.estimate is not None else g.value)


def _rows(seed: int, slot: str, fwd: Any) -> list[Row]:
    first, twin, later = fwd.primary()
    out = [
        Row(
            seed,
            slot,
            first.name,
            first.unit,
            _estimate(first),
            _estimate(twin) if twin is not first else math.nan,
            _estimate(later),
            fwd.published,
        )
    ]
    early, late = fwd.decision, fwd.forward_decision
    if early is not None and late is not None and early.challenger is not None:
        name = early.challenger.name
        bound = {g.span: g for g in early.gates if g.ci_low is not None}
        lift_col = next(c for c in late.table.columns if str(c).startswith("lift_test"))
        hit = late.table[late.table["candidate"] == name]
        out.append(
            Row(
                seed,
                slot,
                f"champion: {name}",
                bound["test"].unit if "test" in bound else "",
                _estimate(bound.get("test")),
                _estimate(bound.get("confirm")),
                float(hit[lift_col].iloc[0]) if len(hit) else math.nan,
                bool(early.promote),
            )
        )
    return out


def _mean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:+.3g}"


def summary(rows: list[Row]) -> list[str]:
    """Per slot and statistic: mean test, confirmation and later figures, and the shrinkage
    over all seeds and over the seeds a gate would select (test estimate > 0)."""
    lines = [
        "| slot | statistic | unit | seeds | mean test | mean confirmation | mean later "
        "| shrinkage test → later | seeds with test > 0 | their mean test | their mean later "
        "| their shrinkage |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys: list[tuple[str, str]] = []
    for r in rows:
        key = (r.slot, "champion" if r.what.startswith("champion") else r.what)
        if key not in keys:
            keys.append(key)
    for slot, what in keys:
        group = [
            r
            for r in rows
            if r.slot == slot and ("champion" if r.what.startswith("champion") else r.what) == what
        ]
        picked = [r for r in group if r.test > 0]
        mt, ml = _mean([r.test for r in group]), _mean([r.later for r in group])
        pt, pl = _mean([r.test for r in picked]), _mean([r.later for r in picked])
        lines.append(
            f"| {slot} | {what} | {group[0].unit} | {len(group)} | {_fmt(mt)} | "
            f"{_fmt(_mean([r.confirm for r in group]))} | {_fmt(ml)} | {_fmt(mt - ml)} | "
            f"{len(picked)} | {_fmt(pt)} | {_fmt(pl)} | {_fmt(pt - pl)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 13)))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--budget", choices=["small", "config"], default="config")
    args = parser.parse_args()

    from pipelines.data.synthetic import generate_bars
    from pipelines.features import featurize

    overrides = SMALL_BUDGET if args.budget == "small" else {}
    settings = load_config(args.config, overrides=overrides, environ={})
    syn = settings.data.synthetic
    n_bars = round(syn.n_bars / TRAIN_SHARE)
    syn = syn.model_copy(update={"n_bars": n_bars})
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            bars = generate_bars(syn, seed)
            data = Dataset(f"generator seed {seed}", bars, featurize(bars).frame)
            trained: dict[str, Any] = {}
            for model in args.models:
                res, _ = run_model(model, data, settings, seed, Path(tmp), trained, TRAIN_SHARE)
                if res.error is not None:
                    print(f"seed {seed} {model}: error {res.error}")
                    continue
                got = _rows(seed, model, trained[model])
                rows += got
                print(
                    f"seed {seed} {model}: "
                    + "; ".join(
                        f"{r.what} {_fmt(r.test)} / {_fmt(r.confirm)} / {_fmt(r.later)}"
                        for r in got
                    )
                )
    minutes = (time.perf_counter() - t0) / 60
    seeds = " ".join(str(s) for s in args.seeds)
    lines = [
        "## Shrinkage: test span vs confirmation span vs later bars, across generator seeds",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_shrinkage.py --config {args.config} "
        f"--seeds {seeds} --budget {args.budget}`  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU (load average "
        f"{load:.1f} at start); {minutes:.1f} min; {dt.date.today().isoformat()}  ",
        f"Data: the `{args.config}` generator, {len(syn.symbols)} symbols x {n_bars} hourly bars "
        f"per seed; models train on the first {TRAIN_SHARE:.0%} (their own fit, validation, "
        "test and confirmation spans inside it) and the same fit is scored on the last "
        f"{1 - TRAIN_SHARE:.0%}, which no training, selection or gate saw.",
        "",
        "Each figure is a point estimate of the slot's primary lower-bound gate statistic (its "
        "lift over its comparator), or for `champion` the challenger's lift over the bot's "
        "fallback (the challenger can differ per seed). Shrinkage = mean test − mean later; a "
        "positive value is the part of the test-span lift that did not carry forward.",
        "",
        *summary(rows),
        "",
        "<details><summary>Per seed</summary>",
        "",
        "| seed | slot | statistic | unit | test | confirmation | later | shipped |",
        "|---:|---|---|---|---:|---:|---:|---|",
        *(
            f"| {r.seed} | {r.slot} | {r.what} | {r.unit} | {_fmt(r.test)} | "
            f"{_fmt(r.confirm)} | {_fmt(r.later)} | {'yes' if r.shipped else 'no'} |"
            for r in rows
        ),
        "",
        "</details>",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
