"""CLI start-up: wall time of ``edgeflow --help`` and each subcommand's ``--help``.

Run: ``.venv/bin/python benchmarks/bench_cli.py [--repeats 5] [--before REF]``

Each command runs in a fresh interpreter (as the console script does), ``--repeats`` times;
the table shows the median and the best wall time. With ``--before REF`` the same commands
also run against the code at git ref ``REF`` (exported to a temporary folder with
``git archive``), so the before/after figures come from one session on one machine.
Writes benchmarks/results/cli.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitref import export_ref

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    ["--help"],
    ["run", "--help"],
    ["collect", "--help"],
    ["verify", "--help"],
    ["models", "--help"],
    ["rollback", "--help"],
    ["publish", "--help"],
    ["health", "--help"],
    ["config", "show", "--help"],
    ["runs", "--help"],
)
ENTRY = "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
GOAL_S = 0.5


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(tree: Path, args: list[str], repeats: int) -> tuple[float, float, float, int]:
    """Median and best wall time, median CPU time (user + system) and the worst exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env["PYTHONPATH"] = str(tree)
    times, cpus, code = [], [], 0
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(repeats):
            c, t = _cpu(), time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", ENTRY, *args], cwd=cwd, env=env, capture_output=True
            )
            times.append(time.perf_counter() - t)
            cpus.append(_cpu() - c)
            code = max(code, out.returncode)
    return statistics.median(times), min(times), statistics.median(cpus), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", default=None, help="git ref to compare against")
    args = parser.parse_args()
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before = export_ref(args.before, Path(tmp)) if args.before else None
        for command in COMMANDS:
            after = _time(ROOT, list(command), args.repeats)
            old = _time(before, list(command), args.repeats) if before else None
            rows.append((command, old, after))
            print(" ".join(command), old, after, flush=True)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "benchmarks/bench_cli.py" + (f" --before {args.before}" if args.before else "")
    lines = [
        "## CLI start-up",
        "",
        f"`.venv/bin/python {cmd} --repeats {args.repeats}`, {when}, "
        f"{platform.machine()} {os.cpu_count()} cores, shared (load average "
        f"{load[0]:.2f} / {load[1]:.2f} at start), Python {platform.python_version()}. Each "
        "command in a fresh interpreter, as the console script runs; median and best of "
        f"{args.repeats} wall times, and the median CPU time (user + system), which "
        f"depends less on how busy the machine is. Goal: {GOAL_S} s.",
        "",
    ]
    if args.before:
        lines += [
            f"| command | before ({args.before}): wall median / best, CPU | "
            f"now: wall median / best, CPU | now wall median <= {GOAL_S} s |",
            "|---|---|---|---|",
        ]
    else:
        lines += ["| command | wall median / best, CPU | <= goal |", "|---|---|---|"]

    def cell(m: tuple[float, float, float, int]) -> str:
        text = f"{m[0]:.2f} s / {m[1]:.2f} s, {m[2]:.2f} s"
        return text + ("" if m[3] == 0 else f" (exit {m[3]})")

    for command, old, now in rows:
        cells = [f"`edgeflow {' '.join(command)}`"]
        if args.before:
            cells.append("-" if old is None else cell(old))
        ok = "yes" if now[0] <= GOAL_S else "no"
        lines.append("| " + " | ".join([*cells, cell(now), ok]) + " |")
    lines += [
        "",
        "Why it is fast now: `flows/cli/` imports only typer at start-up; settings, pandas, "
        "the registry and Prefect are imported inside the command that runs, and the store "
        "commands (`flows/cli/commands/registry.py`) are loaded only when one of them is used (the "
        "top-level help lists them from one-liners). Before, `main()` imported Prefect (via "
        "`flows.health`) and the registry for every invocation, `--help` included. The store "
        "commands' module imports neither the settings (pydantic) nor the consumer side of "
        "the registry (numpy, onnxruntime) until a command runs: `pipelines.registry` loads "
        "`ModelClient` and its kin on first use.",
        "",
    ]
    out = ROOT / "benchmarks" / "results" / "cli.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
