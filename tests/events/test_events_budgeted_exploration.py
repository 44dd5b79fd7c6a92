"""Budgeted exploration: its cost on bars with known arm rewards, the effective sample it
gives the candidates on the logs, and the logged gate's refusal of a placebo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs.settings import load_config
from pipelines.evaluation.gates import bandit_gates
from pipelines.evaluation.ope import effective_sample
from pipelines.events import LoggedFeedback
from pipelines.events.exploration import (
    ExplorationPolicy,
    action_distribution,
    budgeted_distribution,
    choose_exploration,
    exploration_cost,
    sample_arm,
)
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.bandit.logged import LoggedSplit, evaluate_logged
from pipelines.strategies.signals import ARM_NAMES, N_ARMS, arm_rewards, compute_signals

BUDGET_BPS = 1.5


@pytest.fixture(scope="module")
def world(event_bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """Features, every arm's exact net reward and a context-dependent champion's arm values
    (a random linear scorer biased towards the arm best on the first half, as a trained
    champion would be) on the simulated bars, time-ordered."""
    fs = featurize(event_bars).frame
    rewards = arm_rewards(event_bars, compute_signals(event_bars), 6, 1.0, 0.5)
    keyed = pd.concat([event_bars[["ts", "symbol"]], rewards], axis=1)
    ctx = fs.merge(keyed, on=["ts", "symbol"], how="inner", validate="one_to_one")
    full = ctx[list(ARM_NAMES)].to_numpy(dtype=np.float64)
    ctx = ctx[np.isfinite(full).all(axis=1)].sort_values(["ts", "symbol"], ignore_index=True)
    full = ctx[list(ARM_NAMES)].to_numpy(dtype=np.float64)
    X = ctx[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    rng = np.random.default_rng(5)
    z = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    values = z @ (rng.normal(size=(X.shape[1], N_ARMS)) * 0.3 / np.sqrt(X.shape[1]))
    half = len(full) // 2
    values[:, int(np.argmax(full[:half].mean(axis=0)))] += 0.5
    return {"X": X, "rewards": full, "values": values, "ts": ctx["ts"].to_numpy(), "half": half}


def _log(values: np.ndarray, probs: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    arm = sample_arm(probs, np.random.default_rng(seed).random(len(values)))
    return arm, probs[np.arange(len(values)), arm]


def _candidates(world: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Candidate policies' arms on the second half: the best and second-best single arms of
    the first half (rule candidates) and a learned-looking one (the champion's values with a
    different arm boosted, i.e. a contextual policy that often leaves the champion's arm)."""
    h = world["half"]
    ranked = np.argsort(-world["rewards"][:h].mean(axis=0), kind="stable")
    n = len(world["rewards"]) - h
    learned = world["values"][h:].copy()
    learned[:, ranked[1]] += 0.6
    return {
        "best_arm": np.full(n, ranked[0]),
        "second_arm": np.full(n, ranked[1]),
        "learned": learned.argmax(axis=1),
    }


def _policy(world: dict[str, np.ndarray]) -> ExplorationPolicy:
    h = world["half"]
    ranked = np.argsort(-world["rewards"][:h].mean(axis=0), kind="stable")
    return choose_exploration(
        world["rewards"][:h],
        world["values"][:h],
        budget_bps=BUDGET_BPS,
        set_size=3,
        max_epsilon=0.3,
        include=(int(ranked[1]),),
    )


def test_budgeted_rule_sums_to_one_and_keeps_mass_off_other_arms() -> None:
    values = np.array([0.1, 0.5, 0.5, -1.0, 0.0])
    p = budgeted_distribution(values, [0, 2], 0.2)
    assert p.sum() == pytest.approx(1.0)
    assert p.tolist() == [0.1, 0.4, 0.4 + 0.1, 0.0, 0.0]
    assert budgeted_distribution(values, [0], 0.0).tolist() == [0.0, 0.5, 0.5, 0.0, 0.0]
    with pytest.raises(ValueError):
        budgeted_distribution(values, [0, 0], 0.1)
    with pytest.raises(ValueError):
        budgeted_distribution(values, [7], 0.1)


def test_expected_cost_on_bars_with_known_rewards_is_within_budget(world) -> None:
    h = world["half"]
    pol = _policy(world)
    assert len(pol.arms) == 3 and 0 < pol.epsilon <= 0.3
    # exact expected cost on the bars it was chosen on: p_0 . r - p_eps . r, per decision
    r, v = world["rewards"][:h], world["values"][:h]
    p0 = budgeted_distribution(v, pol.arms, 0.0)
    pe = budgeted_distribution(v, pol.arms, pol.epsilon)
    cost_bps = float(np.mean(np.sum((p0 - pe) * r, axis=1))) * 1e4
    assert cost_bps <= BUDGET_BPS * (1 + 1e-9)
    assert cost_bps == pytest.approx(pol.expected_cost_bps, rel=1e-9, abs=1e-12)
    # the uniform 12-arm rule at the engine's epsilon 0.1 costs more than the budget here
    old = float(np.mean(np.sum((p0 - action_distribution(v, 0.1)) * r, axis=1))) * 1e4
    # realised on the later bars (out of sample) with the logged draws
    rl, vl = world["rewards"][h:], world["values"][h:]
    arm, _ = _log(vl, budgeted_distribution(vl, pol.arms, pol.epsilon), 3)
    greedy = budgeted_distribution(vl, pol.arms, 0.0)
    realised = float(np.mean(np.sum(greedy * rl, axis=1) - rl[np.arange(len(rl)), arm])) * 1e4
    expected_later = pol.epsilon * exploration_cost(rl, vl, pol.arms) * 1e4
    _record(
        "cost",
        {
            "budget_bps": BUDGET_BPS,
            "epsilon": pol.epsilon,
            "set": [ARM_NAMES[a] for a in pol.arms],
            "gap_bps_per_unit_epsilon": pol.gap_bps,
            "expected_cost_bps_chosen_span": cost_bps,
            "expected_cost_bps_later_span": expected_later,
            "realised_cost_bps_later_span": realised,
            "old_rule_eps0.1_expected_cost_bps": old,
            "n_chosen": int(h),
            "n_later": len(rl),
        },
    )
    # a champion that knows each bar's best arm (values = the rewards): exploring costs, so
    # the budget binds and epsilon is cut to budget / gap, cost exactly the budget
    oracle = choose_exploration(r, r, budget_bps=BUDGET_BPS, set_size=3, max_epsilon=0.3)
    assert oracle.gap_bps * 0.3 > BUDGET_BPS and oracle.epsilon < 0.3
    po, pe = (
        budgeted_distribution(r, oracle.arms, 0.0),
        budgeted_distribution(r, oracle.arms, oracle.epsilon),
    )
    oracle_cost = float(np.mean(np.sum((po - pe) * r, axis=1))) * 1e4
    assert oracle_cost == pytest.approx(BUDGET_BPS, rel=1e-9)
    oracle_old = float(np.mean(np.sum((po - action_distribution(r, 0.1)) * r, axis=1))) * 1e4
    assert oracle_old > BUDGET_BPS  # the old uniform rule at 0.1 would cost more than this
    _record(
        "cost_oracle_champion",
        {
            "budget_bps": BUDGET_BPS,
            "epsilon": oracle.epsilon,
            "set": [ARM_NAMES[a] for a in oracle.arms],
            "gap_bps_per_unit_epsilon": oracle.gap_bps,
            "expected_cost_bps": oracle_cost,
            "old_rule_eps0.1_expected_cost_bps": oracle_old,
        },
    )
    # the manifest round trip the engine reads
    assert ExplorationPolicy.from_metrics(pol.to_metrics(), N_ARMS) == (pol.arms, pol.epsilon)


def test_effective_sample_rises_when_the_set_holds_the_candidates_arm(world) -> None:
    h = world["half"]
    v = world["values"][h:]
    pol = _policy(world)
    cands = _candidates(world)
    old_arm, old_p = _log(v, action_distribution(v, 0.1), 9)
    new_arm, new_p = _log(v, budgeted_distribution(v, pol.arms, pol.epsilon), 9)
    before = {k: effective_sample(a, old_arm, old_p) for k, a in cands.items()}
    after = {k: effective_sample(a, new_arm, new_p) for k, a in cands.items()}
    _record("ess", {"n": len(v), "before_eps0.1_uniform": before, "after_budgeted": after})
    second = int(cands["second_arm"][0])
    assert second in pol.arms
    assert after["second_arm"] > 2 * before["second_arm"]
    assert after["learned"] > before["learned"]
    # off the set, a fixed arm is matched only where it is the champion's greedy arm
    greedy = v.argmax(axis=1)
    for a in range(N_ARMS):
        if a not in pol.arms:
            w = (new_arm == a) / new_p
            assert np.all(w[greedy != a] == 0.0)


def _split(world: dict[str, np.ndarray], pol: ExplorationPolicy) -> LoggedSplit:
    """The budgeted bot's logs on the whole span, split 50/50 in time as LoggedFeedback."""
    v, r, X = world["values"], world["rewards"], world["X"]
    probs = budgeted_distribution(v, pol.arms, pol.epsilon)
    arm, prop = _log(v, probs, 21)
    n = len(v)
    ts = pd.to_datetime(world["ts"]).tz_localize(None).to_numpy("datetime64[ns]")
    fb = LoggedFeedback(
        X=X,
        arm=arm.astype(np.int64),
        reward=r[np.arange(n), arm],
        propensity=prop,
        logged_dist=probs,
        ts=ts,
        symbol=np.full(n, "SYN", dtype=object),
        event_id=np.array([f"d{i}" for i in range(n)], dtype=object),
        dropped_no_features=0,
    )
    h = world["half"]
    return LoggedSplit(fb.subset(np.arange(h)), fb.subset(np.arange(h, n)), n, 0, 0)


def test_placebo_candidate_is_refused_by_the_logged_gate(world, tmp_path: Path) -> None:
    cfg = load_config().bandit.model_copy(update={"n_bootstrap": 100})
    cfg = cfg.model_copy(update={"logged": cfg.logged.model_copy(update={"min_ess": 30.0})})
    pol = _policy(world)
    split = _split(world, pol)
    n = len(split.hold)
    rng = np.random.default_rng(17)
    # placebo inside the support: a random arm of the set on every decision (no information)
    placebo = rng.choice(np.asarray(pol.arms), size=n)
    metrics, _ = evaluate_logged(
        split, placebo, cfg, 3, tmp_path, rules={"best_arm": _candidates(world)["best_arm"]}
    )
    metrics["train/feedback"] = 1.0
    assert metrics["logs/ess/bandit"] >= cfg.logged.min_ess  # scored, not skipped ...
    gates = bandit_gates(metrics, cfg)
    assert not all(g.passed for g in gates)  # ... and refused on its lift
    assert "logs/ess/best_arm" in metrics and "confirm/logs/ess/best_arm" in metrics
    # placebo outside the support: never matched, the gate says so in one line
    greedy_share = np.bincount(split.hold.logged_dist.argmax(axis=1), minlength=N_ARMS)
    outside = min((a for a in range(N_ARMS) if a not in pol.arms), key=lambda a: greedy_share[a])
    metrics, _ = evaluate_logged(split, np.full(n, outside), cfg, 3, tmp_path)
    metrics["train/feedback"] = 1.0
    gates = bandit_gates(metrics, cfg)
    assert [g.name for g in gates] == ["logged_effective_sample"]
    assert not gates[0].passed and "not scored" in gates[0].description


def _record(name: str, payload: dict[str, object]) -> None:
    """Write the measured figures where the report can read them (EXPLORATION_FIGURES)."""
    out = os.environ.get("EXPLORATION_FIGURES")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float))
