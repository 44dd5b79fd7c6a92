"""Process-level set-up for entry points: where Prefect, MLflow and friends keep their state.

Called once by the CLI before Prefect is imported, so a run leaves nothing outside its workdir
(``~/.prefect``, ``~/.config/mlflow`` and ``/tmp/SB3-*`` otherwise appear) and never tries to
phone home from an offline machine.
"""

from __future__ import annotations

import os
from pathlib import Path


def prepare_environment(workdir: Path) -> None:
    """Set library environment defaults for this process; values already set win."""
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
