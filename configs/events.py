"""Events section: where the bot's decision/outcome logs come from and where their state lives."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from configs.base import Section


class EventsConfig(Section):
    """The bot's event logs (``docs/events.md``): source, state location, training threshold."""

    source: Literal["none", "folder", "s3"] = Field(
        default="none",
        description="Where the bot's gzip JSON-lines logs are: none (bars only), a folder, or s3.",
    )
    path: Path | None = Field(default=None, description="folder: the folder of log files.")
    s3_uri: str | None = Field(
        default=None, description="s3: s3://bucket/prefix of the log objects."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="s3: endpoint of the logs and of an s3 state (MinIO, moto)."
    )
    state_uri: str | None = Field(
        default=None,
        description=(
            "Where the ingested events and watermarks live: unset = <workdir>/data/events, "
            "a path, or s3://bucket/prefix (stateless cloud runs)."
        ),
    )
    min_joined: int = Field(
        default=2000,
        ge=1,
        description="Joined decisions needed before the bandit trains on logged feedback.",
    )
    max_weight: float = Field(
        default=20.0,
        ge=1,
        description="Clip of the importance weights 1/propensity in logged-feedback training.",
    )
    exploration_epsilon: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "epsilon of the published action distribution the bot samples from "
            "(epsilon-greedy over arm_values; 0 = greedy, no exploration to learn from)."
        ),
    )
    min_ess_fraction: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="OPE on the logs is flagged unreliable below this effective sample share.",
    )
    max_weight_flag: float = Field(
        default=50.0,
        ge=1,
        description="OPE on the logs is flagged unreliable when a weight exceeds this.",
    )

    @model_validator(mode="after")
    def _source_has_location(self) -> EventsConfig:
        if self.source == "folder" and self.path is None:
            raise ValueError("events.source 'folder' needs events.path")
        if self.source == "s3" and not (self.s3_uri or "").startswith("s3://"):
            raise ValueError("events.source 's3' needs events.s3_uri = s3://bucket/prefix")
        return self
