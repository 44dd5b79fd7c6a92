"""The deployments in prefect.yaml against a real ``prefect server start`` on 127.0.0.1.

The scheduled runs are the product's main use, and they broke without any unit test noticing:
a dependency bump made the server's scheduler fail on every loop and ``prefect deploy`` stop
after its first deployment. So this test drives the real CLI the README documents: start a
server with a throwaway PREFECT_HOME, create the process pool, ``prefect deploy --all``, see the
scheduler put cron-timed runs on every deployment, start a worker, run a small collect by hand
and watch it reach Completed; then, in a scratch checkout as ``make demo`` would leave it (the
demo profile's bars in ``.edgeflow``), run the training deployment with its default parameters
and check its own artifacts and final states, and see a run pointed at the demo's workdir
refused with one line; then stop every process it started and check none is left.
Every command and its key output lines go to ``transcript.txt`` in the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
POOL = "edgeflow-process"
COLLECT = "edgeflow-collect-scheduled/collect"
EXPECTED = {
    "edgeflow-collect-scheduled/collect": "*/30 * * * *",
    "edgeflow-training-scheduled/training": "0 */6 * * *",
    "edgeflow-health/health": "15,45 * * * *",
}
# Minutes at which each cron fires; a scheduled run at another minute was not made from it.
CRON_MINUTES = {
    "edgeflow-collect-scheduled/collect": {0, 30},
    "edgeflow-training-scheduled/training": {0},
    "edgeflow-health/health": {15, 45},
}
KEY_LINE = re.compile(
    r"successfully created|Created (work pool|flow run)|UUID|Parameters|Paused|finished|"
    r"Completed|Failed|Crashed|Error|Traceback|422|^\s*│ edgeflow-|prefect\.(worker|flow-run)\."
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """The processes one test started, its environment and its transcript."""

    tmp: Path
    port: int
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def transcript(self) -> Path:
        return self.tmp / "transcript.txt"

    def shown(self, text: str) -> str:
        """Transcript text with the tmp dir as ``<tmp>``, so transcripts compare across runs."""
        return text.replace(str(self.tmp), "<tmp>")

    def command(self, args: tuple[str, ...]) -> str:
        return self.shown(" ".join([Path(args[0]).name, *args[1:]]))

    def note(self, text: str) -> None:
        self.lines.append(f"[{time.monotonic() - self.t0:6.1f}s] {text}")
        self.transcript.write_text("\n".join(self.lines) + "\n")

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def start(self, name: str, *args: str) -> None:
        """Start a long-running command in its own process group (so it can be stopped whole)."""
        self.note(f"$ {self.command(args)} &   (log: {self.log(name).name})")
        with self.log(name).open("wb") as out:
            self.procs[name] = subprocess.Popen(
                list(args),
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def run(
        self, *args: str, timeout: float = 120, cwd: Path = ROOT
    ) -> subprocess.CompletedProcess[str]:
        """Run a CLI command to completion; its key lines go to the transcript."""
        self.note(f"$ {self.command(args)}")
        done = subprocess.run(
            list(args),
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        out = done.stdout + done.stderr
        for line in out.splitlines():
            if KEY_LINE.search(line) and "$ prefect" not in line:
                self.lines.append("    " + self.shown(re.sub(r"\s{2,}", " ", line.strip(" │"))))
        self.note(f"  -> exit {done.returncode}")
        return done

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.api + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def delete(self, path: str) -> None:
        req = urllib.request.Request(self.api + path, method="DELETE")
        with urllib.request.urlopen(req, timeout=30):
            pass

    def stop(self, name: str, grace: float = 20) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.note(f"stopped {name} (pid {proc.pid}, exit {proc.returncode})")

    def leftovers(self, settle: float = 10) -> list[psutil.Process]:
        """Processes on the machine that carry this test's PREFECT_HOME, after ``settle`` s.

        A child that got SIGTERM with its group may take a moment to exit: only the ones still
        alive after ``settle`` seconds count.
        """
        home = self.env["PREFECT_HOME"]
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("PREFECT_HOME") == home:
                    found.append(proc)
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        _, alive = psutil.wait_procs(found, timeout=settle)
        return list(alive)

    def stop_all(self) -> None:
        for name in ("worker", *list(self.procs)):
            self.stop(name)
        for proc in self.leftovers():  # started by this test, outside the groups above
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue


def _environment(tmp: Path, port: int) -> dict[str, str]:
    """The parent's environment minus its Prefect/edgeflow settings, plus this server's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env.update(
        PREFECT_HOME=str(tmp / "prefect-home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PREFECT_LOGGING_LEVEL="INFO",
        # The scheduler's main loop (default 60 s) and the worker's poll (default 10 s), shortened
        # so the test takes seconds; the code paths are the ones a default server runs.
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PREFECT_WORKER_QUERY_SECONDS="2",
        EDGEFLOW_REPO_DIR=str(ROOT),
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
    )
    return env


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    port = _free_port()
    st = Stack(tmp=tmp_path, port=port, env=_environment(tmp_path, port))
    try:
        yield st
    finally:
        st.stop_all()
        print(f"\ntranscript: {st.transcript}\n" + st.transcript.read_text())


def _wait_healthy(st: Stack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    server = st.procs["server"]
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log = st.log("server").read_text()
            pytest.fail(f"prefect server exited {server.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(st.api + "/health", timeout=5) as resp:
                if json.loads(resp.read()) is True:
                    st.note(f"GET {st.api}/health -> true")
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"prefect server not healthy after {timeout}s:\n{st.log('server').read_text()}")


def _deployments(st: Stack) -> dict[str, dict[str, Any]]:
    flows = {f["id"]: f["name"] for f in st.post("/flows/filter", {})}
    return {f"{flows[d['flow_id']]}/{d['name']}": d for d in st.post("/deployments/filter", {})}


def _scheduled_runs(st: Stack, deployment_ids: list[str]) -> list[dict[str, Any]]:
    body = {
        "flow_runs": {
            "deployment_id": {"any_": deployment_ids},
            "state": {"type": {"any_": ["SCHEDULED"]}},
        },
        "limit": 200,
    }
    return list(st.post("/flow_runs/filter", body))


def _wait_for_scheduled_runs(
    st: Stack, deps: dict[str, dict[str, Any]], timeout: float = 60
) -> dict[str, list[dict[str, Any]]]:
    """Poll until the scheduler has put at least one run on every deployment."""
    by_id = {d["id"]: name for name, d in deps.items()}
    deadline = time.monotonic() + timeout
    found: dict[str, list[dict[str, Any]]] = {}
    while time.monotonic() < deadline:
        found = {}
        for run in _scheduled_runs(st, list(by_id)):
            found.setdefault(by_id[run["deployment_id"]], []).append(run)
        if set(found) == set(deps):
            return found
        time.sleep(2)
    return found


def _tiny_collect_config(tmp: Path) -> Path:
    cfg = tmp / "tiny.yaml"
    cfg.write_text(
        "profile: tiny\nenvironment: dev\nseed: 7\n"
        "data:\n  source: synthetic\n  synthetic:\n    symbols: [SYN1]\n    n_bars: 500\n"
        '    start: "2024-01-01T00:00:00Z"\n    interval: 1h\n'
    )
    return cfg


def _checkout(tmp: Path) -> Path:
    """A checkout the worker's runs start in (``EDGEFLOW_REPO_DIR``): this repository's code
    and the shipped profiles, each as it is (its profile, its workdir, its source) but with
    the tiny budgets of tests/e2e/tiny.yaml and 1,500 bars, so a deployment run with its
    default parameters trains in seconds; nothing is written into the real checkout."""
    import yaml

    checkout = tmp / "checkout"
    (checkout / "configs").mkdir(parents=True)
    # the entrypoints' files; the packages they import come from PYTHONPATH (this checkout)
    (checkout / "flows").symlink_to(ROOT / "flows", target_is_directory=True)
    tiny = yaml.safe_load((ROOT / "tests" / "e2e" / "tiny.yaml").read_text())
    budgets = {k: v for k, v in tiny.items() if k in ("regime", "bandit", "sizer")}
    for profile in ("demo", "default"):
        spec = yaml.safe_load((ROOT / "configs" / f"{profile}.yaml").read_text())
        spec["data"]["synthetic"]["n_bars"] = 1500
        (checkout / "configs" / f"{profile}.yaml").write_text(yaml.safe_dump({**spec, **budgets}))
    return checkout


def _api_list(st: Stack, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(st.post(path, body))


def _deployment_run(st: Stack, name: str, *params: str) -> tuple[str, dict[str, Any]]:
    """``prefect deployment run NAME [--param k=v]... --watch``; the run's id and its record."""
    args = [a for p in params for a in ("--param", p)]
    done = st.run(
        PREFECT, "deployment", "run", name, *args,
        "--watch", "--watch-interval", "2", "--watch-timeout", "400",
        timeout=420,
    )  # fmt: skip
    found = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)
    assert found, done.stdout + done.stderr + st.log("worker").read_text()[-4000:]
    run_id = found.group(1)
    (run,) = _api_list(st, "/flow_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    st.note(
        f"flow run {run_id}: {run['state_type']} {run['state_name']}: {run['state']['message']}"
    )
    return run_id, run


def _tree(st: Stack, run_id: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The subflow runs of ``run_id`` and the task runs of the whole tree, by name."""
    subs = _api_list(
        st, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
    )
    ids = [run_id, *(s["id"] for s in subs)]
    tasks = _api_list(st, "/task_runs/filter", {"flow_runs": {"id": {"any_": ids}}, "limit": 200})
    return subs, {t["name"]: t for t in tasks}


def _demo_then_default_deployment_runs(st: Stack, checkout: Path) -> None:
    """After a demo-style run in the checkout, the training deployment with its default
    parameters trains (own workdir, own artifacts, honest states); pointed at the demo's
    workdir, training and collect are refused with one line as the printed run's message."""
    demo = st.run(
        str(BIN / "edgeflow"), "collect", "--config", "configs/demo.yaml", "--workdir", ".edgeflow",
        cwd=checkout, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert (checkout / ".edgeflow" / "data" / "bars").is_dir()

    run_id, run = _deployment_run(st, "edgeflow-training-scheduled/training")
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["state"]["message"] not in ("All states completed.", None), run["state"]
    assert re.search(r"\d+ blocked", run["state"]["message"]), run["state"]
    (summary_file,) = (checkout / ".edgeflow-default" / "runs").glob("*/summary.json")
    summary = json.loads(summary_file.read_text())
    # one word for what became of the run: the summary's status is the state's name
    assert run["state"]["name"].lower() == summary["status"] in ("blocked", "published"), run
    report_file = (checkout / summary["report"]).resolve()  # the workdir is the checkout's
    assert report_file.is_file()
    arts = _api_list(st, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    assert {a["key"] for a in arts} == {"edgeflow-run-summary", "edgeflow-gates", "edgeflow-report"}
    report = next(a for a in arts if a["key"] == "edgeflow-report")
    assert str(report_file) in report["data"] and "file://" not in report["data"]
    subs, tasks = _tree(st, run_id)
    assert [(s["state_type"], s["state"]["message"]) for s in subs] == [
        ("COMPLETED", run["state"]["message"])
    ]
    for model, outcome in summary["models"].items():
        if model == "recommendation" or outcome["status"] == "skipped":
            continue
        want = {"published": "Published", "blocked": "Blocked"}[outcome["status"]]
        assert tasks[f"settle_{model}"]["state"]["name"] == want, (model, outcome)
        # training ends before the publish: a model that passed its gates is named Passed
        trained = {"published": "Passed", "blocked": "Blocked"}[outcome["status"]]
        assert tasks[f"train_{model}"]["state"]["name"] == trained, model
    st.note(f"training deployment with default parameters: {run['state']['message']}")

    for name in ("edgeflow-training-scheduled/training", COLLECT):
        run_id, run = _deployment_run(st, name, "workdir=.edgeflow")
        message = run["state"]["message"] or ""
        assert run["state_type"] == "FAILED", run["state"]
        assert "profile 'demo'" in message and "\n" not in message, message
        assert "states failed" not in message, message
        subs, tasks = _tree(st, run_id)
        assert [s["state_type"] for s in subs] == ["FAILED"], subs
        claims = [t["state"] for n, t in tasks.items() if n.startswith("claim_bar_store")]
        assert [(c["type"], c["name"]) for c in claims] == [("FAILED", "Rejected")]
    worker_log = st.log("worker").read_text()
    assert "Unexpected result for failed state" not in worker_log, worker_log[-4000:]
    db = checkout / ".edgeflow" / "mlflow.db"
    if db.exists():  # the refused default-profile runs tracked nothing there
        from mlflow import MlflowClient

        names = {e.name for e in MlflowClient(f"sqlite:///{db}").search_experiments()}
        assert "edgeflow-default" not in names, names


@pytest.mark.integration
@pytest.mark.timeout(900)  # ~45 s on an idle 2-core box before the training runs, ~140 s at load 9
def test_deploy_schedule_worker_and_manual_run_on_a_real_server(stack: Stack) -> None:
    st = stack
    checkout = _checkout(st.tmp)  # the worker's runs start there (the pull step)
    st.env["EDGEFLOW_REPO_DIR"] = str(checkout)
    started = datetime.now(UTC).replace(microsecond=0)
    st.start("server", PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(st.port))
    _wait_healthy(st)

    pool = st.run(PREFECT, "work-pool", "create", POOL, "--type", "process")
    assert pool.returncode == 0, pool.stdout + pool.stderr

    deploy = st.run(PREFECT, "--no-prompt", "deploy", "--all", timeout=180)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "422 Unprocessable" not in deploy.stdout + deploy.stderr

    listed = st.run(PREFECT, "deployment", "ls")
    assert listed.returncode == 0, listed.stdout + listed.stderr

    deps = _deployments(st)
    assert set(deps) == set(EXPECTED)
    for name, dep in deps.items():
        crons = [s["schedule"].get("cron") for s in dep["schedules"] if s["active"]]
        assert crons == [EXPECTED[name]], (name, dep["schedules"])
        assert dep["work_pool_name"] == POOL

    runs = _wait_for_scheduled_runs(st, deps)
    assert set(runs) == set(EXPECTED), f"no scheduled run for {set(EXPECTED) - set(runs)}"
    for name, scheduled in runs.items():
        first = min(datetime.fromisoformat(r["expected_start_time"]) for r in scheduled)
        assert all(r["auto_scheduled"] for r in scheduled), name
        assert first >= started, (name, first)  # made from the cron now, not left over
        assert (first.minute, first.second) in {(m, 0) for m in CRON_MINUTES[name]}, (name, first)
        st.note(f"scheduler: {len(scheduled)} scheduled run(s) for {name}, first at {first}")

    server_log = st.log("server").read_text()
    assert "Can't evaluate bulk DML" not in server_log
    assert "Traceback" not in server_log, server_log[-4000:]

    # Cron runs must not fire into the repository's own .edgeflow while the worker is up.
    # Prefect's pause deletes only the runs still in the future: one already due (a cron minute
    # passed while the test ran) stays Scheduled and the worker would pick it up, so it goes too.
    paused = st.run(PREFECT, "--no-prompt", "deployment", "schedule", "pause", "--all")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    paused_at = datetime.now(UTC)  # any run due later than this, Prefect should have deleted
    deadline = time.monotonic() + 30
    while left := _scheduled_runs(st, [d["id"] for d in deps.values()]):
        assert time.monotonic() < deadline, "paused schedules kept their scheduled runs"
        for run in left:
            if datetime.fromisoformat(run["expected_start_time"]) <= paused_at:
                st.delete(f"/flow_runs/{run['id']}")
                st.note(f"deleted run due at {run['expected_start_time']} (before the pause)")
        time.sleep(1)
    st.note("schedules paused; no scheduled run left")

    st.start("worker", PREFECT, "worker", "start", "--pool", POOL, "--name", "it-worker")
    workdir = st.tmp / "workdir"
    manual = st.run(
        PREFECT,
        "deployment",
        "run",
        COLLECT,
        "--param",
        f"config={_tiny_collect_config(st.tmp)}",
        "--param",
        f"workdir={workdir}",
        "--watch",
        "--watch-interval",
        "2",
        "--watch-timeout",
        "150",
        timeout=180,
    )
    worker_log = st.log("worker").read_text()
    assert manual.returncode == 0, manual.stdout + manual.stderr + worker_log
    assert "Completed" in manual.stdout
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", manual.stdout)
    assert run_id, manual.stdout
    state = st.post("/flow_runs/filter", {"flow_runs": {"id": {"any_": [run_id.group(1)]}}})
    assert [r["state_type"] for r in state] == ["COMPLETED"]
    assert sorted(p.name for p in (workdir / "data" / "bars").iterdir()), "collect stored no bars"
    for line in worker_log.splitlines():
        if re.search(r"submitted|Finished in state|stored \d+ new bar", line):
            st.lines.append(f"    [worker] {line.strip()}")
    st.note(st.shown(f"flow run {run_id.group(1)}: COMPLETED; bars in {workdir / 'data' / 'bars'}"))

    _demo_then_default_deployment_runs(st, checkout)

    st.stop("worker")
    st.stop("server")
    left = st.leftovers()
    assert not left, [p.cmdline() for p in left]
    st.note("no process with this test's PREFECT_HOME left")
    made = ", ".join(f"{name.split('/')[1]} {len(r)}" for name, r in sorted(runs.items()))
    st.note(
        f"SUMMARY: {len(deps)} deployments created; scheduled runs made by the scheduler: {made}; "
        f"manual collect run COMPLETED; training with default parameters after a demo-style "
        f"collect COMPLETED with its artifacts; refused runs FAILED with one line; no process left"
    )
