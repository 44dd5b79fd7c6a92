"""Recommendation section: how the exit settings are chosen and judged (docs/recommendations.md)."""

from __future__ import annotations

from pydantic import Field

from configs.base import Section, confirm_fraction_field


class RecommendationConfig(Section):
    """Exits chosen on evidence: candidates fitted on the earlier trades, kept only when their
    lift over the live settings holds on the test and the confirmation span."""

    max_hold: int = Field(
        default=24, gt=0, description="Bars after entry at which an open trade exits on time."
    )
    confirm_fraction: float = confirm_fraction_field()
    holdout_fraction: float = Field(
        default=0.4,
        gt=0,
        lt=1,
        description="Later share of each family's trades held out (test + confirmation).",
    )
    n_bootstrap: int = Field(default=400, ge=50, description="Block-bootstrap resamples.")
    bootstrap_block: int = Field(default=20, ge=1, description="Block length in trades.")
    ci_level: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="Two-sided level of the lift's interval; its lower end is the one-sided "
        "(1 + level) / 2 bound the adoption rule reads.",
    )
