"""Temporary files follow the workdir's TMPDIR even when the process used /tmp before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import sys, tempfile
from pathlib import Path
tempfile.mkdtemp()  # the CLI's input check runs before the workdir is set up
from flows.cli.runtime import prepare_environment
prepare_environment(Path(sys.argv[1]))
from stable_baselines3.common.logger import configure
print(tempfile.gettempdir())
print(configure(None, [""]).get_dir())
"""


def test_tempfiles_and_sb3_logs_follow_the_workdir_after_set_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    env["PYTHONPATH"] = str(ROOT)
    wd = tmp_path / "wd"
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(wd)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    gettempdir, sb3_dir = out.stdout.split()
    assert Path(gettempdir) == (wd / "tmp").resolve()
    assert Path(sb3_dir).parent == (wd / "tmp").resolve()
