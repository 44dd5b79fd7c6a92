"""The exploration rule the bot samples from and logs: epsilon-greedy over ``arm_values``.

Off-policy evaluation and importance-weighted training need, for every logged decision, the
probability the bot's policy gave the arm it traded. That probability is only trustworthy if
the bot and edgeflow compute it the same way, so the rule is deliberately simple and written
down to the operation (``docs/events.md``): with K arms and the m arms tied for the largest
value (``value >= max - tie_tolerance``),

    p[a] = epsilon / K + (1 - epsilon) / m     if a is one of the m greedy arms
    p[a] = epsilon / K                         otherwise

in IEEE double precision, from the float32 ``arm_values`` the published bandit outputs.
The bot draws u uniform in [0, 1) and trades the first arm whose cumulative probability
exceeds u (:func:`sample_arm`), then logs ``p[arm]`` as the decision's propensity.
"""

from __future__ import annotations

import numpy as np


def action_distribution(
    arm_values: np.ndarray, epsilon: float, tie_tolerance: float = 0.0
) -> np.ndarray:
    """Epsilon-greedy probabilities over the arms, ties for the best arm split evenly.

    Parameters
    ----------
    arm_values : [K] or [N, K] the bandit's ``arm_values`` (any float dtype, finite).
    epsilon : share of uniform exploration in [0, 1]; every arm gets at least epsilon / K.
    tie_tolerance : arms within this of the row's maximum count as tied (>= 0).

    Returns
    -------
    float64 array shaped like ``arm_values``; each row sums to 1.
    """
    values = np.asarray(arm_values, dtype=np.float64)
    if values.ndim not in (1, 2) or values.shape[-1] < 1:
        raise ValueError(f"arm_values must be [K] or [N, K], got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("arm_values must be finite")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    if tie_tolerance < 0:
        raise ValueError(f"tie_tolerance must be >= 0, got {tie_tolerance}")
    rows = np.atleast_2d(values)
    k = rows.shape[1]
    greedy = rows >= rows.max(axis=1, keepdims=True) - tie_tolerance
    m = greedy.sum(axis=1, keepdims=True)
    probs = np.where(greedy, epsilon / k + (1.0 - epsilon) / m, epsilon / k)
    return probs if values.ndim == 2 else probs[0]


def sample_arm(probs: np.ndarray, u: np.ndarray | float) -> np.ndarray:
    """The arm of each row for uniform draws ``u`` in [0, 1): the first cumulative > u.

    ``probs`` is [K] or [N, K]; returns an int array of shape ``probs.shape[:-1]``.
    """
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    draws = np.broadcast_to(np.asarray(u, dtype=np.float64), (p.shape[0],))
    if np.any(draws < 0) or np.any(draws >= 1):
        raise ValueError("u must be in [0, 1)")
    cum = np.cumsum(p, axis=1)
    arm = np.minimum((draws[:, None] >= cum).sum(axis=1), p.shape[1] - 1)
    return arm if np.ndim(probs) == 2 else arm.reshape(())
