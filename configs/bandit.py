"""Strategy arms and bandit section (owned by the bandit model)."""

from __future__ import annotations

from pydantic import Field

from configs.base import Section


class BanditConfig(Section):
    """Strategy arms, rewards and the neural contextual bandit."""

    reward_horizon: int = Field(default=6, gt=0, description="Bars over which an arm's P&L counts.")
    cost_bps: float = Field(default=1.0, ge=0, description="Cost per unit turnover, basis points.")
    slippage_bps: float = Field(default=0.5, ge=0, description="Slippage per unit turnover, bps.")
