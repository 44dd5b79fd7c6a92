"""From the bandit's arm values to an action distribution, and a logged draw from it.

The bot must log the probability with which it chose its arm (its *propensity*): off-policy
evaluation and logged-feedback training weight each logged reward by ``1 / propensity``, so a
deterministic argmax (propensity 1 for the chosen arm, 0 for all others) teaches nothing about
the arms it never picks. The rule is the event contract's (``docs/events.md``, "Exploration"),
operation for operation, so edgeflow and a bot in any language compute the same numbers:
epsilon-greedy over the ``arm_values``, arms tied for the maximum sharing the greedy mass,

    p[a] = epsilon / K + (1 - epsilon) / m     if a is one of the m arms at the maximum
    p[a] = epsilon / K                         otherwise

then the first arm whose cumulative probability exceeds a uniform draw ``u`` in [0, 1).
"""

from __future__ import annotations

import numpy as np


def action_distribution(arm_values: np.ndarray, epsilon: float) -> np.ndarray:
    """Epsilon-greedy probabilities over the ``K`` arms (float64, sums to 1).

    ``epsilon = 0`` is the greedy policy (ties split evenly); ``epsilon = 1`` is uniform.
    """
    values = np.asarray(arm_values, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"arm_values must be a non-empty finite vector, got {values!r}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    k = values.size
    greedy = values >= values.max()
    m = int(greedy.sum())
    return np.where(greedy, epsilon / k + (1.0 - epsilon) / m, epsilon / k)


def one_hot(arm: int, n_arms: int) -> np.ndarray:
    """The distribution that always plays ``arm`` (as arm values: the fallback's greedy arm)."""
    if not 0 <= arm < n_arms:
        raise ValueError(f"arm {arm} is outside 0..{n_arms - 1}")
    dist = np.zeros(n_arms)
    dist[arm] = 1.0
    return dist


def draw_arm(dist: np.ndarray, u: float) -> int:
    """The first arm whose cumulative probability exceeds ``u`` in [0, 1) (the contract's).

    When rounding leaves the total just below ``u``, the last arm with a positive
    probability is taken, so the logged propensity is never 0.
    """
    p = np.asarray(dist, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or (p < 0).any() or abs(float(p.sum()) - 1.0) > 1e-9:
        raise ValueError(f"dist must be a probability vector, got {p!r}")
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must be in [0, 1), got {u}")
    arm = min(int((u >= np.cumsum(p)).sum()), p.size - 1)
    while p[arm] == 0.0:
        arm -= 1
    return arm


def sample_arm(dist: np.ndarray, rng: np.random.Generator) -> tuple[int, float]:
    """One seeded draw from ``dist``: (arm, its probability, the propensity to log)."""
    arm = draw_arm(dist, float(rng.random()))
    return arm, float(np.asarray(dist, dtype=np.float64)[arm])
