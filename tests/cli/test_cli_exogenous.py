"""``--exogenous`` beside ``--data``: the series land in data.exogenous and are checked before
Prefect starts (a bad one is one line, exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from flows.cli.options import settings_from_cli

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo.yaml"
PROBE = (
    "import sys; from flows.cli import main; code = main(sys.argv[1:]); "
    "heavy = sorted(m for m in ('prefect', 'mlflow', 'torch', 'lightgbm') if m in sys.modules); "
    "print('HEAVY=' + ','.join(heavy)); sys.exit(code)"
)


def test_exogenous_option_sets_the_series(tmp_path: Path) -> None:
    a = tmp_path / "vix.csv"
    a.write_text("date,close\n2024-01-01,12\n")
    folder = tmp_path / "more"
    folder.mkdir()
    settings = settings_from_cli(DEMO, tmp_path / "wd", exogenous=[a, folder])
    assert [(s.path, s.name, s.lag) for s in settings.data.exogenous] == [
        (a, None, None),
        (folder, None, None),
    ]
    assert settings_from_cli(DEMO, tmp_path / "wd").data.exogenous == []
    with pytest.raises(typer.BadParameter, match=r"nope\.csv: path does not exist"):
        settings_from_cli(DEMO, tmp_path / "wd", exogenous=[tmp_path / "nope.csv"])


def test_a_bad_exogenous_file_is_refused_in_one_line_before_prefect(tmp_path: Path) -> None:
    bad = tmp_path / "VIX.csv"
    bad.write_text("date,close\n2024-01-01,12\n2024-01-02,twelve\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EDGEFLOW_"))}
    env["PYTHONPATH"] = str(ROOT)
    args = [
        "run",
        "--config",
        str(DEMO),
        "--data",
        str(ROOT / "tests" / "data" / "good" / "DEMO.csv"),
    ]
    args += ["--exogenous", str(bad), "--workdir", str(tmp_path / "wd")]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0] == (
        f"error: {bad}: column 'close', row 2 (ts 2024-01-02T00:00:00+00:00): "
        "not a number (got 'twelve')"
    )
    assert "HEAVY=\n" in out.stdout
