"""The closed-loop replay on worlds the demo never sees: noise, and real bars.

Run: ``.venv/bin/python benchmarks/bench_replay.py --world null eurusd [--cycles 3]``

The replay (``edgeflow replay``) is the loop's proof: the bot trades the bars cycle by cycle,
the training flow retrains on its bars and logs after each cycle with its champion stage, the
bot verifies and hot-reloads what was published, and each cycle's net reward per decision is
scored for the live bot, a frozen first-cycle bot, the best single arm chosen on the bars
before the cycle and (synthetic data only) the regime oracle. This script writes each world's
bars to a file, runs the real command on it in a fresh workdir and tabulates its JSON:

* ``null``: ``generate_null_bars`` (GARCH(1,1)-t, no drift, no regimes). Nothing has an edge,
  so the loop must do no harm: every slot keeps its fallback (nothing published), or what it
  ships earns no less than the fallback.
* ``eurusd``: ``backtesting``'s EURUSD hourly sample (5,000 bars, one symbol).
* ``sp500``: ``arch``'s S&P 500 daily 1999-2018 (about 5,000 sessions).

Writes ``benchmarks/results/replay.md`` (one section per world run, replacing that world's
previous section).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: world -> (cycles, cycle bars, initial bars) defaults that fit the set's length.
PLANS: dict[str, tuple[int, int, int]] = {
    "null": (3, 2000, 8000),
    "eurusd": (3, 1000, 2000),
    "sp500": (3, 1000, 2000),
}


def world_bars(world: str, seed: int) -> pd.DataFrame:
    """The world's bars in the bar contract (ts, symbol, open, high, low, close, volume)."""
    if world == "null":
        from configs import load_config
        from pipelines.data.synthetic import generate_null_bars

        cfg = load_config(ROOT / "configs" / "demo.yaml").data.synthetic
        cycles, cycle_bars, initial = PLANS["null"]
        cfg = cfg.model_copy(update={"n_bars": initial + cycles * cycle_bars})
        return generate_null_bars(cfg, seed)
    if world == "eurusd":
        from pipelines.data.sources import read_sample

        raw = read_sample(["EURUSD"])[0]
        frame, symbol = raw.frame, raw.symbol
    elif world == "sp500":
        from benchmarks.bench_real import read_arch

        raw = read_arch("sp500")
        frame, symbol = raw.frame, raw.symbol
    else:
        raise SystemExit(f"unknown world {world!r}: choose from {sorted(PLANS)}")
    frame = frame.rename(columns=str.lower)
    out = frame[["ts", "open", "high", "low", "close", "volume"]].copy()
    out.insert(1, "symbol", symbol)
    return out


def run_world(world: str, cycles: int, cycle_bars: int, initial: int, seed: int) -> dict[str, Any]:
    """``edgeflow replay`` on the world's bars in a fresh workdir; its JSON summary, timed."""
    tmp = Path(tempfile.mkdtemp(prefix=f"edgeflow-replay-{world}-"))
    data = tmp / f"{world}.csv"
    world_bars(world, seed).to_csv(data, index=False)
    cmd = [
        str(ROOT / ".venv" / "bin" / "edgeflow"),
        "replay",
        "--data",
        str(data),
        "--cycles",
        str(cycles),
        "--cycle-bars",
        str(cycle_bars),
        "--initial-bars",
        str(initial),
        "--workdir",
        str(tmp / "work"),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{world}: replay failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    summary: dict[str, Any] = json.loads(proc.stdout)
    summary["wall_s"] = wall
    summary["command"] = " ".join(["edgeflow", *cmd[1:3], f"<{world}.csv>", *cmd[4:-2]])
    return summary


def _est(doc: dict[str, float] | None) -> str:
    if doc is None:
        return "-"
    value, low, high = (doc.get(k) for k in ("value", "low", "high"))
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{value * 1e4:+.2f}"
    return f"{value * 1e4:+.2f} [{low * 1e4:+.2f}, {high * 1e4:+.2f}]"


def _published(summary: dict[str, Any]) -> str:
    done = []
    for t in summary["trainings"]:
        live = [
            f"{m} {d['version']}" for m, d in t["models"].items() if d.get("status") == "published"
        ]
        if live:
            done.append(f"after cycle {t['cycle']}: {', '.join(live)}")
    return "; ".join(done) if done else "nothing (every slot kept its fallback)"


def section(world: str, summary: dict[str, Any], load: float) -> str:
    """The world's markdown section: command, machine, cycle table, verdict."""
    lines = [
        f"### Replay: {world}",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_replay.py --world {world}` "
        f"(runs `{summary['command']}`)  ",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, no GPU, shared (load average "
        f"{load:.1f} at start); {dt.date.today().isoformat()}; {summary['wall_s'] / 60:.1f} min "
        "wall  ",
        f"Data: {summary['bars_per_symbol']} bars per symbol, {summary['initial_bars']} before "
        f"the first cycle, {summary['cycle_bars']} per cycle. Net reward per decision in bps, "
        "90% CI.",
        "",
        "| cycle | decisions | live | frozen | best arm before (arm) | oracle |",
        "|---:|---:|---|---|---|---|",
    ]
    for c in summary["cycles"]:
        lines.append(
            f"| {c['cycle']} | {c['decisions']} | {_est(c['live'])} | {_est(c['frozen'])} | "
            f"{_est(c['best_arm_value'])} (`{c['best_arm']}`) | {_est(c['oracle'])} |"
        )
    lines += [
        "",
        f"Published by the trainings: {_published(summary)}.  ",
        f"Verdict (the replay's own): {summary['verdict']}",
        "",
    ]
    return "\n".join(lines)


def write_results(sections: dict[str, str], path: Path) -> None:
    """Replace each run world's section in ``path``, keeping the others."""
    old: dict[str, str] = {}
    if path.exists():
        for block in path.read_text().split("### Replay: ")[1:]:
            name = block.split("\n", 1)[0].strip()
            old[name] = "### Replay: " + block.rstrip() + "\n"
    old.update(sections)
    head = [
        "## Closed-loop replay on noise and on real bars",
        "",
        "Each world runs the real `edgeflow replay` (training flow with the champion stage after "
        "every cycle, the bot hot-reloading what was published) in a fresh workdir. On the null "
        "world nothing has an edge: the loop passes when it publishes nothing or does no harm. "
        "The frozen bot keeps what was live after the first training (the fallbacks when "
        "nothing was).",
        "",
    ]
    order = [w for w in PLANS if w in old]
    path.write_text("\n".join(head) + "\n".join(old[w] for w in order))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", nargs="+", default=["null", "eurusd"], choices=sorted(PLANS))
    parser.add_argument("--cycles", type=int, default=None)
    parser.add_argument("--seed", type=int, default=11, help="The null world's seed.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replay.md")
    args = parser.parse_args()
    sections = {}
    for world in args.world:
        cycles, cycle_bars, initial = PLANS[world]
        load = os.getloadavg()[0]
        summary = run_world(world, args.cycles or cycles, cycle_bars, initial, args.seed)
        sections[world] = section(world, summary, load)
        print(sections[world], flush=True)
    write_results(sections, args.out)


if __name__ == "__main__":
    main()
