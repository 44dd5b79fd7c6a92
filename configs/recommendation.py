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
    q_episodes: int = Field(
        default=200,
        ge=1,
        description="Episodes of the tabular Q-learning candidate over stop / target moves.",
    )
    q_steps: int = Field(default=24, ge=1, description="Parameter moves per Q-learning episode.")
    q_epsilon: float = Field(
        default=0.2, ge=0, le=1, description="Q-learning exploration: share of random moves."
    )
    q_alpha: float = Field(default=0.2, gt=0, le=1, description="Q-learning step size.")
    q_gamma: float = Field(default=0.8, ge=0, lt=1, description="Q-learning discount.")
    q_batch: int = Field(
        default=64,
        ge=1,
        description="Fit-span trades drawn per move: their mean simulated net P&L is the reward.",
    )
    ci_level: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="Two-sided level of the lift's interval; its lower end is the one-sided "
        "(1 + level) / 2 bound the adoption rule reads.",
    )
