"""Off-policy evaluation of a target policy from logged bandit data.

The estimators follow Open Bandit Pipeline's definitions (``obp.ope``): with logged
(x_i, a_i, r_i, p_i), target action probabilities pi(a | x_i) and importance weight
w_i = pi(a_i | x_i) / p_i,

* IPS:   mean(w_i r_i)
* SNIPS: sum(w_i r_i) / sum(w_i)
* DR:    mean(sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)))

Confidence intervals come from a moving-block bootstrap over the time-ordered decisions:
rewards of overlapping horizons are serially correlated, and an i.i.d. bootstrap would
make the intervals too narrow. Lifts (policy minus reference) are bootstrapped *paired*,
on the same resampled decisions, so their CI reflects the difference, not two noises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

ESTIMATORS: tuple[str, ...] = ("ips", "snips", "dr")


def _check(
    reward: np.ndarray, action: np.ndarray, pscore: np.ndarray, action_dist: np.ndarray
) -> None:
    n = len(reward)
    if not (len(action) == len(pscore) == len(action_dist) == n) or n == 0:
        raise ValueError("reward, action, pscore and action_dist need the same, non-zero length")
    if action_dist.ndim != 2:
        raise ValueError(f"action_dist must be [N, K], got shape {action_dist.shape}")
    if np.any(pscore <= 0) or np.any(pscore > 1):
        raise ValueError("pscore must be in (0, 1]")
    if not np.allclose(action_dist.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each row of action_dist must sum to 1")


def importance_weights(
    action: np.ndarray, pscore: np.ndarray, action_dist: np.ndarray
) -> np.ndarray:
    """w_i = pi(a_i | x_i) / p_i."""
    return action_dist[np.arange(len(action)), action] / pscore


def estimate_ips(
    reward: np.ndarray, action: np.ndarray, pscore: np.ndarray, action_dist: np.ndarray
) -> float:
    """Inverse propensity scoring: unbiased when propensities are right, high variance."""
    _check(reward, action, pscore, action_dist)
    return float(np.mean(importance_weights(action, pscore, action_dist) * reward))


def estimate_snips(
    reward: np.ndarray, action: np.ndarray, pscore: np.ndarray, action_dist: np.ndarray
) -> float:
    """Self-normalised IPS: small bias, much less variance when weights are large."""
    _check(reward, action, pscore, action_dist)
    w = importance_weights(action, pscore, action_dist)
    return float(np.sum(w * reward) / np.sum(w))


def dr_terms(
    reward: np.ndarray,
    action: np.ndarray,
    pscore: np.ndarray,
    action_dist: np.ndarray,
    q_hat: np.ndarray,
) -> np.ndarray:
    """Per-decision doubly-robust terms; their mean is the DR estimate."""
    _check(reward, action, pscore, action_dist)
    if q_hat.shape != action_dist.shape:
        raise ValueError(f"q_hat shape {q_hat.shape} != action_dist shape {action_dist.shape}")
    rows = np.arange(len(action))
    w = importance_weights(action, pscore, action_dist)
    return np.sum(action_dist * q_hat, axis=1) + w * (reward - q_hat[rows, action])


def estimate_dr(
    reward: np.ndarray,
    action: np.ndarray,
    pscore: np.ndarray,
    action_dist: np.ndarray,
    q_hat: np.ndarray,
) -> float:
    """Doubly robust: a reward model's direct estimate, corrected by IPS on its residuals."""
    return float(np.mean(dr_terms(reward, action, pscore, action_dist, q_hat)))


def block_bootstrap_starts(n: int, block: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, ceil(n / block)] block starts of a moving-block bootstrap of ``n`` decisions.

    Resample ``b`` is the blocks ``starts[b, j] .. starts[b, j] + block - 1`` laid end to end
    and cut to ``n`` rows. Kept as starts, not as an [n_boot, n] index matrix: for a
    12,000-decision span and 1,000 resamples that matrix is 96 MB, and every gather from it
    as much again (see :func:`resample_means` and :func:`resample_indices`).
    """
    if n < 1 or block < 1 or n_boot < 1:
        raise ValueError("n, block and n_boot must be >= 1")
    block = min(block, n)
    n_blocks = -(-n // block)
    return rng.integers(0, n - block + 1, size=(n_boot, n_blocks))


def _block(n: int, block: int) -> tuple[int, int]:
    """The block length used for ``n`` rows and the length of the last, cut block."""
    block = min(block, n)
    return block, n - (-(-n // block) - 1) * block


def resample_indices(starts: np.ndarray, block: int, n: int) -> Iterator[np.ndarray]:
    """Each resample's ``n`` row indices in turn (one [n] array at a time)."""
    block, _ = _block(n, block)
    offsets = np.arange(block)
    for row in starts:
        yield (row[:, None] + offsets).reshape(-1)[:n]


def resample_means(values: np.ndarray, starts: np.ndarray, block: int) -> np.ndarray:
    """The mean of ``values`` ([n] or [n, m]) on every resample: [n_boot] or [n_boot, m].

    Exact block sums from one cumulative sum (O(n + n_boot * n_blocks)), equal to gathering
    each resample's rows and averaging them up to float rounding.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    block, last = _block(n, block)
    cs = np.concatenate([np.zeros((1, *v.shape[1:])), np.cumsum(v, axis=0)])
    full, tail = starts[:, :-1], starts[:, -1]
    total = (cs[full + block] - cs[full]).sum(axis=1) + (cs[tail + last] - cs[tail])
    return np.asarray(total / n)


def block_bootstrap_indices(
    n: int, block: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """[n_boot, n] indices of a moving-block bootstrap (blocks of consecutive decisions);
    for small spans only: large ones use :func:`resample_means` / :func:`resample_indices`."""
    starts = block_bootstrap_starts(n, block, n_boot, rng)
    return np.stack(list(resample_indices(starts, block, n)))


def fit_reward_model(
    features: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    n_actions: int,
    alpha: float,
    n_folds: int = 2,
) -> np.ndarray:
    """Cross-fitted ridge regression q(x, a), one linear model per arm: [N, K].

    DR's reward model must not be fitted on the rows it scores (that biases the correction
    towards zero), so the decisions are cut into ``n_folds`` contiguous time folds and each
    fold is scored by a model fitted on the others. Features are standardised per fit; an
    arm with too few rows in the training folds falls back to its mean reward (or 0).
    """
    n, d = features.shape
    if n_folds < 2:
        raise ValueError("n_folds must be >= 2")
    q_hat = np.zeros((n, n_actions))
    folds = np.array_split(np.arange(n), n_folds)
    for fold in folds:
        train = np.setdiff1d(np.arange(n), fold, assume_unique=True)
        x_tr = features[train]
        mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-8
        z_te = (features[fold] - mu) / sd
        for a in range(n_actions):
            rows = train[action[train] == a]
            if len(rows) == 0:
                continue
            y = reward[rows]
            if len(rows) <= d:
                q_hat[fold, a] = y.mean()
                continue
            z = (features[rows] - mu) / sd
            zc = z - z.mean(axis=0)
            beta = np.linalg.solve(zc.T @ zc + alpha * np.eye(d), zc.T @ (y - y.mean()))
            q_hat[fold, a] = y.mean() + (z_te - z.mean(axis=0)) @ beta
    return q_hat


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap confidence interval."""

    value: float
    low: float
    high: float


def _bootstrap_values(
    wr: np.ndarray, w: np.ndarray, dr: np.ndarray, starts: np.ndarray, block: int
) -> dict[str, np.ndarray]:
    means = resample_means(np.column_stack([wr, w, dr]), starts, block)
    return {
        "ips": means[:, 0],
        "snips": means[:, 0] / np.maximum(means[:, 1], 1e-12),
        "dr": means[:, 2],
    }


def evaluate_policies(
    reward: np.ndarray,
    action: np.ndarray,
    pscore: np.ndarray,
    q_hat: np.ndarray,
    policies: Mapping[str, np.ndarray],
    reference: str | None,
    n_boot: int,
    block: int,
    level: float,
    seed: int,
) -> dict[str, dict[str, Estimate]]:
    """IPS, SNIPS and DR with block-bootstrap CIs for every policy, plus paired lifts.

    ``policies`` maps a name to its [N, K] action probabilities on the logged decisions
    (one-hot for a deterministic policy). Every policy is evaluated on the same bootstrap
    resamples; with ``reference`` set, ``lift/<name>`` holds policy minus reference per
    estimator. Returns ``{name: {estimator: Estimate}}``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if reference is not None and reference not in policies:
        raise ValueError(f"reference {reference!r} is not among the policies")
    starts = block_bootstrap_starts(len(reward), block, n_boot, np.random.default_rng(seed))
    q_lo, q_hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    points: dict[str, dict[str, float]] = {}
    boots: dict[str, dict[str, np.ndarray]] = {}
    for name, dist in policies.items():
        w = importance_weights(action, pscore, dist)
        terms = dr_terms(reward, action, pscore, dist, q_hat)
        points[name] = {
            "ips": estimate_ips(reward, action, pscore, dist),
            "snips": estimate_snips(reward, action, pscore, dist),
            "dr": float(terms.mean()),
        }
        boots[name] = _bootstrap_values(w * reward, w, terms, starts, block)
    out: dict[str, dict[str, Estimate]] = {}
    for name in policies:
        out[name] = {
            est: Estimate(
                points[name][est],
                float(np.percentile(boots[name][est], q_lo)),
                float(np.percentile(boots[name][est], q_hi)),
            )
            for est in ESTIMATORS
        }
    if reference is not None:
        for name in policies:
            if name == reference:
                continue
            out[f"lift/{name}"] = {}
            for est in ESTIMATORS:
                diff = boots[name][est] - boots[reference][est]
                out[f"lift/{name}"][est] = Estimate(
                    points[name][est] - points[reference][est],
                    float(np.percentile(diff, q_lo)),
                    float(np.percentile(diff, q_hi)),
                )
    return out


def effective_sample(chosen: np.ndarray, action: np.ndarray, pscore: np.ndarray) -> float:
    """Kish's effective sample of a deterministic policy on logged decisions.

    With w_i = 1{chosen_i = a_i} / p_i, ESS = (sum w)^2 / sum w^2: the number of equally
    weighted decisions its IPS estimate is worth. A policy the logging policy never (or
    almost never) matched has ESS near 0, however many decisions were logged, and no
    estimator can score it; 0 when it matches none.
    """
    chosen, action = np.asarray(chosen), np.asarray(action)
    p = np.asarray(pscore, dtype=np.float64)
    if not (chosen.shape == action.shape == p.shape) or chosen.ndim != 1:
        raise ValueError("chosen, action and pscore need the same 1-D shape")
    if np.any(p <= 0) or np.any(p > 1):
        raise ValueError("pscore must be in (0, 1]")
    w = (chosen == action) / p
    sq = float(np.sum(w * w))
    return float(w.sum()) ** 2 / sq if sq > 0 else 0.0
