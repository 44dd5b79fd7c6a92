"""Lineage facts recorded with every run and manifest: code, config and data identity."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

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


#: The packages whose versions decide a model's exported bytes (converters, the trainers'
#: frameworks) and the runtime its parity was measured with: what a rebuild must match.
REBUILD_PACKAGES: tuple[str, ...] = (
    "lightgbm",
    "numpy",
    "onnx",
    "onnxmltools",
    "onnxruntime",
    "scikit-learn",
    "skl2onnx",
    "stable-baselines3",
    "torch",
)


def package_versions(names: tuple[str, ...] = REBUILD_PACKAGES) -> dict[str, str]:
    """Installed version of each package (``absent`` when not installed), sorted by name."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in sorted(names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def rebuild_lineage() -> dict[str, Any]:
    """What a signed manifest records, besides code, config and data hashes, so a rebuild can
    be set up to give the same bytes: the Python and package versions (docs/manifest.md,
    "Rebuild")."""
    return {"python": platform.python_version(), "packages": package_versions()}
