"""Where a run writes inside its workdir: one place, so flows, health and tests agree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class WorkdirLayout:
    """The folders under ``--workdir``."""

    root: Path

    @property
    def bars(self) -> Path:
        return self.root / "data" / "bars"

    @property
    def events(self) -> Path:
        """The event store's default state (ingested bot decisions and outcomes)."""
        return self.root / "data" / "events"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def publisher_state(self) -> Path:
        """This publisher's own record of what it signed per store and model
        (``pipelines.registry.publisher_state``): kept apart from the store, so nothing a
        store writer plants can rewind the sequence it continues from."""
        return self.root / "publisher-state"

    @property
    def mlartifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def mlflow_db(self) -> Path:
        """The local MLflow store (sqlite) when no tracking URI is configured."""
        return self.root / "mlflow.db"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def last_training(self) -> Path:
        return self.state / "last_training.json"


RUN_ID_FORMAT = "%Y%m%dT%H%M%S%fZ"


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, human-readable run folder name."""
    return (now or datetime.now(UTC)).strftime(RUN_ID_FORMAT)


def run_id_time(run_id: str) -> datetime | None:
    """When a run started, read back from its folder name.

    A run stopped before it wrote its summary (refused, interrupted) still has its start time;
    a folder someone named by hand has none.
    """
    try:
        return datetime.strptime(run_id, RUN_ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def atomic_write_text(path: Path, text: str) -> None:
    """Write a temporary sibling, flush it to disk, then ``os.replace`` it over ``path``:
    a reader sees the old file or the new one, never half of one (a run killed mid-write)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
