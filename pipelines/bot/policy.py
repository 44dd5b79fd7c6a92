"""From the bandit's arm values to an action distribution, and a logged draw from it.

The bot must log the probability with which it chose its arm (its *propensity*): off-policy
evaluation and logged-feedback training weight each logged reward by ``1 / propensity``, so a
deterministic argmax (propensity 1 for the chosen arm, 0 for all others) teaches nothing about
the arms it never picks. Epsilon-greedy keeps every arm's probability at least
``epsilon / K`` while trading the bandit's greedy arm most of the time; a bot in any language
computes the same distribution from the same ``arm_values`` (``docs/bot.md``).
"""

from __future__ import annotations

import numpy as np


def greedy_arm(arm_values: np.ndarray) -> int:
    """Index of the largest value; ties go to the lowest index (``np.argmax``'s rule)."""
    values = np.asarray(arm_values, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"arm_values must be a non-empty finite vector, got {values!r}")
    return int(np.argmax(values))


def action_distribution(arm_values: np.ndarray, epsilon: float) -> np.ndarray:
    """Epsilon-greedy probabilities over the ``K`` arms (float64, sums to 1).

    ``(1 - epsilon) + epsilon / K`` on the greedy arm (:func:`greedy_arm`), ``epsilon / K``
    on every other arm. ``epsilon = 0`` is the deterministic greedy policy.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    best = greedy_arm(arm_values)
    k = np.asarray(arm_values).size
    dist = np.full(k, epsilon / k)
    dist[best] += 1.0 - epsilon
    return dist


def one_hot(arm: int, n_arms: int) -> np.ndarray:
    """The distribution that always plays ``arm`` (the fallback's: propensity 1)."""
    if not 0 <= arm < n_arms:
        raise ValueError(f"arm {arm} is outside 0..{n_arms - 1}")
    dist = np.zeros(n_arms)
    dist[arm] = 1.0
    return dist


def sample_arm(dist: np.ndarray, rng: np.random.Generator) -> tuple[int, float]:
    """Draw an arm from ``dist`` with one uniform from ``rng``; returns (arm, propensity).

    Inverse CDF: the first arm whose cumulative probability exceeds the uniform draw, so an
    arm with probability 0 is never drawn and the propensity logged is ``dist[arm] > 0``.
    """
    p = np.asarray(dist, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or (p < 0).any() or abs(float(p.sum()) - 1.0) > 1e-9:
        raise ValueError(f"dist must be a probability vector, got {p!r}")
    u = float(rng.random())
    cdf = np.cumsum(p)
    arm = int(np.searchsorted(cdf, u * float(cdf[-1]), side="right"))
    arm = min(arm, p.size - 1)
    while p[arm] == 0.0:  # u landed exactly on a boundary before a zero-probability tail
        arm -= 1
    return arm, float(p[arm])
