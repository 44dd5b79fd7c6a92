"""The closed-loop replay on worlds the demo never sees: noise, and real bars.

Run: ``.venv/bin/python benchmarks/bench_replay.py --world demo drift null [--cycles 6]``

The replay (``edgeflow replay``) is the loop's proof: the bot trades the bars cycle by cycle,
the training flow retrains on its bars and logs after each cycle with its champion stage, the
bot verifies and hot-reloads what was published, and each cycle's net reward per decision is
scored for the live bot, a frozen first-cycle bot, the best single arm chosen on the bars
before the cycle and (synthetic data only) the regime oracle. This script writes each world's
bars to a file, runs the real command on it in a fresh workdir and tabulates its JSON:

* ``demo``: the demo generator (``configs/demo.yaml``, what ``edgeflow replay`` trades by
  default), its ``n_bars`` set to fit the cycles. Verdict: live - fallback's lower bound > 0.
* ``drift``: the same with ``data.synthetic.drift.enabled=true`` (the regimes' dynamics swap
  every ``period_bars``). Verdict: live - frozen's lower bound > 0 (retraining pays).
* ``null``: ``generate_null_bars`` (GARCH(1,1)-t, no drift, no regimes). Nothing has an edge,
  so the loop must do no harm: every slot keeps its fallback (nothing published), or what it
  ships earns no less than the fallback: live - fallback >= -(the exploration budget).
* ``eurusd``: ``backtesting``'s EURUSD hourly sample (5,000 bars, one symbol).
* ``sp500``: ``arch``'s S&P 500 daily 1999-2018 (about 5,000 sessions).

On the real sets the verdict is what each slot shipped per cycle and live - fallback with its
CI. Nothing here is tuned to pass: the lines report the figures either way.

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

#: world -> (cycles, cycle bars, initial bars) defaults; the real sets' fit their length
#: (EURUSD 5,000 hourly bars, S&P 500 about 5,000 sessions: 2,000 + 6 x 500).
PLANS: dict[str, tuple[int, int, int]] = {
    "demo": (6, 2000, 8000),
    "drift": (6, 2000, 8000),
    "null": (6, 2000, 8000),
    "eurusd": (6, 500, 2000),
    "sp500": (6, 500, 2000),
}
#: synthetic worlds ``edgeflow replay`` generates itself (no ``--data``): their ``--set``s
GENERATED: dict[str, tuple[str, ...]] = {
    "demo": (),
    "drift": ("data.synthetic.drift.enabled=true",),
}
#: which verdict answers each world's question (see the module docstring)
QUESTION: dict[str, str] = {
    "demo": "live - fallback lower bound > 0",
    "drift": "live - frozen lower bound > 0",
    "null": "live - fallback >= -(exploration budget)",
    "eurusd": "what each slot ships; live - fallback with its CI",
    "sp500": "what each slot ships; live - fallback with its CI",
}


def n_bars(cycles: int, cycle_bars: int, initial: int) -> int:
    """Bars per symbol a synthetic world needs for these cycles (no more: the replay
    refuses nothing, but a longer series would change the default initial span)."""
    return initial + cycles * cycle_bars


def world_bars(world: str, seed: int, bars: int) -> pd.DataFrame:
    """The world's bars in the bar contract (ts, symbol, open, high, low, close, volume);
    ``bars`` per symbol for the null world (the real sets are what they are)."""
    if world == "null":
        from configs import load_config
        from pipelines.data.synthetic import generate_null_bars

        cfg = load_config(ROOT / "configs" / "demo.yaml").data.synthetic
        cfg = cfg.model_copy(update={"n_bars": bars})
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
    bars = n_bars(cycles, cycle_bars, initial)
    if world in GENERATED:
        source = ["--set", f"data.synthetic.n_bars={bars}"]
        for item in GENERATED[world]:
            source += ["--set", item]
        shown = source
    else:
        data = tmp / f"{world}.csv"
        world_bars(world, seed, bars).to_csv(data, index=False)
        source, shown = ["--data", str(data)], ["--data", f"<{world}.csv>"]
    head = [str(ROOT / ".venv" / "bin" / "edgeflow"), "replay"]
    tail = [
        "--cycles",
        str(cycles),
        "--cycle-bars",
        str(cycle_bars),
        "--initial-bars",
        str(initial),
    ]
    cmd = [*head, *source, *tail, "--workdir", str(tmp / "work")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{world}: replay failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    summary: dict[str, Any] = json.loads(proc.stdout)
    summary["wall_s"] = wall
    summary["command"] = " ".join(["edgeflow", "replay", *shown, *tail])
    summary["commit"] = _commit()
    return summary


def _commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


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


def _shipped(versions: dict[str, str | None]) -> str:
    """What each slot served during a cycle (``-``: its fallback)."""
    return ", ".join(f"{slot} {v or '-'}" for slot, v in sorted(versions.items())) or "-"


def verdict_line(world: str, summary: dict[str, Any]) -> str:
    """The world's answer to its question (``QUESTION``), from the replay's figures."""
    fb, fr = summary.get("live_minus_fallback") or {}, summary.get("live_minus_frozen") or {}
    budget = summary.get("exploration_budget_bps")
    if world == "demo":
        ok = bool(summary.get("beats_fallback"))
        figure = _est(fb)
    elif world == "drift":
        ok = bool(summary.get("beats_frozen"))
        figure = _est(fr)
    elif world == "null":
        ok = bool(summary.get("within_exploration_budget"))
        figure = f"{_est(fb)} against -{budget:.2f}" if budget is not None else _est(fb)
    else:
        return f"{QUESTION[world]}: live - fallback {_est(fb)} bps (see the table)"
    return f"{QUESTION[world]}? **{'yes' if ok else 'no'}** ({figure} bps)"


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
        f"Commit: `{summary.get('commit', 'unknown')}`; fallback arm "
        f"`{summary.get('fallback_arm', '-')}`. Plot: `{summary.get('plot', '-')}`",
        "",
        "| cycle | decisions | live | frozen | fallback | live - fallback | live - frozen "
        "| best arm before (arm) | oracle | live slots |",
        "|---:|---:|---|---|---|---|---|---|---|---|",
    ]
    for c in summary["cycles"]:
        lines.append(
            f"| {c['cycle']} | {c['decisions']} | {_est(c['live'])} | {_est(c['frozen'])} | "
            f"{_est(c.get('fallback'))} | {_est(c.get('live_minus_fallback'))} | "
            f"{_est(c.get('live_minus_frozen'))} | "
            f"{_est(c['best_arm_value'])} (`{c['best_arm']}`) | {_est(c['oracle'])} | "
            f"{_shipped(c['live_versions'])} |"
        )
    lines += [
        "",
        f"Published by the trainings: {_published(summary)}.  ",
        f"Verdict ({QUESTION[world]}): {verdict_line(world, summary)}  ",
        f"Live - frozen (the replay's own): {summary['verdict']}  ",
        f"Live - fallback (the replay's own): {summary.get('fallback_verdict', '-')}",
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
    parser.add_argument(
        "--world", nargs="+", default=["demo", "drift", "null"], choices=sorted(PLANS)
    )
    parser.add_argument("--cycles", type=int, default=None)
    parser.add_argument("--seed", type=int, default=11, help="The null world's seed.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replay.md")
    parser.add_argument("--json-dir", type=Path, default=None, help="Keep each summary here.")
    args = parser.parse_args()
    sections = {}
    for world in args.world:
        cycles, cycle_bars, initial = PLANS[world]
        load = os.getloadavg()[0]
        summary = run_world(world, args.cycles or cycles, cycle_bars, initial, args.seed)
        sections[world] = section(world, summary, load)
        print(sections[world], flush=True)
        if args.json_dir is not None:
            args.json_dir.mkdir(parents=True, exist_ok=True)
            (args.json_dir / f"{world}.json").write_text(json.dumps(summary, indent=1))
        # each world lands as soon as it is done (two processes may share the file)
        write_results({world: sections[world]}, args.out)


if __name__ == "__main__":
    main()
