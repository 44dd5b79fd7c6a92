"""Scratch folders a killed run leaves in the temporary directory, and their removal.

``TemporaryDirectory`` cleans up on every exit Python sees, but not after ``kill -9``: the
featurize scratch (a copy of the bars and their features, ~10 MB on the demo) would stay in
the workdir for good. Each scratch folder is named ``edgeflow-featurize-<pid>-<random>``
after the process that made it, so a later run can tell a leftover from a folder in use.
Standard library only: the CLI calls :func:`sweep_orphans` while it sets up, before the heavy
imports (``flows.cli.runtime.prepare_environment``), and featurize calls it again.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

PREFIX = "edgeflow-featurize-"
#: A scratch folder whose maker is gone is removed once it is this old (seconds): a process
#: that shares the temporary directory from another PID namespace has long finished by then.
ORPHAN_AGE_S = 3600.0


def scratch_prefix() -> str:
    """The ``prefix`` for this process's scratch folders."""
    return f"{PREFIX}{os.getpid()}-"


def sweep_orphans(tmpdir: Path, min_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Remove the scratch folders killed runs left in ``tmpdir``; returns those removed.

    One is removed only when the process that made it no longer exists and it is older than
    ``min_age_s``, so a featurize running now is never touched.
    """
    removed: list[Path] = []
    for folder in tmpdir.glob(f"{PREFIX}*-*"):
        pid = folder.name[len(PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not folder.is_dir():
            continue
        try:
            age = time.time() - folder.stat().st_mtime
        except FileNotFoundError:
            continue
        if age >= min_age_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    return True
