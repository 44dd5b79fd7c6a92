"""How long ``edgeflow run`` takes to exit after Ctrl-C during training.

Run: ``.venv/bin/python benchmarks/bench_interrupt.py [--before REF] [--delays 1,6,14]``

Each case starts ``edgeflow run`` on the demo config in a fresh workdir, waits until the flow
submits the four trainings (its ``compute_signals`` task finished), waits DELAY more seconds,
sends SIGINT to the run's process group as a terminal's Ctrl-C does, and records the seconds
until the process exits, its exit code, and how each training task ended. With ``--before
REF`` the same cases also run against the code at git ref ``REF`` (exported with ``git
archive``), interleaved, so both columns come from one machine and one session. Writes
benchmarks/results/interrupt.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitref import export_ref

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
TRAINING_STARTS = "Task run 'compute_signals"
#: ``train_<model>`` once running; a training still waiting for its upstream is ``train-<id>``
ENDED = re.compile(r"Task run '(train[_-]\w+)' - Finished in state (\w+)")


def _interrupt(tree: Path, delay: float) -> tuple[float, int, str]:
    """Seconds from SIGINT to exit, the exit code, and ``model:state`` of each training."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env["PYTHONPATH"] = str(tree)
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "run.log"
        args = ["run", "--config", str(tree / "configs/demo.yaml"), "--workdir", f"{work}/wd"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", ENTRY, *args],
                cwd=work,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a job of its own, as a shell starts one
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        deadline = time.monotonic() + 300
        while TRAINING_STARTS not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the run never reached training:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(delay)
        t0 = time.perf_counter()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        code = proc.wait(timeout=600)
        wall = time.perf_counter() - t0
        ended = " ".join(f"{m}:{s}" for m, s in ENDED.findall(log.read_text(errors="replace")))
    return wall, code, ended


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="git ref of the code before the change")
    parser.add_argument("--delays", default="1,6,14", help="seconds into training, comma-separated")
    args = parser.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = export_ref(args.before, Path(tmp)) if args.before else None
        for delay in delays:
            before = _interrupt(before_tree, delay) if before_tree else None
            after = _interrupt(ROOT, delay)
            rows.append((delay, before, after))
            print(delay, before, after, flush=True)
    flag = f" --before {args.before}" if args.before else ""
    lines = [
        "## Ctrl-C during training: seconds from SIGINT to exit (`edgeflow run`, demo config)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_interrupt.py{flag} --delays {args.delays}` "
        "(one run per case)  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, shared and noisy "
        f"(load average {load:.1f} at start)  ",
        f"Date: {dt.datetime.now(dt.UTC).date().isoformat()}. SIGINT goes DELAY seconds after "
        "the flow submitted the trainings, to the run's process group (as a terminal's Ctrl-C); "
        "each training's final state is from the run's log.",
        "",
        "| delay s | " + ("before: s (exit) | " if args.before else "") + "after: s (exit) |",
        "|---:|" + ("---:|" if args.before else "") + "---:|",
    ]
    for delay, before, after in rows:
        cells = [f"{delay:g}"]
        if before is not None:
            cells.append(f"{before[0]:.1f} ({before[1]})")
        cells.append(f"{after[0]:.1f} ({after[1]})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "How the trainings ended:", ""]
    for delay, before, after in rows:
        if before is not None:
            lines.append(f"- {delay:g} s, before: {before[2] or '-'}")
        lines.append(f"- {delay:g} s, after: {after[2] or '-'}")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results" / "interrupt.md").write_text(text)


if __name__ == "__main__":
    main()
