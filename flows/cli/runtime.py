"""Process-level set-up for entry points: where Prefect, MLflow and friends keep their state.

Called once by the CLI before Prefect is imported, so a run leaves nothing outside its workdir
(``~/.prefect``, ``~/.config/mlflow`` and ``/tmp/SB3-*`` otherwise appear) and never tries to
phone home from an offline machine.

A fresh workdir's Prefect database also starts as a copy of a migrated, empty template, when
one exists for the installed Prefect: creating and migrating the sqlite database is most of
the local API's start (11 s of its ~15 s on the 2-core machine when measured), and the
migrations are the same for every workdir. The workdir's MLflow store starts the same way
(its first open otherwise runs MLflow's migrations: 2.1 s against 0.6 s). ``make setup``
builds both templates once per virtual environment (``python -m flows.cli.runtime``); without
them, Prefect and MLflow migrate the workdir's own databases as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.memory import tune_malloc

if TYPE_CHECKING:
    from configs.settings import Settings

#: The settings that point Prefect's server at a database other than ``PREFECT_HOME``'s.
_DATABASE_URL_SETTINGS = (
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
)


#: Thread pools of the numeric libraries (OpenMP for torch and LightGBM, OpenBLAS, MKL), one
#: thread each: the flow already runs one training per core, and pools sized to the machine
#: on top of that oversubscribe it. On the 2-core machine the demo took 47.5 and 46.6 s
#: instead of 50.2 and 54.4 s, and 69-70 s of user CPU instead of 74-80 s (interleaved),
#: with every gate value equal (docs/performance.md). Set in the environment to override.
THREAD_DEFAULTS = {"OMP_NUM_THREADS": "1"}


def limit_threads() -> None:
    """Apply :data:`THREAD_DEFAULTS` where unset. Libraries read them when they load, so call
    this before numpy and torch are imported (the CLI's training commands do it first)."""
    for key, value in THREAD_DEFAULTS.items():
        os.environ.setdefault(key, value)


#: Seconds Prefect waits for its temporary API to start. Prefect's own default (20 s) is too
#: short on a loaded 2-core machine; every process that starts one gets this (set-up's
#: template build included), unless the environment already sets it.
STARTUP_TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_TIMEOUT_SECONDS = "120"


def prepare_environment(workdir: Path, *, flows: bool = False) -> None:
    """Set library environment defaults for this process; values already set win.

    ``flows``: this process will run a flow (and so start the local API): seed its database.
    """
    workdir = workdir.resolve()
    defaults = {
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        STARTUP_TIMEOUT_SETTING: STARTUP_TIMEOUT_SECONDS,
        "PREFECT_LOCAL_STORAGE_PATH": str(workdir / "prefect" / "storage"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "MPLBACKEND": "Agg",
        # Arrow's mimalloc pool keeps what it freed (~30 MB after a collect); the system
        # allocator gives it back with the rest (pipelines.memory.release_memory).
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        "TMPDIR": os.environ.get("TMPDIR", str(workdir / "tmp")),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    # tempfile caches the folder it chose on first use; the CLI's input check has used it
    # already, and SB3's log folders and featurize's scratch must follow TMPDIR from here on
    tempfile.tempdir = None
    if flows:
        from pipelines.scratch import sweep_orphans

        limit_threads()
        sweep_orphans(Path(os.environ["TMPDIR"]))  # what a killed run left; featurize may be cached
        seed_prefect_database(Path(os.environ["PREFECT_HOME"]))
        tune_malloc()


def template_path(prefix: Path | None = None, package: str = "prefect") -> Path:
    """Where this environment keeps the migrated template for the installed ``package``
    (``prefect`` or ``mlflow``: each template is only valid for the version that made it)."""
    base = Path(sys.prefix if prefix is None else prefix)
    return base / "share" / "edgeflow" / f"{package}-{version(package)}.db"


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy under a temporary name, then rename: a crash leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def seed_prefect_database(home: Path, template: Path | None = None) -> bool:
    """Copy the template into ``home/prefect.db`` if Prefect would create that file now.

    Only the default local database is seeded: nothing happens when a server URL or another
    database is configured, or when ``home`` already holds a database (its runs are kept).
    Returns whether it copied.
    """
    configured = ("PREFECT_API_URL", *_DATABASE_URL_SETTINGS)
    if any(os.environ.get(key) for key in configured):
        return False
    target = home / "prefect.db"
    source = template_path() if template is None else template
    if target.exists() or not source.is_file():
        return False
    _copy_atomically(source, target)
    return True


def seed_mlflow_database(db: Path, artifact_root: Path, template: Path | None = None) -> bool:
    """Start a workdir's own MLflow store (``db``) from the migrated template, once.

    MLflow creates and migrates a new sqlite store on first open (~1.5 s and 9 MB more on
    the 2-core machine than opening a migrated one). The template's ``Default`` experiment
    is pointed at ``artifact_root``. An existing store is never touched. Returns whether it
    copied.
    """
    source = template_path(package="mlflow") if template is None else template
    if db.exists() or not source.is_file():
        return False
    staged = db.with_name(f".{db.name}.{os.getpid()}.seed")
    _copy_atomically(source, staged)
    with contextlib.closing(sqlite3.connect(staged)) as con, con:
        location = (artifact_root.resolve() / "0").as_uri()
        con.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,)
        )
    os.replace(staged, db)
    return True


def _pack(db: Path, target: Path) -> Path:
    """Compact ``db`` into one self-contained file (``VACUUM INTO``: no WAL beside it), check
    it carries its Alembic head (both Prefect and MLflow migrate with Alembic), and move it to
    ``target``."""
    packed = db.with_name("packed.db")
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("VACUUM INTO ?", (str(packed),))
    with contextlib.closing(sqlite3.connect(packed)) as con:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    if not row or not row[0]:
        raise RuntimeError(f"the migrated database {db} has no migration version")
    _copy_atomically(packed, target)
    return target


def template_environment(prefect_home: str) -> dict[str, str]:
    """The template build's child environment: this one, on a throwaway PREFECT_HOME, with
    no configured server or database, and the same start-up timeout as a run's."""
    env = {
        STARTUP_TIMEOUT_SETTING: STARTUP_TIMEOUT_SECONDS,
        **os.environ,
        "PREFECT_HOME": prefect_home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    for key in ("PREFECT_API_URL", *_DATABASE_URL_SETTINGS):
        env.pop(key, None)
    return env


def build_template(target: Path | None = None) -> Path:
    """Migrate an empty Prefect database by starting Prefect's API on it: the template."""
    target = template_path() if target is None else target
    with tempfile.TemporaryDirectory(prefix="edgeflow-prefect-template-") as tmp:
        env = template_environment(tmp)
        # Start (and stop) Prefect's local API once on it, in a child process with this
        # environment: that runs the migrations and the first start's registrations (block
        # types, concurrency defaults), all of which a fresh workdir would otherwise repeat.
        code = (
            "from prefect.server.api.server import SubprocessASGIServer as S\n"
            "s = S(); s.start(); s.stop()\n"
        )
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return _pack(Path(tmp) / "prefect.db", target)


def build_mlflow_template(target: Path | None = None) -> Path:
    """Create and migrate an empty MLflow sqlite store (as MLflow's first open does)."""
    target = template_path(package="mlflow") if target is None else target
    with tempfile.TemporaryDirectory(prefix="edgeflow-mlflow-template-") as tmp:
        db = Path(tmp) / "mlflow.db"
        code = (
            "import sys\n"
            "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore\n"
            "SqlAlchemyStore(sys.argv[1], sys.argv[2]).engine.dispose()\n"
        )
        uri, root = f"sqlite:///{db}", (Path(tmp) / "mlartifacts").as_uri()
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
        subprocess.run([sys.executable, "-c", code, uri, root], env=env, check=True)
        return _pack(db, target)


#: Where the data readers and checks log what they decided (separator, decimal comma, epoch
#: unit, which close): docs/data-import.md promises these lines. Prefect's logging leaves the
#: root logger at WARNING, so a library logger without a level of its own drops INFO.
IMPORT_LOGGER = "pipelines.data"


def show_import_notes() -> None:
    """Let the data import's INFO lines through (they reach the console via the root logger's
    handlers, which Prefect sets up)."""
    logging.getLogger(IMPORT_LOGGER).setLevel(logging.INFO)


def prepare_settings(settings: Settings, *, flows: bool = True, tracks: bool = True) -> None:
    """Point Prefect & co. at the workdir; call before importing anything that imports Prefect.

    ``flows=False`` for a command that runs no flow (no Prefect database is seeded);
    ``tracks=False`` for one that logs nothing to MLflow (no MLflow store is seeded)."""
    prepare_environment(settings.workdir, flows=flows)
    if flows and tracks and settings.mlflow.tracking_uri is None:  # the workdir's own store
        from pipelines.workdir import WorkdirLayout

        layout = WorkdirLayout(settings.workdir)
        seed_mlflow_database(layout.mlflow_db, layout.mlartifacts)


if __name__ == "__main__":
    print(f"Prefect database template: {build_template()}")
    print(f"MLflow store template: {build_mlflow_template()}")
