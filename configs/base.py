"""The base every config section shares: frozen, strict, documented fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: immutable and refusing unknown keys, so typos fail loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")
