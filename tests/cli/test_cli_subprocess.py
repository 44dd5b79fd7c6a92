"""The installed ``edgeflow`` script as a user runs it: exit codes, and nothing in the cwd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).with_name("edgeflow")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env.pop("TMPDIR", None)
    return subprocess.run(
        [str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_exit_codes_and_one_line_errors(tmp_path: Path) -> None:
    for args in (["trian"], ["run", "--confg", "x"], ["run", "--force", "true"], []):
        out = _run(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert _run("--help", cwd=tmp_path).returncode == 0
    assert _run("--version", cwd=tmp_path).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: -1\n")
    out = _run("collect", "-c", str(bad), "-w", str(tmp_path / "wd"), cwd=tmp_path)
    assert out.returncode == 2 and "seed:" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_cli_health_and_models_leave_the_cwd_alone(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    wd = tmp_path / "wd"
    out = _run("health", "--workdir", str(wd), cwd=cwd)
    assert out.returncode == 1, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["healthy"] is False and report["workdir"] == str(wd)
    out = _run("models", "--workdir", str(wd), cwd=cwd)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert list(cwd.iterdir()) == []  # no ./.edgeflow/{prefect,tmp}
    assert not (wd / "prefect" / "prefect.db").exists()  # no Prefect server/database started
