"""Lineage facts recorded with every run and manifest: code, config and data identity."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from configs import Settings


def git_commit(cwd: Path | None = None) -> str:
    """HEAD of the checkout the code runs from (``unknown`` outside git), ``+dirty`` if edited."""
    root = cwd or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def config_hash(settings: Settings) -> str:
    """sha256 of the resolved config as canonical JSON (workdir excluded: it is where, not what)."""
    data = settings.model_dump(mode="json", exclude={"workdir"})
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
