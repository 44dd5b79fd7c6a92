"""The bot's own feedback as training and evaluation data for the bandit.

Joined events become the *logged* bandit view: per decision the context x (the 43 features
the bot saw), the arm it traded, that trade's net return (the reward) and the probability the
bot's logging policy gave that arm (the propensity). Nothing else is observed, so learning and
evaluation both go through importance weights w = pi(a | x) / p:

* :func:`logged_feedback` builds the arrays, time-ordered, taking features from the events or,
  where a bot logged none, from the feature set computed on the bar store.
* :func:`evaluate_on_logs` runs IPS / SNIPS / DR with block-bootstrap CIs
  (:func:`pipelines.evaluation.ope.evaluate_policies`) for the logging policy itself and for
  a candidate policy, and reports the effective sample size and the largest weight: a
  candidate that differs from the logging policy where it rarely explored gets a few huge
  weights, an ESS far below N, and an estimate that should not be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.evaluation.ope import Estimate, evaluate_policies, fit_reward_model
from pipelines.features.names import FEATURE_NAMES, model_feature_columns
from pipelines.strategies.signals import ARM_NAMES, N_ARMS

_PROB_COLUMNS = [f"p_{a}" for a in ARM_NAMES]


@dataclass(frozen=True)
class LoggedFeedback:
    """The logged bandit view of joined decisions, sorted by (ts, symbol, event id).

    Attributes
    ----------
    X : [N, 43] float32 features in ``FEATURE_NAMES`` order.
    arm : [N] int64 arm index (``ARM_NAMES``).
    reward : [N] float64 net return of the traded arm (size multiplier 1.0).
    propensity : [N] float64 logged probability of that arm, in (0, 1].
    logged_dist : [N, K] the logged action distribution; rows the bot did not log hold the
        propensity on the traded arm and the rest spread evenly (exact for IPS / SNIPS,
        an approximation only in DR's direct term).
    ts, symbol, event_id : provenance of each row (``ts`` datetime64 in UTC).
    dropped_no_features : joined decisions left out because no features could be found.
    """

    X: np.ndarray
    arm: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    logged_dist: np.ndarray
    ts: np.ndarray
    symbol: np.ndarray
    event_id: np.ndarray
    dropped_no_features: int

    def __len__(self) -> int:
        return len(self.reward)

    def subset(self, rows: np.ndarray) -> LoggedFeedback:
        """The decisions at ``rows`` (indices or a mask), e.g. a later held-out span."""
        return LoggedFeedback(
            X=self.X[rows],
            arm=self.arm[rows],
            reward=self.reward[rows],
            propensity=self.propensity[rows],
            logged_dist=self.logged_dist[rows],
            ts=self.ts[rows],
            symbol=self.symbol[rows],
            event_id=self.event_id[rows],
            dropped_no_features=0,
        )


def logged_feedback(joined: pd.DataFrame, features: pd.DataFrame | None = None) -> LoggedFeedback:
    """Turn the joined event dataset into the bandit's logged view.

    Parameters
    ----------
    joined : the ``joined`` dataset of the event store.
    features : optional ``FeatureSet.frame`` (``ts``, ``symbol`` and the 43 features) used
        for decisions logged without features; matched on (symbol, ts). Its cross-asset and
        exogenous columns, if any, are appended to every decision's 43 (the bot logs only
        those), so ``X`` has the model's width; a decision without them is dropped.
    """
    if joined.empty:
        raise ValueError("no joined decisions")
    missing = [c for c in ("ts", "symbol", "arm", "propensity", "reward") if c not in joined]
    if missing:
        raise ValueError(f"joined events lack column(s) {missing}")
    frame = joined.sort_values(["ts", "symbol", "event_id"], kind="stable", ignore_index=True)
    X = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float32, copy=True)
    need = ~frame["has_features"].to_numpy(dtype=bool)
    if need.any() and features is not None:
        lookup = features.set_index(["symbol", "ts"])[list(FEATURE_NAMES)]
        keys = pd.MultiIndex.from_arrays([frame["symbol"][need], frame["ts"][need]])
        found = lookup.reindex(keys).to_numpy(dtype=np.float32)
        X[need] = found
    extra = (
        []
        if features is None
        else list(model_feature_columns(features.columns)[len(FEATURE_NAMES) :])
    )
    if extra:  # cross-asset and exogenous columns: the bot logs the 43, the frame has the rest
        assert features is not None
        lookup = features.set_index(["symbol", "ts"])[extra]
        keys = pd.MultiIndex.from_arrays([frame["symbol"], frame["ts"]])
        X = np.hstack([X, lookup.reindex(keys).to_numpy(dtype=np.float32)])
    keep = np.isfinite(X).all(axis=1)
    frame, X = frame[keep].reset_index(drop=True), X[keep]
    arm = frame["arm"].to_numpy(dtype=np.int64)
    prop = frame["propensity"].to_numpy(dtype=np.float64)
    n = len(frame)
    dist = frame[_PROB_COLUMNS].to_numpy(dtype=np.float64, copy=True)
    has = frame["has_action_distribution"].to_numpy(dtype=bool)
    if (~has).any():
        rest = (1.0 - prop[~has]) / (N_ARMS - 1)
        filled = np.repeat(rest[:, None], N_ARMS, axis=1)
        filled[np.arange(len(filled)), arm[~has]] = prop[~has]
        dist[~has] = filled
    if n == 0:
        raise ValueError("no joined decision has features (logged or from the bar store)")
    return LoggedFeedback(
        X=X,
        arm=arm,
        reward=frame["reward"].to_numpy(dtype=np.float64),
        propensity=prop,
        logged_dist=dist,
        ts=frame["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]"),
        symbol=frame["symbol"].to_numpy(dtype=object),
        event_id=frame["event_id"].to_numpy(dtype=object),
        dropped_no_features=int((~keep).sum()),
    )


@dataclass(frozen=True)
class WeightDiagnostics:
    """How trustworthy importance-weighted estimates are for one policy on the logs.

    ``ess`` = (sum w)^2 / sum w^2 (Kish's effective sample size; N when all weights are
    equal), ``ess_fraction`` = ess / N, ``max_weight`` the largest w; ``reliable`` is
    ``ess_fraction >= min_ess_fraction and max_weight <= max_weight_limit``.
    """

    n: int
    ess: float
    ess_fraction: float
    max_weight: float
    reliable: bool


def weight_diagnostics(
    weights: np.ndarray, min_ess_fraction: float = 0.1, max_weight_limit: float = 50.0
) -> WeightDiagnostics:
    """Effective sample size and largest weight of importance weights ``w``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or np.any(w < 0) or not np.isfinite(w).all():
        raise ValueError("weights must be a non-empty 1-D array of finite values >= 0")
    total = float(w.sum())
    sq = float(np.sum(w * w))
    ess = total * total / sq if sq > 0 else 0.0
    frac = ess / len(w)
    max_w = float(w.max())
    return WeightDiagnostics(
        len(w), ess, frac, max_w, frac >= min_ess_fraction and max_w <= max_weight_limit
    )


@dataclass(frozen=True)
class LogOPE:
    """OPE of the logging policy and a candidate on the bot's logs.

    ``estimates`` is :func:`evaluate_policies`'s output (``logging``, ``candidate``,
    ``lift/candidate`` when a candidate was given); ``realized`` the mean net return per
    logged decision with a block-bootstrap CI (what the live policy actually earned).
    """

    n: int
    realized: Estimate
    estimates: dict[str, dict[str, Estimate]]
    diagnostics: dict[str, WeightDiagnostics]


def evaluate_on_logs(
    feedback: LoggedFeedback,
    candidate: np.ndarray | None = None,
    n_boot: int = 400,
    block: int = 24,
    level: float = 0.9,
    seed: int = 0,
    ridge_alpha: float = 10.0,
    min_ess_fraction: float = 0.1,
    max_weight_limit: float = 50.0,
) -> LogOPE:
    """IPS / SNIPS / DR of the logging policy and of ``candidate`` ([N, K] probabilities).

    The logging policy is evaluated with its own logged distribution: its IPS estimate is the
    realised mean reward, and its CI is the sampling uncertainty of that mean. The DR reward
    model is the cross-fitted per-arm ridge of ``pipelines.evaluation.ope``.
    """
    n = len(feedback)
    if n < 2:
        raise ValueError(f"need at least 2 logged decisions, got {n}")
    policies: dict[str, np.ndarray] = {"logging": feedback.logged_dist}
    if candidate is not None:
        cand = np.asarray(candidate, dtype=np.float64)
        if cand.shape != feedback.logged_dist.shape:
            raise ValueError(f"candidate must be [{n}, {N_ARMS}], got {cand.shape}")
        policies["candidate"] = cand
    q_hat = fit_reward_model(
        feedback.X.astype(np.float64), feedback.arm, feedback.reward, N_ARMS, ridge_alpha
    )
    est = evaluate_policies(
        feedback.reward,
        feedback.arm,
        feedback.propensity,
        q_hat,
        policies,
        reference="logging" if candidate is not None else None,
        n_boot=n_boot,
        block=block,
        level=level,
        seed=seed,
    )
    rows = np.arange(n)
    diags = {
        name: weight_diagnostics(
            dist[rows, feedback.arm] / feedback.propensity, min_ess_fraction, max_weight_limit
        )
        for name, dist in policies.items()
    }
    ips = est["logging"]["ips"]
    return LogOPE(n, Estimate(float(feedback.reward.mean()), ips.low, ips.high), est, diags)


def importance_weights_clipped(propensity: np.ndarray, max_weight: float) -> np.ndarray:
    """1 / propensity, clipped at ``max_weight``: the training weights of logged rows."""
    p = np.asarray(propensity, dtype=np.float64)
    if np.any(p <= 0) or np.any(p > 1):
        raise ValueError("propensity must be in (0, 1]")
    if max_weight < 1:
        raise ValueError(f"max_weight must be >= 1, got {max_weight}")
    return np.minimum(1.0 / p, max_weight)
