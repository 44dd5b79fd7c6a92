"""Named random streams split from the one root seed in the config.

Nothing in edgeflow seeds a global generator. Each consumer asks its :class:`Streams` for a
stream by name (``streams.child("bandit").numpy("logging")``), so the numbers a model sees
depend only on the root seed and the names on the path to it, never on which other model
ran first or on another thread: concurrent trainings stay reproducible.

Names are hashed with SHA-256 (not Python's ``hash``, which ``PYTHONHASHSEED`` salts) into
``SeedSequence`` spawn keys, as ``SeedSequence.spawn`` does with integers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is heavy; only the consumers that use it import it
    import torch


def _key(name: str) -> int:
    if not name:
        raise ValueError("a stream needs a non-empty name")
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class Streams:
    """A node in the tree of random streams: the root seed and the path of names to here."""

    root: int
    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.root < 0:
            raise ValueError(f"seed must be >= 0, got {self.root}")

    def child(self, name: str) -> Streams:
        """The sub-tree for ``name`` (a model, a stage)."""
        _key(name)
        return Streams(self.root, (*self.path, name))

    def sequence(self, name: str) -> np.random.SeedSequence:
        keys = tuple(_key(n) for n in (*self.path, name))
        return np.random.SeedSequence(self.root, spawn_key=keys)

    def seed(self, name: str, bits: int = 31) -> int:
        """An integer seed for libraries that take one (LightGBM, SB3, scikit-learn)."""
        value = int(self.sequence(name).generate_state(1, dtype=np.uint64)[0])
        return value % (2**bits)

    def numpy(self, name: str) -> np.random.Generator:
        return np.random.default_rng(self.sequence(name))

    def torch(self, name: str) -> torch.Generator:
        """A private torch generator: weight init, dropout and shuffling draw from it."""
        import torch

        return torch.Generator().manual_seed(self.seed(name, bits=63))
