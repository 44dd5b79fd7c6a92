"""Content hashes that key caches and lineage: same bars -> same hash, on any machine."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd


def frame_hash(frame: pd.DataFrame) -> str:
    """sha256 of a frame's values and column names (row order matters, the index does not)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def source_hash(paths: Iterable[Path]) -> str:
    """sha256 over source files (sorted by path), so a cache keyed on it follows code changes."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
