"""CVaR-PPO position sizer section (owned by the sizer model)."""

from __future__ import annotations

from pydantic import Field, model_validator

from configs.base import Section, confirm_fraction_field


class SizerConfig(Section):
    """CVaR-constrained PPO position sizer (CPPO on stable-baselines3) and its evaluation."""

    # --- budget and PPO -------------------------------------------------------------------
    total_timesteps: int = Field(
        default=100_000, gt=0, description="Training budget per sizer (CVaR-PPO and plain PPO)."
    )
    n_envs: int = Field(default=16, gt=0, description="Vectorized environments per rollout.")
    n_steps: int = Field(
        default=128, gt=0, description="Steps per env per rollout; a multiple of window."
    )
    batch_size: int = Field(default=256, gt=1, description="PPO minibatch size.")
    n_epochs: int = Field(default=5, gt=0, description="PPO epochs per rollout.")
    learning_rate: float = Field(
        default=3e-4,
        gt=0,
        description="Adam learning rate (3e-4: 1e-3 overshot the constraint on a validation "
        "span inside the training span).",
    )
    gamma: float = Field(
        default=0.9, gt=0, le=1, description="Discount; low, since a size moves only one bar."
    )
    gae_lambda: float = Field(default=0.9, gt=0, le=1, description="GAE lambda.")
    ent_coef: float = Field(default=0.0, ge=0, description="Entropy bonus coefficient.")
    net_arch: list[int] = Field(
        default=[64, 64], min_length=1, description="Hidden layers of actor and critic."
    )
    log_std_init: float = Field(
        default=-2.0,
        description="Initial log std of the Gaussian policy (exploration noise; -2: std 0.14, "
        "about 0.13 of multiplier, so the noise does not dominate the rollout's tail).",
    )
    torch_threads: int = Field(
        default=1, gt=0, description="torch threads while training (1 keeps runs reproducible)."
    )

    # --- environment -----------------------------------------------------------------------
    window: int = Field(
        default=1,
        ge=1,
        description="Episode length in bars = the CVaR horizon; 1 constrains per-bar loss, the "
        "gated figure, and gives each rollout n_envs * n_steps paths for the tail estimate.",
    )
    cost_bps: float = Field(
        default=1.0, ge=0, description="Cost per unit of position change, in basis points."
    )
    reward_scale: float = Field(
        default=100.0, gt=0, description="Multiplies per-bar P&L so PPO sees O(1) rewards."
    )
    obs_clip: float = Field(
        default=10.0, gt=0, description="Standardised observations are clipped to +/- this."
    )

    # --- the CVaR constraint ---------------------------------------------------------------
    cvar_alpha: float = Field(default=0.05, gt=0, lt=1, description="CVaR tail probability.")
    cvar_bound: float | None = Field(
        default=None,
        gt=0,
        description="Max CVaR of window loss (fraction of capital); None: use cvar_bound_ratio.",
    )
    cvar_bound_ratio: float = Field(
        default=1.0,
        gt=0,
        description="Bound = this x the train-span window CVaR of the volatility-targeting "
        "baseline at mean leverage 1 (the tail a simple rule already reaches).",
    )
    lambda_lr: float = Field(
        default=0.05,
        ge=0,
        description="Dual-ascent step of the Lagrange multiplier (0.05 chosen on a validation "
        "span inside the training span: 0.1 overshot and cost Sharpe).",
    )
    lambda_init: float = Field(default=0.0, ge=0, description="Initial Lagrange multiplier.")
    lambda_max: float = Field(default=50.0, gt=0, description="Cap on the Lagrange multiplier.")

    # --- which strategy, baselines, evaluation ----------------------------------------------
    arm: str | None = Field(
        default=None,
        description="Strategy arm to size; None: best train-span Sharpe (chosen on train only).",
    )
    confirm_fraction: float = confirm_fraction_field()
    holdout_fraction: float = Field(
        default=0.3, gt=0, lt=1, description="Later share of the bars held out for evaluation."
    )
    rule_window: int = Field(
        default=48, gt=1, description="Rule sizer: bars of trailing strategy P&L in its score."
    )
    rule_scale: float = Field(
        default=1.0, ge=0, description="Rule sizer: multiplier = clip(1 + scale*tanh(score))."
    )
    baseline_window: int = Field(
        default=48, gt=1, description="Volatility-targeting baseline: bars of realized vol."
    )
    gate_sharpe_tolerance: float = Field(
        default=0.0,
        description="Gate: Sharpe may be at most this much below the constant-multiplier "
        "baseline's at the same mean leverage (0: no Sharpe loss). Tests of the blocked path "
        "set it negative.",
    )
    n_bootstrap: int = Field(default=400, ge=50, description="Block-bootstrap resamples.")
    bootstrap_block: int = Field(default=48, ge=1, description="Block length in held-out bars.")
    ci_level: float = Field(
        default=0.9, gt=0, lt=1, description="Two-sided CI level; its lower end is one-sided 95%."
    )
    onnx_opset: int = Field(default=17, ge=13, description="ONNX opset of the exported actor.")

    @model_validator(mode="after")
    def _rollout_holds_whole_episodes(self) -> SizerConfig:
        if self.n_steps % self.window:
            raise ValueError(
                f"n_steps ({self.n_steps}) must be a multiple of window ({self.window}) so each "
                "rollout holds whole episodes for the CVaR estimate"
            )
        return self
