"""The installed ``edgeflow`` command, as a user runs it (a real subprocess each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("edgeflow")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    return subprocess.run(
        [str(CLI), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_help_explains_every_command(tmp_path: Path) -> None:
    top = _run("--help", cwd=tmp_path)  # the installed console script
    assert top.returncode == 0
    from typer.testing import CliRunner

    from flows.cli.app import _register_optional_commands, app

    _register_optional_commands()
    runner = CliRunner()
    for command in ("run", "collect", "verify", "models", "rollback", "publish", "health"):
        assert command in top.stdout
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "Usage" in sub.output and len(sub.output) > 200


def test_collect_on_users_csv_with_capitalised_columns(tmp_path: Path) -> None:
    csv = ROOT / "tests/data/good/DEMO.csv"
    assert csv.read_text().splitlines()[0] == "Date,Open,High,Low,Close,Volume"
    before = csv.read_bytes()
    out = _run(
        "collect",
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--workdir",
        str(tmp_path / "wd"),
        "--data",
        str(csv),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["rows_added"] == 2000
    assert set(summary["watermarks"]) == {"DEMO"}
    assert summary["feature_rows"] == 2000 - 200
    assert csv.read_bytes() == before  # raw input never modified
    assert (tmp_path / "wd" / "data" / "bars").is_dir()
    assert not (tmp_path / ".edgeflow").exists()  # everything went under --workdir
    # The same workdir, another source (the demo's generator): refused before anything starts.
    mixed = _run(
        "collect",
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--workdir",
        str(tmp_path / "wd"),
        cwd=tmp_path,
    )
    assert mixed.returncode == 2 and "Traceback" not in mixed.stderr
    assert len(mixed.stderr.strip().splitlines()) == 1
    assert f"holds bars from files({csv}" in mixed.stderr
    assert "this run's source is synthetic(seed=7, n_bars=20000" in mixed.stderr
    assert "edgeflow reset-data" in mixed.stderr
    runs = _run("runs", "--workdir", str(tmp_path / "wd"), "--json", cwd=tmp_path)
    assert runs.returncode == 0 and len(json.loads(runs.stdout)) == 1


def test_bad_input_is_one_clear_line_without_traceback(tmp_path: Path) -> None:
    out = _run(
        "collect",
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--workdir",
        str(tmp_path / "wd"),
        "--data",
        str(ROOT / "tests/data/bad/non_numeric.csv"),
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "non_numeric.csv: column 'high', row 3" in out.stderr


def test_invalid_config_lists_every_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: -2\ndata:\n  source: nowhere\n")
    out = _run("run", "--config", str(bad), "--workdir", str(tmp_path / "wd"), cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "seed:" in out.stderr and "data.source:" in out.stderr
