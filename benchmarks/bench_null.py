"""False-publish rate on the null world: how often each model passes its gates on bars with
no structure (GARCH-t returns, no drift, no regimes), over many seeds.

Every model of the registry is trained on ``generate_null_bars`` exactly as the flow trains
it (named random streams, the sizer after the bandit) with the profile's budgets, and judged
by the real gates (test and confirmation spans). A gate at a one-sided 95% bound should let a
useless model through at most about 5% of the time; every model that does publish is scored,
the same fit, on a fresh null world (``benchmarks/forward.py``). Writes
``benchmarks/results/null.md``.

    .venv/bin/python benchmarks/bench_null.py [--seeds 40] [--n-bars 4000] [--budget config]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "null.md"
sys.path.insert(0, str(ROOT))

from benchmarks.bench_real import SMALL_BUDGET  # noqa: E402
from configs import load_config  # noqa: E402

#: Fresh null worlds are drawn from seeds in a range of their own, so no fresh world is one
#: a model was trained on.
FRESH_SEED_OFFSET = 1_000_000


def _champion_row(seed: int, name: str, fwd: Any) -> str | None:
    """None when the slot has no champion stage; "" when it kept the fallback; else the
    false promotion's table row."""
    from benchmarks.forward import champion_truth

    truth = champion_truth(fwd)
    if truth is None:
        return None
    if truth.shipped == "fallback":
        return ""
    return (
        f"| {seed} | {name} | {truth.challenger} | {truth.test} | {truth.confirm} | {truth.later} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--n-bars", type=int, default=4000)
    parser.add_argument("--config", default="demo")
    parser.add_argument(
        "--budget",
        choices=["small", "config"],
        default="config",
        help="config: the profile's own training budgets (the demo's); small: SMALL_BUDGET",
    )
    parser.add_argument("--models", nargs="+", default=None)
    args = parser.parse_args()

    from benchmarks.forward import fit_forward, format_gate
    from pipelines.data.synthetic import generate_null_bars
    from pipelines.features import featurize
    from pipelines.models.base import NotTrainable, TrainInputs
    from pipelines.models.specs import SPECS
    from pipelines.strategies import compute_signals

    overrides = {**SMALL_BUDGET, "metalabel.n_estimators": 100} if args.budget == "small" else {}
    settings = load_config(args.config, overrides=overrides, environ={})
    syn = settings.data.synthetic.model_copy(update={"n_bars": args.n_bars})
    names = [m for m in SPECS if args.models is None or m in args.models]
    published = {name: 0 for name in names}
    errors = {name: 0 for name in names}
    failing: dict[str, dict[str, int]] = {name: {} for name in names}
    fresh_rows: list[str] = []
    promoted = {name: 0 for name in names}  # the champion stage replaced the fallback
    staged = {name: 0 for name in names}  # slot runs with a champion stage
    champion_rows: list[str] = []
    t0 = time.perf_counter()
    load = os.getloadavg()[0]

    def world(seed: int) -> TrainInputs:
        bars = generate_null_bars(syn, seed)
        return TrainInputs(bars, featurize(bars).frame, compute_signals(bars))

    for seed in range(1, args.seeds + 1):
        trained, fresh = world(seed), world(FRESH_SEED_OFFSET + seed)
        done: dict[str, Any] = {}
        for name in names:
            spec = SPECS[name]
            before = {u: done[u].result for u in spec.after if u in done}
            after = {u: done[u].forward_result for u in spec.after if u in done}
            cfg = spec.config(settings)
            try:
                fwd = fit_forward(
                    spec,
                    TrainInputs(trained.bars, trained.features, trained.signals, before),
                    TrainInputs(fresh.bars, fresh.features, fresh.signals, after),
                    cfg,
                    cfg,
                    seed,
                    settings.training.parity_tolerance,
                )
            except (NotTrainable, ValueError) as exc:  # too little structure to train at all
                errors[name] += 1
                print(f"seed {seed} {name}: not trainable ({exc})")
                continue
            done[name] = fwd
            published[name] += int(fwd.published)
            for g in fwd.gates:
                if not g.passed:
                    failing[name][g.name] = failing[name].get(g.name, 0) + 1
            if fwd.published:
                first, twin, later = fwd.primary()
                positive = later is not None and (later.estimate or 0.0) > 0
                within = (
                    later is not None and later.ci_high is not None and later.ci_high >= first.value
                )
                fresh_rows.append(
                    f"| {seed} | {name} | {first.name} | {format_gate(first)} | "
                    f"{format_gate(twin)} | {format_gate(later)} | "
                    f"{'yes' if positive else 'no'} | {'yes' if within else 'no'} |"
                )
            row = _champion_row(seed, name, fwd)
            if row is not None:
                staged[name] += 1
                promoted[name] += row != ""
                champion_rows += [row] if row else []
            print(f"seed {seed} {name}: {'PUBLISHED' if fwd.published else 'blocked'}")
    seconds = time.perf_counter() - t0
    n = args.seeds
    budget = "the profile's own budgets" if args.budget == "config" else "`SMALL_BUDGET`"
    lines = [
        "## Null world: false-publish rate",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_null.py --seeds {n} --n-bars {args.n_bars} "
        f"--config {args.config} --budget {args.budget}`  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU (load average "
        f"{load:.1f} at start); {seconds / 60:.1f} min; "
        f"{dt.datetime.now(dt.UTC).date().isoformat()}  ",
        f"Data: `generate_null_bars`, {len(syn.symbols)} symbols x {args.n_bars} hourly bars per "
        f"seed, seeds 1..{n}; training budgets: {budget}. Each model is judged by its own gates "
        "(test and confirmation spans); a model that publishes is then scored, the same fit, "
        f"on a fresh null world (seed {FRESH_SEED_OFFSET:,} + s) that no run saw.",
        "",
        "| model | published | rate | not trainable | gates that blocked it (times) |",
        "|---|---:|---:|---:|---|",
    ]
    for name in names:
        why = ", ".join(f"{g} {c}" for g, c in sorted(failing[name].items(), key=lambda kv: -kv[1]))
        lines.append(
            f"| {name} | {published[name]} / {n} | {published[name] / n:.0%} | {errors[name]} "
            f"| {why} |"
        )
    lines += [
        "",
        "A gate at a one-sided 95% lower bound has a nominal false-publish rate of 5%; on the "
        "null world every publish is a false one.",
        "",
    ]
    if fresh_rows:
        lines += [
            "Every false publish, scored on a fresh null world (its true lift there is at most "
            "zero: a positive later estimate is luck). Within bound: the fresh world's interval "
            "reaches the published lower bound, i.e. the loss is one the bound allowed.",
            "",
            "| seed | model | gate | test | confirmation | fresh null world | later > 0 "
            "| within bound |",
            "|---|---|---|---|---|---|---|---|",
            *fresh_rows,
            "",
        ]
    else:
        lines += ["No model published on any null world, so none needed a fresh-world score.", ""]
    lines += [
        "Champion stage on the same null worlds: the slot's candidates (the learned model when "
        "its own gates passed, and the rules: best arm, volatility targeting) against the "
        "bot's fallback, as a fresh store's first run. Replacing the fallback on noise is a "
        "false promotion.",
        "",
        "| slot | fallback replaced | rate |",
        "|---|---:|---:|",
        *(
            f"| {name} | {promoted[name]} / {staged[name]} | {promoted[name] / staged[name]:.0%} |"
            for name in names
            if staged[name]
        ),
        "",
    ]
    if champion_rows:
        lines += [
            "Every false promotion, with the same candidate's lift over the fallback on the "
            "fresh null world:",
            "",
            "| seed | slot | challenger | test | confirmation | fresh null world |",
            "|---|---|---|---|---|---|",
            *champion_rows,
            "",
        ]
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
