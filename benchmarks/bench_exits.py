"""Exit simulation speed: every family's trades under a grid of stop / target pairs.

Run: ``.venv/bin/python benchmarks/bench_exits.py [--n-bars 20000] [--rounds 5]``

The demo's bars (2 symbols x ``--n-bars`` hourly bars of the seeded generator), the four
families' entries (a family's signal turning on or flipping), the ATR(14) fraction at entry,
and an 8 x 8 grid of stops (0.5-4 ATR) and targets (1-6 ATR) with a 24-bar time exit, costs
as the demo's rewards. Timed: cutting the trades' windows (``trade_windows``) and simulating
the whole grid (``simulate_exits``), best of ``--rounds``. Also printed: the grid's best
pair per family on these bars (an in-sample figure, for scale only: choosing settings is the
recommendation slot's job, judged on later spans). Writes ``benchmarks/results/exits.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "exits.md"
sys.path.insert(0, str(ROOT))

STOPS = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
TARGETS = np.array([1.0, 1.5, 2.0, 3.0, 4.0, 4.5, 5.0, 6.0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-bars", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-hold", type=int, default=24)
    args = parser.parse_args()

    from configs import load_config
    from pipelines.data.synthetic import generate_bars
    from pipelines.recommendations import atr_fraction, family_signals
    from pipelines.strategies import ARM_FAMILIES, compute_signals
    from pipelines.strategies.exits import EXIT_TYPES, entry_rows, simulate_exits, trade_windows

    settings = load_config("demo", environ={})
    syn = settings.data.synthetic.model_copy(update={"n_bars": args.n_bars})
    bars = generate_bars(syn, settings.seed)
    fam = family_signals(compute_signals(bars), ARM_FAMILIES)
    atr = atr_fraction(bars)
    cost, slip = settings.bandit.cost_bps, settings.bandit.slippage_bps
    load = os.getloadavg()[0]
    rows_out = []
    total_trades, cut_s, sim_s = 0, 0.0, 0.0
    for family in fam.columns:
        sig = fam[family].to_numpy()
        rows = entry_rows(sig, bars["symbol"].to_numpy())
        best_cut, best_sim = np.inf, np.inf
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            w = trade_windows(bars, rows, sig[rows], atr[rows], args.max_hold)
            t1 = time.perf_counter()
            grid = simulate_exits(w, STOPS, TARGETS, cost_bps=cost, slippage_bps=slip)
            t2 = time.perf_counter()
            best_cut, best_sim = min(best_cut, t1 - t0), min(best_sim, t2 - t1)
        total_trades += w.n
        cut_s += best_cut
        sim_s += best_sim
        mean = grid.pnl.mean(axis=0) * 1e4
        s, t = np.unravel_index(np.argmax(mean), mean.shape)
        shares = np.bincount(grid.kind[:, s, t].ravel(), minlength=3) / max(w.n, 1)
        mix = ", ".join(f"{k} {v:.0%}" for k, v in zip(EXIT_TYPES, shares, strict=True))
        rows_out.append(
            f"| {family} | {w.n:,} | {best_cut * 1e3:.1f} | {best_sim * 1e3:.1f} | "
            f"{STOPS[s]:g} / {TARGETS[t]:g} | {mean[s, t]:+.2f} | {mix} |"
        )
    pairs = len(STOPS) * len(TARGETS)
    text = "\n".join(
        [
            "## Exit simulation",
            "",
            f"Command: `.venv/bin/python benchmarks/bench_exits.py --n-bars {args.n_bars} "
            f"--rounds {args.rounds}`  ",
            f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU, one thread, "
            f"shared (load average {load:.1f} at start); "
            f"{dt.datetime.now(dt.UTC).date().isoformat()}  ",
            f"Data: the demo generator, {len(syn.symbols)} symbols x {args.n_bars} hourly bars; "
            f"{pairs} stop/target pairs (stops {STOPS.min():g}-{STOPS.max():g} ATR, targets "
            f"{TARGETS.min():g}-{TARGETS.max():g} ATR), time exit after {args.max_hold} bars, "
            f"costs {cost:g} + {slip:g} bps per side (`pipelines/strategies/exits.py`).",
            "",
            "| family | trades | windows (ms) | grid (ms) | best stop / target (in-sample) "
            "| mean net bps per trade | exits at that pair |",
            "|---|---:|---:|---:|---|---:|---|",
            *rows_out,
            "",
            f"In all: {total_trades:,} trades x {pairs} pairs = {total_trades * pairs:,} simulated "
            f"exits in {(cut_s + sim_s) * 1e3:.0f} ms (best of {args.rounds}). The best pair is "
            "chosen on the same bars it is scored on, so its figure is optimistic by "
            "construction; it only shows the scale of what exits change.",
            "",
        ]
    )
    print(text)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
