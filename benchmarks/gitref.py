"""The code at a git ref as a plain folder, so a benchmark can time "before" and "after" in one
session on one machine (the same virtual environment, ``PYTHONPATH`` pointing at the tree)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export_ref(ref: str, dest: Path) -> Path:
    """Extract ``git archive REF`` of this repository into ``dest``; returns ``dest``."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest
