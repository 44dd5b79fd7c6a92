"""``edgeflow run`` refuses bad input, and stops on too little history, before Prefect starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys; from flows.cli import main; code = main(sys.argv[1:]); "
    "heavy = sorted(m for m in ('prefect', 'mlflow', 'torch', 'lightgbm') if m in sys.modules); "
    "print('HEAVY=' + ','.join(heavy)); sys.exit(code)"
)


def _run(tmp_path: Path, data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env.pop("TMPDIR", None)
    env["PYTHONPATH"] = str(ROOT)
    args = ["run", "--config", str(ROOT / "configs" / "demo.yaml"), "--data", str(data)]
    args += ["--workdir", str(tmp_path / "wd")]
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bad_input_is_one_line_exit_2_without_prefect(tmp_path: Path) -> None:
    out = _run(tmp_path, ROOT / "tests" / "data" / "bad" / "nan_value.csv")
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "nan_value.csv: column 'close', row 5" in lines[0]
    assert "HEAVY=\n" in out.stdout  # refused before Prefect, MLflow and the trainers load
    assert not (tmp_path / "wd" / "prefect").exists()
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
    assert heavy.strip() == ""
    assert not (tmp_path / "wd" / "prefect").exists()


API_PROBE = """
import sys
from pathlib import Path
from flows.runtime import prepare_environment
prepare_environment(Path(sys.argv[1]))
from flows.cli import _start_local_api
wait = _start_local_api()
wait()
from prefect.server.api.server import SubprocessASGIServer
from prefect.client.orchestration import get_client
server = SubprocessASGIServer()
assert server.running and server.server_process is not None
with get_client(sync_client=True) as client:
    assert str(client.api_url).rstrip('/') == server.api_url.rstrip('/'), client.api_url
    assert client.api_healthcheck() is None
print('PID', server.server_process.pid)
"""


def test_local_api_started_early_is_the_one_the_flow_uses(tmp_path: Path) -> None:
    """The early start leaves Prefect's per-process server running; a client finds it rather
    than starting a second one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env.pop("TMPDIR", None)
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", API_PROBE, str(tmp_path / "wd")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "PID" in out.stdout
    assert (tmp_path / "wd" / "prefect" / "prefect.db").is_file()  # the workdir's database


def test_no_local_api_when_a_server_is_configured() -> None:
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import _start_local_api

    before = dict(SubprocessASGIServer._instances)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        _start_local_api()()
    assert SubprocessASGIServer._instances == before  # nothing started
