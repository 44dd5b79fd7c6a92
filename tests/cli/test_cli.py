"""The ``edgeflow`` CLI in-process: usage errors, help, --workdir, --json, config show, runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app, main

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "configs" / "demo.yaml")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No EDGEFLOW_* from the caller; run from an empty folder that must stay empty."""
    for name in list(os.environ):
        if name.startswith("EDGEFLOW_"):
            monkeypatch.delenv(name)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "error: edgeflow: missing command"),
        (["trian"], "error: edgeflow: No such command 'trian'."),
        (["runz"], "Did you mean 'run', 'runs'?"),
        (["run", "--confg", "x"], "No such option: --confg (Possible options: --config)"),
        (["run", "--force", "true"], "flags take no value"),
        (["verify", "--nope"], "error: edgeflow verify: No such option: --nope"),
        (["runs", "open"], "Missing argument 'ID'"),
        (["runs", "--limit", "0"], "Invalid value for '--limit'"),  # not "no runs"
        (["run", "-c", DEMO, "--store", "ftp://x"], "unsupported store scheme 'ftp'"),
        (["run", "-c", DEMO, "--store", "s3:/no-bucket"], "an s3 store needs a bucket"),
        (["collect", "-c", DEMO, "--data", "no/such.csv"], "no/such.csv: path does not exist"),
        (["models", "--workdir"], "error: edgeflow models: Option '--workdir' requires an"),
        (["runs", "--limit"], "(see 'edgeflow runs --help')"),
    ],
)
def test_cli_usage_error_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, out, err = _main(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and "Traceback" not in err
    if not args:
        assert "Commands:" in out  # a bare `edgeflow` still shows what there is


def test_cli_help_shows_flags_as_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(capsys, "run", "--help")
    assert code == 0
    assert "--force " in out and "<bool>" not in out
    assert "--set KEY=VALUE" in out and "--workdir" in out
    for command in ("verify", "models", "rollback", "publish", "health", "collect"):
        code, out, _ = _main(capsys, command, "--help")
        assert code == 0 and "--workdir" in out and "<bool>" not in out, command
    for command in ("verify", "models"):
        _, out, _ = _main(capsys, command, "--help")
        assert "--json" in out


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(capsys, "--version")
    assert code == 0 and out.startswith("edgeflow ")


def test_cli_top_help_lists_lazy_commands_without_heavy_imports() -> None:
    script = (
        "import sys; from flows.cli import main; code = main(['--help']); "
        "print(code, [m for m in ('prefect', 'pandas', 'mlflow', 'pipelines.registry', "
        "'configs.settings') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip().endswith("0 []"), out
    for command in ("verify", "models", "rollback", "publish", "runs", "config"):
        assert f"\n  {command} " in out


def _publish(capsys: pytest.CaptureFixture[str], workdir: Path, tmp_path: Path) -> Path:
    artefact = tmp_path / "latest_recommendation.json"
    artefact.write_text('{"ok": true}')
    store = f"file://{workdir / 'store'}"
    code, out, err = _main(
        capsys, "publish", store, str(artefact), "--model", "rec", "--workdir", str(workdir)
    )
    assert code == 0, err
    assert "published rec/v000001" in out
    return workdir / "store"


def test_cli_store_commands_use_the_workdirs_key_and_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, _clean_env: Path
) -> None:
    wd = tmp_path / "wd"
    _publish(capsys, wd, tmp_path)
    assert (wd / "keys" / "dev.key").is_file()  # the workdir's dev key, created there
    code, out, err = _main(capsys, "verify", "--workdir", str(wd), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["verified"] == doc["total"] == 1
    assert doc["models"][0]["model"] == "rec" and doc["models"][0]["ok"] is True
    code, out, _ = _main(capsys, "models", "-w", str(wd), "--json")
    assert code == 0
    models = json.loads(out)["models"]
    assert models[0]["live"] == "v000001" and models[0]["versions"][0]["status"] == "live"
    # Another workdir has another dev key: the same store does not verify with it.
    other = tmp_path / "other"
    _publish(capsys, other, tmp_path)
    code, out, _ = _main(capsys, "verify", f"file://{wd / 'store'}", "-w", str(other), "--json")
    assert code == 1 and json.loads(out)["models"][0]["ok"] is False
    code, out, _ = _main(capsys, "rollback", "--model", "rec", "-w", str(wd))
    assert code == 2  # nothing older to roll back to: a user error, one line
    assert list(_clean_env.iterdir()) == []  # nothing written in the current folder


def test_cli_every_store_command_is_reachable_and_heartbeat_uses_the_workdir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, _clean_env: Path
) -> None:
    import typer

    from flows.cli.app import LAZY_COMMANDS
    from flows.cli.commands.registry import register

    sub = typer.Typer()
    register(sub)
    registered = {c.name for c in sub.registered_commands}
    assert registered == set(LAZY_COMMANDS)  # each one is listed in --help and loads on use
    for command in sorted(registered):
        code, out, _ = _main(capsys, command, "--help")
        assert code == 0 and "--workdir" in out, command
    wd = tmp_path / "wd"
    _publish(capsys, wd, tmp_path)
    code, out, err = _main(capsys, "heartbeat", "-w", str(wd))
    assert code == 0, err
    assert out.startswith("rec: v000001 re-signed (sequence 2)")
    code, out, _ = _main(capsys, "models", "-w", str(wd), "--json")
    assert json.loads(out)["models"][0]["live"] == "v000001"
    assert list(_clean_env.iterdir()) == []


def test_cli_config_show_names_each_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEFLOW_TRAINING__MIN_NEW_BARS", "5")
    monkeypatch.setenv("EDGEFLOW_HMAC_KEYS", "k1:" + "ab" * 32)
    code, out, err = _main(
        capsys, "config", "show", "-c", "demo", "--set", "seed=3", "-w", "/tmp/x", "--json"
    )
    assert code == 0, err
    rows = {r["key"]: r for r in json.loads(out)}
    assert rows["seed"]["value"] == 3 and rows["seed"]["source"] == "--set"
    assert rows["workdir"]["source"] == "--workdir"
    assert rows["profile"]["source"].startswith("file:") and rows["profile"]["value"] == "demo"
    assert rows["training.min_new_bars"] == {
        "key": "training.min_new_bars",
        "value": 5,
        "source": "env:EDGEFLOW_TRAINING__MIN_NEW_BARS",
    }
    assert rows["data.synthetic.n_bars"]["source"].startswith("file:")  # demo.yaml sets it
    assert rows["sizer.total_timesteps"]["source"] == "default"  # demo.yaml does not
    assert rows["data.files.timezone"] == {
        "key": "data.files.timezone",
        "value": None,
        "source": "default",
    }
    assert "ab" * 32 not in out  # secrets never enter the settings, so never shown
    code, text, _ = _main(capsys, "config", "show", "-c", "demo")
    assert code == 0 and "mlflow.experiment" in text and "edgeflow-demo" in text


def test_cli_mlflow_experiment_per_profile(capsys: pytest.CaptureFixture[str]) -> None:
    from configs.settings import load_config

    demo, default = load_config("demo"), load_config("default")
    assert demo.mlflow.experiment == "edgeflow-demo"
    assert default.mlflow.experiment == "edgeflow-default"
    assert demo.mlflow.registered_model_name("regime") == "edgeflow-demo-regime"
    assert load_config(overrides={"profile": "cloud"}).mlflow.experiment == "edgeflow-cloud"
    explicit = load_config(overrides={"profile": "cloud", "mlflow.experiment": "mine"})
    assert explicit.mlflow.experiment == "mine"


def _fake_run(workdir: Path, run_id: str, status: str, models: dict[str, str]) -> Path:
    folder = workdir / "runs" / run_id
    (folder / "report").mkdir(parents=True)
    report = folder / "report" / "index.html"
    report.write_text("<html></html>")
    summary = {
        "status": status,
        "run_id": run_id,
        "started_at": f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}T00:00:00+00:00",
        "models": {k: {"status": v} for k, v in models.items()},
        "report": str(report),
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return report


def test_cli_runs_list_and_open(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    code, out, _ = _main(capsys, "runs", "-w", str(wd))
    assert code == 0 and "no runs under" in out
    old = _fake_run(wd, "20260101T000000000000Z", "ok", {"regime": "published"})
    new = _fake_run(
        wd,
        "20260102T000000000000Z",
        "failed",
        {"regime": "blocked", "sizer": "failed", "bandit": "skipped"},
    )
    (wd / "runs" / "20260103T000000000000Z").mkdir()  # rejected run: no summary
    code, out, _ = _main(capsys, "runs", "-w", str(wd), "--json")
    rows = json.loads(out)
    assert [r["id"][:8] for r in rows] == ["20260103", "20260102", "20260101"]
    assert rows[1]["blocked"] == ["regime"] and rows[1]["failed"] == ["sizer"]
    assert rows[1]["skipped"] == ["bandit"]  # a run that trained nothing does not read as "-"
    assert rows[2]["published"] == ["regime"] and rows[2]["report"] == str(old)
    assert rows[0]["status"].startswith("no summary")
    assert rows[0]["time"] == "2026-01-03T00:00:00+00:00"  # read from the run id
    code, out, _ = _main(capsys, "runs", "-w", str(wd))
    assert code == 0 and "published=regime" in out and f"report: {new}" in out
    assert "failed=sizer skipped=bandit" in out
    assert "20260103T000000000000Z  2026-01-03T00:00:00+00:00" in out
    (wd / "runs" / "notes").mkdir()  # not a run: not listed, and never "latest"
    (wd / "runs" / "notes" / "README.txt").write_text("mine")
    code, out, _ = _main(capsys, "runs", "-w", str(wd), "--json")
    assert code == 0 and [r["id"][:8] for r in json.loads(out)] == [
        "20260103",
        "20260102",
        "20260101",
    ]
    torn = wd / "runs" / "20260104T000000000000Z"
    torn.mkdir()
    (torn / "summary.json").write_text('{"status": "ok", "mod')  # a run killed mid-write
    code, out, _ = _main(capsys, "runs", "-w", str(wd), "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4 and rows[0]["status"].startswith("summary.json unreadable")
    code, out, _ = _main(capsys, "runs", "-w", str(wd))
    assert code == 0 and "summary.json unreadable (JSONDecodeError" in out
    shutil.rmtree(torn)
    shutil.rmtree(wd / "runs" / "notes")
    code, out, _ = _main(capsys, "runs", "open", "20260101", "-w", str(wd))
    assert code == 0 and out.strip() == str(old)
    code, out, _ = _main(capsys, "runs", "open", "latest", "-w", str(wd))
    assert code == 2  # the newest run has no report
    code, _, err = _main(capsys, "runs", "open", "2026", "-w", str(wd))
    assert code == 2 and "matches 3 runs" in err


def test_cli_reset_data_needs_yes_when_not_interactive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from configs.settings import load_config
    from pipelines.data.collect import collect_bars

    wd = tmp_path / "wd"
    cfg = load_config("demo", overrides={"data.synthetic.n_bars": 30}).data
    collect_bars(cfg, 7, wd / "data" / "bars", profile="demo")
    runner = CliRunner()
    result = runner.invoke(app, ["reset-data", "-w", str(wd)])
    assert result.exit_code == 2 and (wd / "data" / "bars").exists()
    code, out, _ = _main(capsys, "reset-data", "-w", str(wd), "--yes")
    assert code == 0 and "synthetic(seed=7, n_bars=30" in out
    assert not (wd / "data" / "bars").exists()


def test_an_interrupt_a_library_wrapped_in_its_own_error_is_one_line_and_exit_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic's serializer once turned Ctrl-C into a PydanticSerializationError: a 61-line
    traceback and exit 1. After a Ctrl-C any error is the interrupt's."""
    import weakref

    from flows.cli import app as cli
    from pipelines import interrupt
    from pipelines.interrupt import STOP

    monkeypatch.setattr(interrupt, "_TRAINERS", weakref.WeakSet())  # no trainings to wait for
    monkeypatch.setattr("logging.raiseExceptions", True)  # main() turns it off after Ctrl-C

    def interrupted(args: list[str]) -> int:
        STOP.set()  # what the SIGINT handler does
        raise RuntimeError("Error calling function '_ser_model': KeyboardInterrupt")

    monkeypatch.setattr(cli, "_dispatch", interrupted)
    try:
        assert cli.main(["run"]) == 130
    finally:
        STOP.clear()
    err = capsys.readouterr().err
    assert err.strip() == "interrupted: stopped at Ctrl-C; the run wrote no summary"
    STOP.clear()
    try:
        assert cli.main(["verify"]) == 130
    finally:
        STOP.clear()
    assert capsys.readouterr().err.strip() == "interrupted: stopped at Ctrl-C"

    def broken(args: list[str]) -> int:
        raise RuntimeError("a real bug")

    monkeypatch.setattr(cli, "_dispatch", broken)
    with pytest.raises(RuntimeError, match="a real bug"):  # no Ctrl-C: not hidden
        cli.main(["run"])


def test_cli_help_lists_every_model_of_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli.app import MODEL_TITLES
    from pipelines.models.specs import SPECS

    assert MODEL_TITLES == {name: spec.title or name for name, spec in SPECS.items()}
    assert list(MODEL_TITLES) == list(SPECS)
    code, out, _ = _main(capsys, "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert all(title in flat for title in MODEL_TITLES.values())


@pytest.mark.parametrize(
    ("key", "where"), [("nosuch.key", "the top level"), ("data.nosuch", "data")]
)
def test_cli_set_unknown_key_names_the_whole_dotted_key(
    capsys: pytest.CaptureFixture[str], key: str, where: str
) -> None:
    code, _, err = _main(capsys, "config", "show", "--set", f"{key}=1")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"no setting '{key}'" in err and f"is not a key of {where}" in err


def test_cli_config_show_without_config_is_what_run_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.cli.commands.pipeline import run
    from flows.cli.options import DEFAULT_CONFIG

    assert run.__defaults__ is not None and DEFAULT_CONFIG in run.__defaults__
    code, out, _ = _main(capsys, "config", "show", "--json")
    rows = {r["key"]: r for r in json.loads(out)}
    assert code == 0 and rows["profile"]["value"] == "demo"
    assert rows["profile"]["source"] == f"file:{ROOT / 'configs' / 'demo.yaml'}"
    assert rows["data.synthetic.symbols"]["value"] == ["SYN1", "SYN2"]  # demo.yaml's, as run's
    code, text, _ = _main(capsys, "config", "show")
    assert text.splitlines()[0].endswith("profile 'demo'")


@pytest.mark.parametrize("store", [None, "file:///nonexistent/edgeflow-store"])
@pytest.mark.parametrize("command", ["models", "verify", "heartbeat"])
def test_cli_missing_store_is_one_answer_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, store: str | None
) -> None:
    wd = tmp_path / "empty"
    code, _, err = _main(capsys, command, *([store] if store else []), "-w", str(wd))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert ": no such store (folder " in err and not wd.exists()


def test_cli_health_on_a_new_workdir_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PREFECT_HOME", "TMPDIR"):
        monkeypatch.delenv(name, raising=False)
    wd = tmp_path / "new"
    code, out, _ = _main(capsys, "health", "-w", str(wd))
    assert code == 1 and json.loads(out)["healthy"] is False
    assert not wd.exists()
    assert "TMPDIR" not in os.environ and "PREFECT_HOME" not in os.environ  # none left behind


def test_cli_runs_open_browser_without_one_says_nothing_opened(
    tmp_path: Path, _clean_env: Path
) -> None:
    wd = tmp_path / "wd"
    report = _fake_run(wd, "20260101T000000000000Z", "ok", {"regime": "published"})
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["BROWSER"] = "false"  # the only browser there is fails, as on a machine without one
    script = "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", script, "runs", "open", "latest", "-w", str(wd), "--browser"],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/nonexistent"},
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == str(report)
    assert "nothing opened" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_api_note_says_the_temporary_api_is_gone_or_names_the_server(tmp_path: Path) -> None:
    from flows.cli.local_api import api_note

    note = api_note("http://127.0.0.1:5555/api", tmp_path / "prefect", {})
    assert "View at http://127.0.0.1:5555/..." in note and "stopped" in note
    # the venv's prefect by its path: a bare `prefect` is not on PATH outside the venv
    prefect = Path(sys.executable).with_name("prefect")
    assert f"PREFECT_HOME={tmp_path / 'prefect'} {prefect} server start" in note
    server = api_note(None, tmp_path, {"PREFECT_API_URL": "http://10.0.0.2:4200/api"})
    assert server == "note: this run is in the Prefect server at http://10.0.0.2:4200"


def test_cli_lets_the_import_notes_through_at_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from flows.cli import runtime
    from pipelines.data.sources import read_file

    data = tmp_path / "ES.csv"
    data.write_text("ts;open;high;low;close;volume\n2024-01-01T00:00:00Z;1;1;1;1;1\n")
    logger = logging.getLogger(runtime.IMPORT_LOGGER)
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)  # as Prefect leaves it
    read_file(data)
    assert "separator ';'" not in caplog.text  # dropped: this was the defect
    runtime.show_import_notes()
    read_file(data)
    assert f"{data}: separator ';' (sniffed" in caplog.text
