"""CVaR-PPO position sizer section (owned by the sizer model)."""

from __future__ import annotations

from pydantic import Field

from configs.base import Section


class SizerConfig(Section):
    """CVaR-constrained PPO position sizer."""

    total_timesteps: int = Field(default=20_000, gt=0, description="PPO training budget.")
    cvar_alpha: float = Field(default=0.05, gt=0, lt=1, description="CVaR tail probability.")
