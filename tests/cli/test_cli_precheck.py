"""``edgeflow run``, ``collect`` and ``replay`` refuse bad input, and ``run`` stops on too little
history, before Prefect starts."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys; from flows.cli import main; code = main(sys.argv[1:]); "
    "heavy = sorted(m for m in ('prefect', 'mlflow', 'torch', 'lightgbm') if m in sys.modules); "
    "print('HEAVY=' + ','.join(heavy)); "
    "from threadpoolctl import threadpool_info; "
    "print('BLAS=' + ','.join(str(p['num_threads']) for p in threadpool_info())); "
    "import os; print('OMP=' + os.environ.get('OMP_NUM_THREADS', '')); sys.exit(code)"
)
#: The same pools in a bare interpreter: what the environment alone gives (a box or a parent
#: that allows one CPU caps OpenBLAS at one thread whatever OMP_NUM_THREADS says).
BARE_POOLS = (
    "import numpy; from threadpoolctl import threadpool_info; "
    "print('BLAS=' + ','.join(str(p['num_threads']) for p in threadpool_info()))"
)


def _run(
    tmp_path: Path, data: Path, command: str = "run", **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env.pop("TMPDIR", None)
    for key in [k for k in env if k.endswith("_NUM_THREADS")]:
        env.pop(key)  # a variable a test process inherited would decide the pools' size
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT)
    args = [command, "--config", str(ROOT / "configs" / "demo.yaml"), "--data", str(data)]
    args += ["--workdir", str(tmp_path / "wd")]
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _pools(stdout: str) -> set[int]:
    """Thread counts of the native thread pools the probe found loaded (threadpoolctl)."""
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith("BLAS=")]
    return {int(n) for n in line.removeprefix("BLAS=").split(",") if n}


@pytest.mark.parametrize("command", ["run", "collect", "replay"])
def test_bad_input_is_one_line_exit_2_without_prefect(tmp_path: Path, command: str) -> None:
    out = _run(tmp_path, ROOT / "tests" / "data" / "bad" / "nan_value.csv", command)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "nan_value.csv: column 'close', row 5" in lines[0]
    assert "HEAVY=\n" in out.stdout  # refused before Prefect, MLflow and the trainers load
    # numpy's BLAS was loaded after the CLI set one thread per pool (flows.cli.runtime)
    assert _pools(out.stdout) == {1}, out.stdout
    assert not (tmp_path / "wd" / "prefect").exists()
    if command == "replay":  # replays read their bars into their own folder: nothing written
        assert not (tmp_path / "wd" / "replay").exists()
        return
    (run_dir,) = (tmp_path / "wd" / "runs").iterdir()
    assert (run_dir / "quarantine" / "quarantine.csv").is_file()  # the bad row, for the user


def test_too_little_history_stops_with_the_reason(tmp_path: Path) -> None:
    out = _run(tmp_path, ROOT / "tests" / "data" / "good" / "YAHOO_daily.csv")
    assert out.returncode == 0, out.stderr[-2000:]
    body, heavy = out.stdout.rsplit("HEAVY=", 1)
    summary = json.loads(body)
    assert summary["status"] == "skipped"
    assert summary["reason"].startswith("too little history for every model: ")
    assert {m["status"] for m in summary["models"].values()} == {"skipped"}
    assert heavy.splitlines()[0] == ""
    assert not (tmp_path / "wd" / "prefect").exists()


def test_a_thread_count_set_by_the_user_wins(tmp_path: Path) -> None:
    out = _run(tmp_path, ROOT / "tests" / "data" / "bad" / "nan_value.csv", OMP_NUM_THREADS="2")
    assert out.returncode == 2 and "OMP=2\n" in out.stdout, out.stdout + out.stderr[-500:]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    bare = subprocess.run(
        [sys.executable, "-c", BARE_POOLS],
        env={**env, "OMP_NUM_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # the pools are what the user's setting gives without the CLI (two threads on a box and a
    # parent that allow two CPUs; OpenBLAS caps at the CPUs it may use)
    assert _pools(out.stdout) == _pools(bare.stdout), out.stdout + bare.stdout


API_PROBE = """
import os, sys
from pathlib import Path
from flows.cli.runtime import prepare_environment
prepare_environment(Path(sys.argv[1]), flows=True)
from flows.cli.local_api import serve_local_api
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings

@flow(name="probe")
def probe() -> int:
    assert get_current_settings().flows.heartbeat_frequency is None  # a local server's runs
    return 7

with serve_local_api():
    assert probe() == 7
with get_client(sync_client=True) as client:
    assert str(client.api_url).rstrip("/") == os.environ["PREFECT_API_URL"].rstrip("/")
    assert client.api_healthcheck() is None
    (run,) = client.read_flow_runs()
    assert run.state.is_completed(), run.state
print("URL", os.environ["PREFECT_API_URL"])
print("SERVER-IMPORTED", "prefect.server.api.server" in sys.modules)
"""


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter, as the CLI starts: no Prefect settings inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env.pop("TMPDIR", None)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "wd")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_local_api_started_early_is_the_one_the_flow_uses(tmp_path: Path) -> None:
    """The early start's server is the one the flow reports to, with the run in the workdir's
    database, and the flow's process never imports Prefect's server package (its memory)."""
    out = _python(API_PROBE, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "URL http://127.0.0.1:" in out.stdout
    assert "SERVER-IMPORTED False" in out.stdout
    db = tmp_path / "wd" / "prefect" / "prefect.db"
    with sqlite3.connect(db) as con:  # the run is in the workdir's own database
        assert con.execute("SELECT count(*) FROM flow_run").fetchone() == (1,)
    port = int(out.stdout.split("URL http://127.0.0.1:")[1].split("/")[0])
    with socket.socket() as sock:  # stopped with the process: the port is free again
        sock.bind(("127.0.0.1", port))


def test_no_local_api_when_a_server_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import local_api

    spawned: list[object] = []
    monkeypatch.setattr(local_api, "_spawn", lambda *a: spawned.append(a))
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert local_api.start_local_api(Path("/nonexistent")) is None
    assert spawned == []  # nothing started


def test_a_server_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    from flows.cli.local_api import LocalApi

    log = tmp_path / "local-api.log"
    log.write_text("ERROR: the reason it died\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(RuntimeError, match=r"exited with code 3(?s:.)*the reason it died"):
        LocalApi(1, process, log, {}).wait(timeout=5)


def test_a_taken_port_is_found_in_this_starts_whole_output_only(tmp_path: Path) -> None:
    """Under load uvicorn's one-line bind error was followed by kilobytes of shutdown
    tracebacks, past the tail the failure message shows: the restart must still happen. A
    bind error from an earlier start in the same (appended) log must not trigger one."""
    from flows.cli.local_api import LocalApi

    log = tmp_path / "local-api.log"
    earlier = "ERROR: [Errno 98] error while attempting to bind: address already in use\n"
    log.write_text(earlier)
    now = earlier + "Traceback (most recent call last):\n" + "  lifespan shutdown\n" * 400
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with log.open("a") as f:
        f.write(now)
    api = LocalApi(1, process, log, {}, log_offset=len(earlier))
    assert len(api.output()) > 2000 and api.port_was_taken()
    log.write_text(earlier + "ERROR: Application startup failed. Exiting.\n")
    assert not api.port_was_taken()  # this start died for another reason


KILLED = """
import os, signal, sys
from pathlib import Path
from flows.cli.runtime import prepare_environment
prepare_environment(Path(sys.argv[1]), flows=True)
from flows.cli.local_api import start_local_api, wait_for_api
api = start_local_api(Path(os.environ["PREFECT_HOME"]))
wait_for_api(api)
print(api.process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no cleanup
"""


def test_a_killed_cli_leaves_no_server_behind(tmp_path: Path) -> None:
    import time

    import psutil

    out = _python(KILLED, tmp_path)
    assert out.returncode == -9, out.stderr[-3000:]
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.2)
    os.kill(pid, 9)
    raise AssertionError(f"the local API (pid {pid}) outlived its killed parent")


RETRY = """
import os, socket, sys
from pathlib import Path
from flows.cli.runtime import prepare_environment
prepare_environment(Path(sys.argv[1]), flows=True)
from flows.cli import local_api
taken = socket.socket()
taken.bind(("127.0.0.1", 0))
taken.listen()
ports = [taken.getsockname()[1]]  # the first port chosen is taken by the time uvicorn binds
real = local_api._free_port
local_api._free_port = lambda: ports.pop() if ports else real()
api = local_api.start_local_api(Path(os.environ["PREFECT_HOME"]))
first = api.port
local_api.wait_for_api(api)
assert api.port != first and os.environ["PREFECT_API_URL"] == api.url
assert api.env["PREFECT_UI_ENABLED"] == "0"  # the restart is the same ephemeral server
print("RESTARTED", first, api.port)
"""


def test_a_port_taken_meanwhile_restarts_the_server_on_another(tmp_path: Path) -> None:
    out = _python(RETRY, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESTARTED" in out.stdout
