"""Process-level set-up for entry points: where Prefect, MLflow and friends keep their state.

Called once by the CLI before Prefect is imported, so a run leaves nothing outside its workdir
(``~/.prefect``, ``~/.config/mlflow`` and ``/tmp/SB3-*`` otherwise appear) and never tries to
phone home from an offline machine.

A fresh workdir's Prefect database also starts as a copy of a migrated, empty template, when
one exists for the installed Prefect: creating and migrating the sqlite database is most of
the local API's start (11 s of its ~15 s on the 2-core machine, BENCHMARKS.md), and the
migrations are the same for every workdir. ``make setup`` builds the template once per
virtual environment (``python -m flows.runtime``); without one, Prefect migrates the
workdir's own database as before.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

#: The settings that point Prefect's server at a database other than ``PREFECT_HOME``'s.
_DATABASE_URL_SETTINGS = (
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
)


def prepare_environment(workdir: Path, *, flows: bool = False) -> None:
    """Set library environment defaults for this process; values already set win.

    ``flows``: this process will run a flow (and so start the local API): seed its database.
    """
    workdir = workdir.resolve()
    defaults = {
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # A loaded 2-core machine can take longer than the default 20 s to start the API.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOCAL_STORAGE_PATH": str(workdir / "prefect" / "storage"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "TMPDIR": os.environ.get("TMPDIR", str(workdir / "tmp")),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    if flows:
        seed_prefect_database(Path(os.environ["PREFECT_HOME"]))
        limit_malloc_arenas()


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (as ``MALLOC_ARENA_MAX`` would).

    glibc gives threads their own arenas (up to 8 per core) and each keeps the memory its
    thread freed; the four trainings on threads then hold several peaks at once. Capped at
    2, the demo's peak RSS fell by ~190 MB (BENCHMARKS.md). Call before the threads start;
    a value set in the environment, or a C library without ``mallopt``, is left alone.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_arena_max = -8  # glibc's malloc.h
        return bool(libc.mallopt(m_arena_max, arenas))
    except (OSError, AttributeError):
        return False


def template_path(prefix: Path | None = None) -> Path:
    """Where this environment keeps the migrated template for the installed Prefect."""
    base = Path(sys.prefix if prefix is None else prefix)
    return base / "share" / "edgeflow" / f"prefect-{version('prefect')}.db"


def seed_prefect_database(home: Path, template: Path | None = None) -> bool:
    """Copy the template into ``home/prefect.db`` if Prefect would create that file now.

    Only the default local database is seeded: nothing happens when a server URL or another
    database is configured, or when ``home`` already holds a database (its runs are kept).
    The copy lands under a temporary name and is renamed, so a crash leaves no half file.
    Returns whether it copied.
    """
    configured = ("PREFECT_API_URL", *_DATABASE_URL_SETTINGS)
    if any(os.environ.get(key) for key in configured):
        return False
    target = home / "prefect.db"
    source = template_path() if template is None else template
    if target.exists() or not source.is_file():
        return False
    home.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".prefect.db.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return True


def build_template(target: Path | None = None) -> Path:
    """Migrate an empty Prefect database by starting Prefect's API on it; keep it as the template.

    The migrated file is compacted into one self-contained sqlite file (``VACUUM INTO``: no
    WAL beside it) and checked to carry Alembic's version row before it replaces the old one.
    """
    target = template_path() if target is None else target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeflow-prefect-template-") as tmp:
        env = {
            **os.environ,
            "PREFECT_HOME": tmp,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        for key in ("PREFECT_API_URL", *_DATABASE_URL_SETTINGS):
            env.pop(key, None)
        # Start (and stop) Prefect's local API once on it, in a child process with this
        # environment: that runs the migrations and the first start's registrations (block
        # types, concurrency defaults), all of which a fresh workdir would otherwise repeat.
        code = (
            "from prefect.server.api.server import SubprocessASGIServer as S\n"
            "s = S(); s.start(); s.stop()\n"
        )
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        packed = Path(tmp) / "packed.db"
        with sqlite3.connect(Path(tmp) / "prefect.db") as con:
            con.execute("VACUUM INTO ?", (str(packed),))
        with sqlite3.connect(packed) as con:
            (head,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
        if not head:
            raise RuntimeError("the migrated Prefect database has no Alembic version")
        staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(packed, staged)
        os.replace(staged, target)
    return target


if __name__ == "__main__":
    print(f"Prefect database template: {build_template()}")
