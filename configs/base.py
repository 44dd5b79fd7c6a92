"""The base every config section shares: frozen, strict, documented fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A config section: immutable and refusing unknown keys, so typos fail loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def confirm_fraction_field() -> float:
    """The one definition of every model section's ``confirm_fraction`` (docs/models.md,
    "Spans"): the later share of the held-out rows kept back as the confirmation span."""
    field: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Later share of the held-out rows kept back as the confirmation span: "
        "nothing looks at it before the publish decision, and every lift gate must hold "
        "on it too (docs/models.md, Spans).",
    )
    return field
