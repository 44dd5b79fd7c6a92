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

That uniform rule spends most of its exploration on arms no candidate would trade, so the
logs cannot score candidates (effective sample 10-21 of 4,000). The *budgeted* rule
(:func:`budgeted_distribution`) explores only a small set S, at the rate
:func:`choose_exploration` sets from every arm's exact held-out reward so the expected cost
is at most a budget in bps per decision; training publishes S and epsilon in the bandit's
manifest (:class:`ExplorationPolicy`), the engine logs them with each decision and
:func:`distribution_from_record` recomputes the logged distribution from that record.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# --------------------------------------------------------------------------- budgeted rule
#: The two exploration rules a decision can be logged under (``engine.exploration.rule``).
RULE_EPSILON_GREEDY = "epsilon_greedy"
RULE_BUDGETED = "budgeted"
#: Manifest metric keys of the published exploration policy (floats, as every metric is).
EPSILON_KEY = "explore/epsilon"
SET_SIZE_KEY = "explore/set_size"
ARM_KEY = "explore/arm_{i}"


def budgeted_distribution(
    arm_values: np.ndarray, explore_set: np.ndarray | list[int] | tuple[int, ...], epsilon: float
) -> np.ndarray:
    """The budgeted rule: greedy mass ``1 - epsilon``, exploration mass only on a small set.

    With G the m arms tied for the largest ``arm_values`` (exact float comparison, as the
    epsilon-greedy rule) and S the exploration set (distinct arm indices, |S| = s >= 1),

        p[a] = (1 - epsilon) / m * 1{a in G}  +  epsilon / s * 1{a in S}

    in IEEE double precision, the two terms added in that order. An arm in both gets both
    shares; an arm in neither gets 0 (it is never traded, never logged: off-policy estimates
    of policies that trade it have no support, which is the price of a small budget).
    ``epsilon = 0`` is the greedy policy. Rows of an [N, K] ``arm_values`` share one set.
    """
    values = np.asarray(arm_values, dtype=np.float64)
    if values.ndim not in (1, 2) or values.shape[-1] < 1:
        raise ValueError(f"arm_values must be [K] or [N, K], got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("arm_values must be finite")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    rows = np.atleast_2d(values)
    k = rows.shape[1]
    members = np.asarray(explore_set, dtype=np.int64).reshape(-1)
    if members.size == 0 or len(set(members.tolist())) != members.size:
        raise ValueError(f"explore_set must be distinct arm indices, got {members.tolist()}")
    if members.min() < 0 or members.max() >= k:
        raise ValueError(f"explore_set {members.tolist()} is outside 0..{k - 1}")
    in_set = np.zeros(k, dtype=bool)
    in_set[members] = True
    greedy = rows >= rows.max(axis=1, keepdims=True)
    m = greedy.sum(axis=1, keepdims=True)
    probs = np.where(greedy, (1.0 - epsilon) / m, 0.0) + np.where(
        in_set, epsilon / members.size, 0.0
    )
    return probs if values.ndim == 2 else probs[0]


def exploration_record(
    arm_values: np.ndarray, explore_set: list[int] | tuple[int, ...], epsilon: float
) -> dict[str, object]:
    """What a decision logs about its budgeted exploration (``engine.exploration``): enough
    for :func:`distribution_from_record` to recompute the logged distribution exactly."""
    values = np.asarray(arm_values, dtype=np.float64).reshape(-1)
    greedy = np.flatnonzero(values >= values.max())
    return {
        "rule": RULE_BUDGETED,
        "epsilon": float(epsilon),
        "set": [int(a) for a in explore_set],
        "greedy": [int(a) for a in greedy],
    }


def distribution_from_record(record: dict[str, object], n_arms: int) -> np.ndarray:
    """The logged action distribution recomputed from a decision's ``engine.exploration``.

    ``budgeted``: the rule of :func:`budgeted_distribution` with the logged greedy arms as
    the tied maximum; ``epsilon_greedy``: :func:`action_distribution` (epsilon / K each,
    the greedy arms sharing 1 - epsilon). Operation for operation, so the result equals the
    logged ``action_distribution`` bit for bit.
    """
    greedy = [int(a) for a in record["greedy"]]  # type: ignore[attr-defined]
    epsilon = float(record["epsilon"])  # type: ignore[arg-type]
    values = np.zeros(n_arms)
    values[greedy] = 1.0
    if record["rule"] == RULE_BUDGETED:
        return budgeted_distribution(values, record["set"], epsilon)  # type: ignore[arg-type]
    if record["rule"] == RULE_EPSILON_GREEDY:
        return action_distribution(values, epsilon)
    raise ValueError(f"unknown exploration rule {record['rule']!r}")


def exploration_cost(
    rewards: np.ndarray, arm_values: np.ndarray, explore_set: list[int] | tuple[int, ...]
) -> float:
    """Expected reward lost per decision, per unit of epsilon, by the budgeted rule.

    The rule is linear in epsilon: p_eps = p_0 + epsilon (u_S - p_0), with p_0 the greedy
    distribution and u_S uniform on the set, so the expected cost on decisions with known
    per-arm rewards ``rewards`` [N, K] is epsilon * mean_i sum_a (p_0 - u_S)[i, a] r[i, a].
    Negative when the set's arms earn more than the greedy ones on these decisions.
    """
    r = np.asarray(rewards, dtype=np.float64)
    p0 = budgeted_distribution(arm_values, explore_set, 0.0)
    p1 = budgeted_distribution(arm_values, explore_set, 1.0)
    if r.shape != np.shape(p0) or r.ndim != 2:
        raise ValueError(f"rewards must be [N, K] like arm_values, got {r.shape}")
    return float(np.mean(np.sum((p0 - p1) * r, axis=1)))


@dataclass(frozen=True)
class ExplorationPolicy:
    """A published exploration set and rate, with what they were measured to cost.

    ``expected_cost_bps`` is epsilon times :func:`exploration_cost`, in bps per decision, on
    the bars they were chosen on (the bandit's held-out span); ``gap_bps`` the cost per unit
    epsilon. The engine reads ``arms`` and ``epsilon`` from the bandit's manifest metrics
    (:meth:`to_metrics` / :meth:`from_metrics`).
    """

    arms: tuple[int, ...]
    epsilon: float
    budget_bps: float
    expected_cost_bps: float
    gap_bps: float

    def to_metrics(self) -> dict[str, float]:
        out = {
            EPSILON_KEY: self.epsilon,
            SET_SIZE_KEY: float(len(self.arms)),
            "explore/budget_bps": self.budget_bps,
            "explore/expected_cost_bps": self.expected_cost_bps,
            "explore/gap_bps": self.gap_bps,
        }
        out.update({ARM_KEY.format(i=i): float(a) for i, a in enumerate(self.arms)})
        return out

    @staticmethod
    def from_metrics(
        metrics: dict[str, float], n_arms: int
    ) -> tuple[tuple[int, ...], float] | None:
        """(arms, epsilon) published in ``metrics``, or None when absent or malformed."""
        try:
            size = int(metrics[SET_SIZE_KEY])
            epsilon = float(metrics[EPSILON_KEY])
            arms = tuple(int(metrics[ARM_KEY.format(i=i)]) for i in range(size))
        except (KeyError, TypeError, ValueError):
            return None
        ok = (
            size >= 1
            and 0.0 <= epsilon <= 1.0
            and len(set(arms)) == size
            and all(0 <= a < n_arms for a in arms)
        )
        return (arms, epsilon) if ok else None


def choose_exploration(
    rewards: np.ndarray,
    arm_values: np.ndarray,
    *,
    budget_bps: float,
    set_size: int,
    max_epsilon: float,
    include: tuple[int, ...] = (),
) -> ExplorationPolicy:
    """The exploration set and the largest epsilon whose expected cost is within budget.

    The set is ``include`` (the arms the slot's candidates trade, first) topped up with the
    arms of the highest mean reward on these decisions, ``set_size`` arms in all (at least
    ``len(include)``). Epsilon is ``max_epsilon`` when exploring costs at most
    ``budget_bps / max_epsilon`` per unit, else ``budget_bps / gap``: the expected cost,
    measured exactly on ``rewards`` [N, K] (every arm's net reward on held-out bars), is at
    most the budget.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or len(r) == 0:
        raise ValueError(f"rewards must be a non-empty [N, K], got {r.shape}")
    if budget_bps < 0 or not 0.0 < max_epsilon <= 1.0 or set_size < 1:
        raise ValueError("need budget_bps >= 0, 0 < max_epsilon <= 1, set_size >= 1")
    arms = list(dict.fromkeys(int(a) for a in include))
    for a in np.argsort(-r.mean(axis=0), kind="stable"):
        if len(arms) >= set_size:
            break
        if int(a) not in arms:
            arms.append(int(a))
    gap_bps = exploration_cost(r, arm_values, arms) * 1e4
    epsilon = max_epsilon if gap_bps * max_epsilon <= budget_bps else budget_bps / gap_bps
    return ExplorationPolicy(tuple(arms), epsilon, budget_bps, epsilon * gap_bps, gap_bps)
