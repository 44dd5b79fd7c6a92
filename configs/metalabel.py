"""Meta-labeler section: P(an arm's trade is profitable net of costs)."""

from __future__ import annotations

from typing import Final

from pydantic import Field, field_validator

from configs.base import Section, confirm_fraction_field

#: The range the recommendation's ``confidence_threshold`` is clamped into (its safe bounds,
#: docs/recommendations.md). The meta-labeler's threshold becomes that field when it ships, so
#: its candidates must lie inside: one outside would be chosen, logged and gated at its own
#: value and then shipped clamped, at a value no gate judged.
CONFIDENCE_THRESHOLD_BOUNDS: Final = (0.5, 0.95)


class MetaLabelConfig(Section):
    """The meta-labeler: which trades, how they are split, the model, the filter and its gate."""

    horizon: int = Field(default=6, gt=0, description="Bars a trade is held after its entry.")
    cost_bps: float = Field(default=1.0, ge=0, description="Cost per unit turnover, bps.")
    slippage_bps: float = Field(default=0.5, ge=0, description="Slippage per unit turnover, bps.")
    confirm_fraction: float = confirm_fraction_field()
    holdout_fraction: float = Field(
        default=0.3, gt=0, lt=1, description="Later share of the span held out for the gates."
    )
    calibration_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Latest share of the training span kept for probability calibration.",
    )
    embargo: int = Field(
        default=24,
        ge=0,
        description="Bars dropped after each purge, per symbol, on top of the horizon.",
    )
    n_folds: int = Field(
        default=4, ge=2, description="Purged walk-forward folds on the fit part (threshold)."
    )
    n_estimators: int = Field(default=200, gt=0, description="LightGBM boosting rounds.")
    learning_rate: float = Field(default=0.03, gt=0, description="LightGBM learning rate.")
    num_leaves: int = Field(default=15, ge=2, description="LightGBM leaves per tree.")
    min_child_samples: int = Field(default=100, ge=1, description="LightGBM min rows per leaf.")
    thresholds: list[float] = Field(
        default=[0.5, 0.52, 0.55, 0.58, 0.6],
        min_length=1,
        description="Candidate P(win) thresholds; the walk-forward picks the one whose "
        "out-of-fold net P&L beats filtering by the per-arm prior at the same kept share by "
        "the most, among those keeping at least min_trade_share. Each within the "
        "recommendation's confidence_threshold bounds [0.5, 0.95].",
    )

    @field_validator("thresholds")
    @classmethod
    def _within_recommendation_bounds(cls, value: list[float]) -> list[float]:
        lo, hi = CONFIDENCE_THRESHOLD_BOUNDS
        outside = [t for t in value if not lo <= t <= hi]
        if outside:
            raise ValueError(
                f"{', '.join(f'{t:g}' for t in outside)} outside [{lo:g}, {hi:g}]: the chosen "
                "threshold ships as the recommendation's confidence_threshold, which is kept "
                "within those bounds, so a threshold outside them would ship at another value "
                "than the one gated"
            )
        return value

    min_trade_share: float = Field(
        default=0.1, gt=0, le=1, description="A threshold must keep at least this share of trades."
    )
    prior_vol_buckets: int = Field(
        default=3,
        ge=1,
        description="Volatility buckets of the per-arm prior P(win | arm, bucket), the "
        "meta-labeler's comparator; bucket edges are quantiles fitted on the fit span.",
    )
    prior_vol_feature: str = Field(
        default="rv_24", description="The feature whose fit-span quantiles cut the buckets."
    )
    prior_strength: float = Field(
        default=20.0,
        ge=0,
        description="Pseudo-trades shrinking a cell's win rate to its arm's (and an arm's to "
        "the fit span's base rate).",
    )
    n_bootstrap: int = Field(default=500, ge=50, description="Block-bootstrap resamples.")
    bootstrap_block: int = Field(
        default=48,
        ge=1,
        description="Block length in held-out bar rows (time-ordered, symbols interleaved).",
    )
    ci_level: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="Two-sided CI level; its lower end is the one-sided (1+level)/2 bound.",
    )
    max_brier_excess: float = Field(
        default=0.0,
        description="Gate: test-span Brier score at most the per-arm prior's plus this.",
    )
    onnx_opset: int = Field(default=15, ge=9, le=15, description="ONNX opset for the export.")
