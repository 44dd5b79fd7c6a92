"""The risk math of CVaR-PPO (CPPO, Ying et al., IJCAI 2022), pure and testable by hand.

CPPO maximises the expected return ``J(pi)`` subject to ``CVaR_alpha(L) <= bound`` where
``L = -R(tau)`` is the loss of a trajectory. With the Rockafellar-Uryasev form
``CVaR_alpha(L) = min_nu nu + E[(L - nu)^+] / alpha`` the Lagrangian is

    max_pi min_{lam >= 0}  J(pi) - lam * (nu + E[(L - nu)^+] / alpha - bound)

Its policy gradient adds ``-(lam / alpha) * (L(tau) - nu)^+`` to the advantage of every step of
trajectory ``tau`` (the score-function gradient of a trajectory-level term), so only the steps
of paths in the tail beyond the VaR threshold ``nu`` are pushed down, each by its own path's
excess loss. ``nu`` minimises the inner problem at the empirical VaR, which is how it is
estimated from each rollout; ``lam`` follows projected dual ascent on the constraint violation.

A rollout buffer is ``[n_steps, n_envs]``; a *path* is a maximal run of rows in one env column
that starts at row 0 or at an ``episode_start``. When ``n_steps`` is a multiple of a fixed
episode length and all envs start together, every path is a complete episode.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from pipelines.evaluation.risk import cvar, var


class CVaRRollout(NamedTuple):
    """What one rollout says about the tail, and the advantage penalty it implies."""

    var: float  # VaR threshold nu of path returns, as a positive loss
    cvar: float  # CVaR_alpha of path returns, as a positive loss
    n_paths: int
    n_tail: int  # paths whose loss exceeds nu (the ones penalised)
    path_ids: npt.NDArray[np.int64]  # [n_steps, n_envs] path index of every step
    path_returns: npt.NDArray[np.float64]  # [n_paths] summed reward of every path
    penalty: npt.NDArray[np.float64]  # [n_steps, n_envs] amount to subtract from advantages


def path_ids(episode_starts: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Number the paths of a ``[n_steps, n_envs]`` buffer: column by column, top to bottom."""
    starts = np.asarray(episode_starts, dtype=bool)
    if starts.ndim != 2:
        raise ValueError(f"episode_starts must be [n_steps, n_envs], got shape {starts.shape}")
    new_path = starts.copy()
    new_path[0, :] = True
    # Column-major order: env 0's paths first, then env 1's, so ids never mix columns.
    flat = np.cumsum(new_path.T.reshape(-1)) - 1
    return flat.reshape(starts.shape[1], starts.shape[0]).T.astype(np.int64)


def path_returns(
    rewards: npt.ArrayLike, episode_starts: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Path ids of every step and the undiscounted return of every path."""
    r = np.asarray(rewards, dtype=np.float64)
    ids = path_ids(episode_starts)
    if r.shape != ids.shape:
        raise ValueError(f"rewards {r.shape} and episode_starts {ids.shape} differ in shape")
    returns = np.bincount(ids.reshape(-1), weights=r.reshape(-1), minlength=int(ids.max()) + 1)
    return ids, returns.astype(np.float64)


def cvar_rollout(
    rewards: npt.ArrayLike, episode_starts: npt.ArrayLike, alpha: float, lam: float
) -> CVaRRollout:
    """VaR, CVaR and the per-step CPPO advantage penalty ``(lam / alpha) * (L - nu)^+``."""
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    ids, rets = path_returns(rewards, episode_starts)
    nu = var(rets, alpha)
    excess = np.maximum(-rets - nu, 0.0)  # (L - nu)^+ per path
    penalty = (lam / alpha) * excess[ids]
    return CVaRRollout(
        var=nu,
        cvar=cvar(rets, alpha),
        n_paths=int(rets.size),
        n_tail=int(np.count_nonzero(excess > 0)),
        path_ids=ids,
        path_returns=rets,
        penalty=penalty,
    )


def dual_ascent(lam: float, cvar_value: float, bound: float, lr: float, lam_max: float) -> float:
    """One projected dual-ascent step: ``lam += lr * (CVaR - bound)``, kept in ``[0, lam_max]``.

    ``lam`` grows while the tail loss is above the bound and shrinks back to 0 once the
    constraint holds with slack, which is what makes this a constrained optimisation rather
    than a fixed penalty.
    """
    if lr < 0 or lam_max < 0:
        raise ValueError("lr and lam_max must be >= 0")
    return float(np.clip(lam + lr * (cvar_value - bound), 0.0, lam_max))
