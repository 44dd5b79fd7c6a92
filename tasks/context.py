"""What travels between the flow and its tasks: one run's context and each model's outcome.

Typed, so a task's signature says what it needs; built once at the flow's entry, where
secrets and clients are made, and passed down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from configs import Settings
from pipelines.evaluation.gates import Gate
from pipelines.lineage import config_hash, git_commit
from pipelines.registry.keys import keyring_from_env
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store, open_store
from pipelines.workdir import WorkdirLayout, new_run_id
from tasks.tracking import Tracker, default_tracking_uri

Status = Literal["published", "blocked", "skipped", "failed"]


def store_uri(settings: Settings) -> str:
    """The configured store, or the local default under the workdir."""
    return settings.registry.store or (WorkdirLayout(settings.workdir).store.resolve().as_uri())


@dataclass(frozen=True)
class RunContext:
    """One training run: where it writes, where it publishes, how it signs and tracks."""

    settings: Settings
    run_id: str
    started: datetime
    layout: WorkdirLayout
    store: Store
    keyring: KeyRing
    tracker: Tracker
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.layout.run_dir(self.run_id)

    def model_dir(self, model: str) -> Path:
        return self.run_dir / model

    @classmethod
    def open(cls, settings: Settings, run_id: str | None = None) -> RunContext:
        """Build the clients and read the keys (the only environment read of a run)."""
        layout = WorkdirLayout(settings.workdir)
        keyring = keyring_from_env(os.environ, settings, settings.workdir)
        store = open_store(store_uri(settings), endpoint_url=settings.registry.s3_endpoint_url)
        uri = settings.mlflow.tracking_uri or default_tracking_uri(settings.workdir)
        tracker = Tracker(
            uri, settings.mlflow.experiment, artifact_root=layout.mlartifacts, background=True
        )
        return cls(
            settings=settings,
            run_id=run_id or new_run_id(),
            started=datetime.now(UTC),
            layout=layout,
            store=store,
            keyring=keyring,
            tracker=tracker,
            lineage={"git_commit": git_commit(), "config_hash": config_hash(settings)},
        )


@dataclass
class ModelOutcome:
    """What became of one model in this run (the summary's and the report's row)."""

    model: str
    status: Status
    detail: str
    gates: list[Gate] = field(default_factory=list)
    version: str | None = None
    mlflow_run_id: str | None = None
    tables: list[Path] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "detail": self.detail}
        if self.version is not None:
            out["version"] = self.version
        return out
