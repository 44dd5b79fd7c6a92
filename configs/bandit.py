"""Strategy arms and bandit section (owned by the bandit model)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from configs.base import Section, confirm_fraction_field


class LoggedFeedbackConfig(Section):
    """Training and judging the bandit on the bot's own joined decisions (docs/events.md).

    Below ``min_joined`` joined decisions the bandit learns from every arm's reward computed
    from bars (full information); from there on it learns from what the bot traded, weighted
    by the inverse of the logged propensity, and is evaluated off-policy on the later logs.
    """

    enabled: bool = Field(
        default=True, description="Use the bot's logged feedback once enough has joined."
    )
    min_joined: int = Field(
        default=2000,
        ge=20,
        description="Joined decisions (with features) needed before training on them.",
    )
    holdout_fraction: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="Later share of the logged decisions held out for off-policy evaluation.",
    )
    max_weight: float = Field(
        default=20.0, ge=1, description="Clip of the training weights 1/propensity."
    )
    min_ess_fraction: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="logs/reliable is 0 when the candidate's effective sample share is below.",
    )
    max_weight_flag: float = Field(
        default=50.0,
        ge=1,
        description="logs/reliable is 0 when a candidate's importance weight exceeds this.",
    )
    min_ess: float = Field(
        default=100.0,
        ge=1,
        description=(
            "Logged-data gate: a candidate whose effective sample on the held-out logs, "
            "(sum w)^2 / sum w^2 with w = 1{its arm = logged arm} / propensity, is below this "
            "is not scored (the gate says so instead)."
        ),
    )


class ExplorationConfig(Section):
    """The budgeted exploration the bot runs with the published bandit (docs/events.md).

    Training picks the exploration set (the arms ranked next after the policy's own on the
    held-out bars) and the largest epsilon whose expected cost, measured on those bars with
    every arm's exact net reward, is at most ``budget_bps`` per decision; both go into the
    bandit's manifest, and the engine explores only among those arms at that rate.
    """

    budget_bps: float = Field(
        default=1.5,
        ge=0,
        description="Most expected cost of exploring, bps of reward per decision.",
    )
    set_size: int = Field(
        default=3, ge=1, le=11, description="Arms in the exploration set (besides the greedy)."
    )
    max_epsilon: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Cap on the exploration rate when exploring costs (almost) nothing.",
    )


class BanditConfig(Section):
    """Strategy arms, rewards and the neural contextual bandit."""

    reward_horizon: int = Field(default=6, gt=0, description="Bars over which an arm's P&L counts.")
    cost_bps: float = Field(default=1.0, ge=0, description="Cost per unit turnover, basis points.")
    slippage_bps: float = Field(default=0.5, ge=0, description="Slippage per unit turnover, bps.")
    confirm_fraction: float = confirm_fraction_field()
    holdout_fraction: float = Field(
        default=0.3, gt=0, lt=1, description="Later share of the span held out for OPE."
    )
    logging_policy: Literal["uniform", "epsilon_greedy"] = Field(
        default="uniform",
        description="The bot's logging policy replayed on history to make the logged data.",
    )
    logging_epsilon: float = Field(
        default=0.3, gt=0, le=1, description="epsilon_greedy: share of uniform exploration."
    )
    logging_window: int = Field(
        default=48,
        gt=0,
        description="epsilon_greedy: decisions the follow-the-leader rule averages.",
    )
    training_feedback: Literal["full_information", "logged"] = Field(
        default="full_information",
        description=(
            "What the bandit learns from: every arm's reward per decision (the arms are rule "
            "strategies computable from bars) or only the logged arm's reward (trade logs)."
        ),
    )
    label_window: int = Field(
        default=48,
        gt=0,
        description=(
            "full_information: a training row's target is each arm's reward averaged over "
            "the next label_window decisions of its symbol (inside the training span); "
            "1 = the row's own reward."
        ),
    )
    safety_level: float = Field(
        default=0.8,
        ge=0.5,
        lt=1,
        description=(
            "Safe policy improvement: leave the default arm only where an arm's advantage "
            "over it is positive at this one-sided posterior level (a conservativeness "
            "setting, not a calibrated confidence: overlapping labels shrink the posterior)."
        ),
    )
    hidden: list[int] = Field(
        default=[128, 64], min_length=1, description="Hidden layer widths (43 -> ... -> 12)."
    )
    dropout: float = Field(default=0.2, ge=0, lt=1, description="Dropout after each hidden layer.")
    epochs: int = Field(default=60, gt=0, description="Maximum training epochs.")
    batch_size: int = Field(default=256, gt=0, description="Mini-batch size.")
    learning_rate: float = Field(default=1e-3, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(default=1e-2, ge=0, description="Adam weight decay (L2).")
    patience: int = Field(
        default=4, gt=0, description="Early stopping: epochs without validation improvement."
    )
    val_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Later share of the training span for early stopping."
    )
    prior_precision: float = Field(
        default=1.0, gt=0, description="NeuralLinear: precision of the Gaussian prior on weights."
    )
    ts_prior_a: float = Field(default=1.0, gt=0, description="Beta-Thompson prior a (wins).")
    ts_prior_b: float = Field(default=1.0, gt=0, description="Beta-Thompson prior b (losses).")
    n_bootstrap: int = Field(default=400, ge=50, description="Bootstrap resamples for OPE CIs.")
    bootstrap_block: int = Field(
        default=24, gt=0, description="Moving-block length (decisions) for the bootstrap."
    )
    ci_level: float = Field(default=0.9, gt=0, lt=1, description="Confidence level of the CIs.")
    ridge_alpha: float = Field(
        default=10.0, gt=0, description="Ridge penalty of DR's cross-fitted reward model."
    )
    min_lift: float = Field(
        default=0.0,
        description=(
            "Gate: the lower bound of the bandit's exact lift over the best single arm (and, "
            "on the bot's logs, of the DR lift over the logging policy) must exceed this, "
            "on the test and the confirmation span (reward per decision, a fraction)."
        ),
    )
    onnx_opset: int = Field(default=17, ge=13, description="ONNX opset of the exported net.")
    logged: LoggedFeedbackConfig = Field(default_factory=LoggedFeedbackConfig)
    exploration: ExplorationConfig = Field(default_factory=ExplorationConfig)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        # the gate is no longer a DR estimate on bars: say so rather than "extra input"
        if isinstance(data, dict) and "min_dr_lift" in data:
            raise ValueError(
                "bandit.min_dr_lift was renamed bandit.min_lift: on bars the gate reads the "
                "exact lift over the best single arm, not a doubly-robust estimate"
            )
        return data
