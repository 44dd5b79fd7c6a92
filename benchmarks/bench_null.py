"""False-publish rate on the null world: how often each model passes its gates on bars with
no structure (GARCH-t returns, no drift, no regimes), over many seeds.

Every model of the registry is trained on ``generate_null_bars`` exactly as the flow trains
it (named random streams, the sizer after the bandit) with small budgets, and judged by the
real gates. A gate at a one-sided 95% bound should let a useless model through at most about
5% of the time. Writes ``benchmarks/results/null.md``.

    .venv/bin/python benchmarks/bench_null.py [--seeds 20] [--n-bars 4000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n-bars", type=int, default=4000)
    parser.add_argument("--config", default="demo")
    args = parser.parse_args()

    from pipelines.data.synthetic import generate_null_bars
    from pipelines.features import featurize
    from pipelines.models.registry import SPECS, train_one
    from pipelines.strategies import compute_signals

    overrides = {**SMALL_BUDGET, "metalabel.n_estimators": 100}
    settings = load_config(args.config, overrides=overrides, environ={})
    syn = settings.data.synthetic.model_copy(update={"n_bars": args.n_bars})
    published = {name: 0 for name in SPECS}
    errors = {name: 0 for name in SPECS}
    failing: dict[str, dict[str, int]] = {name: {} for name in SPECS}
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            bars = generate_null_bars(syn, seed)
            feats = featurize(bars).frame
            signals = compute_signals(bars)
            trained: dict[str, Any] = {}
            for name, spec in SPECS.items():
                upstream = {u: trained[u] for u in spec.after if u in trained}
                try:
                    res = train_one(
                        spec,
                        bars,
                        feats,
                        spec.config(settings),
                        seed,
                        Path(tmp) / str(seed) / name,
                        signals,
                        settings.training.parity_tolerance,
                        upstream,
                    )
                except ValueError as exc:  # too little structure to train at all
                    errors[name] += 1
                    print(f"seed {seed} {name}: not trainable ({exc})")
                    continue
                trained[name] = res
                published[name] += int(res.passed)
                for g in res.gates:
                    if not g.passed:
                        failing[name][g.name] = failing[name].get(g.name, 0) + 1
                print(f"seed {seed} {name}: {'PUBLISHED' if res.passed else 'blocked'}")
    seconds = time.perf_counter() - t0
    n = args.seeds
    lines = [
        "## Null world: false-publish rate",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_null.py --seeds {n} --n-bars {args.n_bars}`"
        "  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU (load average "
        f"{load:.1f} at start); {seconds / 60:.1f} min; "
        f"{dt.datetime.now(dt.UTC).date().isoformat()}  ",
        f"Data: `generate_null_bars`, {len(syn.symbols)} symbols x {args.n_bars} hourly bars per "
        f"seed, seeds 1..{n}; small training budgets (`SMALL_BUDGET` in bench_real.py).",
        "",
        "| model | published | rate | not trainable | gates that blocked it (times) |",
        "|---|---:|---:|---:|---|",
    ]
    for name in SPECS:
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
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
