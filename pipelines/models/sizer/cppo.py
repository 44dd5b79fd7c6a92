"""CVaR-PPO: stable-baselines3's PPO with a CVaR constraint on trajectory returns (CPPO).

Only what differs from PPO is overridden: ``__init__`` takes the constraint's settings and
``train`` applies the CPPO advantage penalty to the rollout buffer before PPO's usual update,
then moves the Lagrange multiplier by dual ascent. The math lives in
:mod:`pipelines.models.sizer.constraint`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from stable_baselines3 import PPO

from pipelines.models.sizer.constraint import cvar_rollout, dual_ascent

logger = logging.getLogger(__name__)


class CVaRPPO(PPO):
    """PPO maximising return subject to ``CVaR_alpha(-R) <= cvar_bound`` (reward units).

    Parameters (beyond :class:`stable_baselines3.PPO`)
    ----------
    cvar_alpha : tail probability of the constraint.
    cvar_bound : the largest allowed CVaR of path loss, in the environment's reward units.
    lambda_lr : dual-ascent step size of the Lagrange multiplier.
    lambda_init, lambda_max : the multiplier's start and cap.

    ``cvar_history_`` holds one dict per update: ``lambda`` (used in that update), ``var``,
    ``cvar``, ``n_paths``, ``n_tail``, ``lambda_next``; the same figures go to SB3's logger
    as ``cvar/*``.
    """

    def __init__(
        self,
        *args: Any,
        cvar_alpha: float = 0.05,
        cvar_bound: float = 1.0,
        lambda_lr: float = 0.01,
        lambda_init: float = 0.0,
        lambda_max: float = 100.0,
        **kwargs: Any,
    ) -> None:
        if not 0.0 < cvar_alpha < 1.0:
            raise ValueError(f"cvar_alpha must be in (0, 1), got {cvar_alpha}")
        if lambda_lr < 0 or lambda_init < 0 or lambda_max < lambda_init:
            raise ValueError("need lambda_lr >= 0 and 0 <= lambda_init <= lambda_max")
        self.cvar_alpha = cvar_alpha
        self.cvar_bound = cvar_bound
        self.lambda_lr = lambda_lr
        self.lambda_max = lambda_max
        self.lambda_ = float(lambda_init)
        self.cvar_history_: list[dict[str, float]] = []
        super().__init__(*args, **kwargs)

    def apply_cvar_constraint(self) -> dict[str, float]:
        """Penalise the tail paths' advantages in the rollout buffer; step lambda; log it."""
        buf = self.rollout_buffer
        stats = cvar_rollout(buf.rewards, buf.episode_starts, self.cvar_alpha, self.lambda_)
        buf.advantages -= stats.penalty.astype(buf.advantages.dtype)
        lam_used = self.lambda_
        self.lambda_ = dual_ascent(
            lam_used, stats.cvar, self.cvar_bound, self.lambda_lr, self.lambda_max
        )
        record = {
            "lambda": lam_used,
            "lambda_next": self.lambda_,
            "var": stats.var,
            "cvar": stats.cvar,
            "bound": float(self.cvar_bound),
            "n_paths": float(stats.n_paths),
            "n_tail": float(stats.n_tail),
            "mean_path_return": float(np.mean(stats.path_returns)),
            "timesteps": float(self.num_timesteps),
        }
        self.cvar_history_.append(record)
        for key in ("lambda", "var", "cvar", "n_tail", "mean_path_return"):
            self.logger.record(f"cvar/{key}", record[key])
        logger.debug(
            "update %d: lambda %.4f -> %.4f, VaR %.4f, CVaR %.4f (bound %.4f)",
            len(self.cvar_history_),
            lam_used,
            self.lambda_,
            stats.var,
            stats.cvar,
            self.cvar_bound,
        )
        return record

    def train(self) -> None:
        """CPPO update: constrain the advantages, then PPO's own clipped update."""
        self.apply_cvar_constraint()
        super().train()
