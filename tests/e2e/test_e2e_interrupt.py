"""Ctrl-C during training, as a user presses it at a terminal: the terminal sends SIGINT to
the whole foreground process group. The trainings stop at their next step instead of running
to the end on their threads, the local API (its own session) outlives the signal so the flow
run is recorded as Crashed, the CLI exits 130 with one line, and nothing it started is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("edgeflow")
#: The flow logs this when the four trainings are about to be submitted.
TRAINING_STARTS = "Task run 'compute_signals"


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"exited {proc.returncode} first:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in {timeout} s"
        time.sleep(0.2)


def test_ctrl_c_stops_the_running_trainings_and_leaves_no_process(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(  # the demo's data: each training runs for seconds
            [str(CLI), "run", "--workdir", str(tmp_path / "wd")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            # a job of its own, as a shell starts one at a terminal; SIGINT not ignored even
            # when pytest itself runs in the background
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        _wait_for(log, TRAINING_STARTS, proc, timeout=300)
        time.sleep(1.0)  # the trainings are on their threads now
        started = psutil.Process(proc.pid).children(recursive=True)  # the local API among them
        before = len(log.read_bytes())
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C at the terminal does
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text(errors="replace")
    assert code == 130, text[-3000:]
    after = log.read_bytes()[before:].decode(errors="replace").splitlines()
    finished = [line for line in after if "Task run 'train_" in line and "Finished in" in line]
    # without the stop, the trainings that had started ran on to Completed before the exit
    assert finished and all("Crashed" in line for line in finished), "\n".join(finished)
    flow_end = [line for line in after if "Flow run" in line and "Finished in state" in line]
    assert flow_end and "Crashed" in flow_end[-1], "\n".join(flow_end) or text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert text.rstrip().splitlines()[-1].startswith("interrupted:"), text[-1000:]
    time.sleep(2)
    alive = [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {alive}"
    runs = list((tmp_path / "wd" / "runs").iterdir())
    assert len(runs) == 1 and not (runs[0] / "summary.json").exists()
