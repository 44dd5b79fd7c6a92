"""The demo end to end from the command line: wall time and peak RSS, fresh workdir each run.

Runs ``edgeflow run --config configs/demo.yaml --workdir <fresh>`` N times, one after the
other, and records for each the wall time, the CLI process's peak RSS (``ru_maxrss`` from
``wait4``: what ``/usr/bin/time -v`` reports) and the peak summed RSS of its process tree
(the CLI and Prefect's local API, sampled every 0.1 s), plus the models' outcomes so the runs
can be seen to agree. Writes benchmarks/results/demo.md.

    .venv/bin/python benchmarks/bench_demo.py [--runs 3] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def one_run(config: str, sets: list[str]) -> dict[str, Any]:
    """One CLI run in a fresh workdir; its wall time, peaks and summary."""
    work = Path(tempfile.mkdtemp(prefix="edgeflow-bench-demo-"))
    cmd = [str(ROOT / ".venv" / "bin" / "edgeflow"), "run", "--config", config]
    cmd += ["--workdir", str(work / "wd")]
    for item in sets:
        cmd += ["--set", item]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    log = (work / "stderr.log").open("wb")  # Prefect's log; a pipe left unread would block
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log)
    tree_peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal tree_peak
        handle = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree_peak = max(tree_peak, _tree_rss(handle))
            except psutil.Error:
                return
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    log.close()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    code = proc.returncode
    if code != 0:
        tail = (work / "stderr.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"demo run failed with exit code {code}:\n{tail}")
    shutil.rmtree(work, ignore_errors=True)
    summary = json.loads(stdout[stdout.index(b"{") :])
    return {
        "wall": wall,
        "rss": usage.ru_maxrss * 1024,  # KiB on Linux
        "tree": tree_peak,
        "load": load,
        "models": {k: v["status"] for k, v in summary["models"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    runs = [one_run(args.config, args.sets) for _ in range(args.runs)]
    if any(r["models"] != runs[0]["models"] for r in runs):
        raise SystemExit("the runs disagree on the models' outcomes")
    sets = "".join(f" --set {s}" for s in args.sets)
    outcome = ", ".join(f"{k} {v}" for k, v in runs[0]["models"].items())
    walls = [r["wall"] for r in runs]
    rss = [r["rss"] / MIB for r in runs]
    lines = [
        "## Demo end to end from the command line",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_demo.py --runs {args.runs}{sets}` "
        f"(each run: `.venv/bin/edgeflow run --config {args.config} --workdir <fresh>`, "
        "once `.venv` exists)  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU  ",
        f"Date: {datetime.now(UTC).date().isoformat()}",
        "",
        "| run | load average at start | wall s | peak RSS of the CLI process, MiB "
        "| peak RSS of its process tree (with Prefect's local API), MiB |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {i + 1} | {r['load']:.1f} | {r['wall']:.1f} | {r['rss'] / MIB:.0f} "
            f"| {r['tree'] / MIB:.0f} |"
            for i, r in enumerate(runs)
        ],
        "",
        f"Wall {min(walls):.1f}-{max(walls):.1f} s, peak RSS {min(rss):.0f}-{max(rss):.0f} MiB "
        f"({min(rss) * MIB / 1e9:.3f}-{max(rss) * MIB / 1e9:.3f} GB) in {len(runs)} runs. "
        f"Every run: {outcome}. The CLI's peak is `ru_maxrss` of the process (what "
        "`/usr/bin/time -v` reports); the tree's is sampled every 0.1 s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results" / "demo.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
