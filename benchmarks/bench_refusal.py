"""How fast ``edgeflow run``, ``collect`` and ``replay`` refuse bad input (and ``run`` stops on too
little history).

Run: ``.venv/bin/python benchmarks/bench_refusal.py [--before REF] [--after-only]``

Each case runs ``edgeflow COMMAND --data FILE --workdir <fresh temporary folder>`` once in a fresh
interpreter, as the console script does, and records the wall time, the exit code and the
first line of stderr. With ``--before REF`` the same cases also run against the code at git
ref ``REF`` (exported with ``git archive``), so both columns come from one machine and one
session. Writes benchmarks/results/refusal.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitref import export_ref

ROOT = Path(__file__).resolve().parents[1]
CASES = (
    ("run", "tests/data/bad/missing_column.csv", "missing column (fatal on read)"),
    ("run", "tests/data/bad/nan_value.csv", "quarantine over the limit (fatal in the checks)"),
    (
        "run",
        "tests/data/good/YAHOO_daily.csv",
        "valid, 45 bars: too little history for every model",
    ),
    ("collect", "tests/data/bad/nan_value.csv", "quarantine over the limit"),
    ("replay", "tests/data/bad/nan_value.csv", "quarantine over the limit"),
)
ENTRY = "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
GOAL_S = 3.0


def _run(tree: Path, command: str, data: str) -> tuple[float, int, str]:
    """Wall time, exit code and first stderr line (or first stdout status) of one run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env["PYTHONPATH"] = str(tree)
    with tempfile.TemporaryDirectory() as work:
        args = [command, "--config", str(tree / "configs/demo.yaml"), "--data", str(ROOT / data)]
        args += ["--workdir", str(Path(work) / "wd")]
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", ENTRY, *args], cwd=work, env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    if not lines:
        lines = [ln.strip() for ln in out.stdout.splitlines() if '"status"' in ln][:1]
    first = (lines[0] if lines else "").replace(str(ROOT) + "/", "")
    return wall, out.returncode, first[:110]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="git ref of the code before the change")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = export_ref(args.before, Path(tmp)) if args.before else None
        for command, data, what in CASES:
            after = _run(ROOT, command, data)
            before = _run(before_tree, command, data) if before_tree else None
            rows.append((command, data, what, before, after))
            print(command, data, before, after, flush=True)
    head = (
        "| command | input | case | "
        + ("before s (exit) | " if args.before else "")
        + "after s (exit) |"
    )
    lines = [
        "## Refusing bad input: `edgeflow COMMAND --data FILE` in a fresh workdir",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_refusal.py"
        f"{' --before ' + args.before if args.before else ''}` (one run per case)  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, shared and noisy "
        f"(load average {load:.1f} at start)  ",
        f"Date: {dt.datetime.now(dt.UTC).date().isoformat()}; goal: refused in <= {GOAL_S:g} s",
        "",
        head,
        "|---|---|---|" + ("---:|" if args.before else "") + "---:|",
    ]
    for command, data, what, before, after in rows:
        cells = [f"`{command}`", f"`{Path(data).name}`", what]
        if before is not None:
            cells.append(f"{before[0]:.2f} ({before[1]})")
        cells.append(f"{after[0]:.2f} ({after[1]})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "What the run printed (after):", ""]
    lines += [f"- `{c} {Path(d).name}`: `{a[2]}`" for c, d, _, _, a in rows]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results" / "refusal.md").write_text(text)


if __name__ == "__main__":
    main()
