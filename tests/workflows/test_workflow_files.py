"""The GitHub workflows and prefect.yaml are checked, not just written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECKER = Path(sys.executable).with_name("check-jsonschema")


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
