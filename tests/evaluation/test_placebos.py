"""Placebo models through the real gate code: each must be blocked.

A placebo has no skill by construction (the class prior, a constant de-levered multiplier, a
context-blind random policy, a constant win probability). It is measured with the same
functions the trainers use and judged by ``pipelines.evaluation.gates``, on the demo
generator and on the null world (GARCH-t bars with no structure). A gate that let one pass
would be a gate a useless model could pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from configs import Settings, load_config
from pipelines.data.synthetic import generate_bars, generate_null_bars
from pipelines.evaluation import gates
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.bandit.train import REFERENCE, REGIME_ARM, exact_lift_metrics
from pipelines.models.metalabel.train import entry_trades, filter_lifts, fit_arm_prior
from pipelines.models.regime.labels import regime_labels
from pipelines.models.regime.train import BASELINE_NAMES, log_loss_lift
from pipelines.models.sizer.baselines import baseline_multipliers
from pipelines.models.sizer.data import build_table, select_arm
from pipelines.models.sizer.evaluate import run_sizer, sizer_metrics
from pipelines.models.sizer.train import cvar_cuts
from pipelines.strategies import N_ARMS, arm_rewards, compute_signals

WORLDS = ("demo", "null")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_config("configs/demo.yaml", environ={})


@pytest.fixture(scope="module", params=WORLDS)
def world(request: pytest.FixtureRequest, settings: Settings) -> pd.DataFrame:
    syn = settings.data.synthetic.model_copy(update={"n_bars": 6000})
    if request.param == "demo":
        return generate_bars(syn, settings.seed)
    return generate_null_bars(syn, settings.seed)


def _later(frame: pd.DataFrame, fraction: float = 0.3) -> pd.DataFrame:
    cut = frame["ts"].quantile(1 - fraction)
    return frame[frame["ts"] >= cut]


def test_class_prior_classifier_is_blocked(world: pd.DataFrame, settings: Settings) -> None:
    cfg = settings.regime
    y, _ = regime_labels(world, cfg.label_horizon, use_true_regime=True)
    frame = world.assign(y=y.to_numpy())
    frame = frame[frame["y"] >= 0]
    cut = frame["ts"].quantile(0.7)
    train, hold = frame[frame["ts"] < cut], frame[frame["ts"] >= cut]
    prior = np.bincount(train["y"], minlength=4) / len(train)
    yh = hold["y"].to_numpy()
    placebo = np.tile(prior, (len(hold), 1))
    baselines = {name: placebo for name in BASELINE_NAMES}  # the majority baseline is the prior
    metrics = log_loss_lift(hold[["symbol", "ts"]], yh, placebo, baselines, "majority", cfg, seed=1)
    metrics |= {"conformal/coverage": 0.9, "conformal/target_coverage": 0.9}
    verdict = {g.name: g for g in gates.regime_gates(metrics, cfg)}
    assert not verdict["log_loss_lift_lower_bound"].passed
    assert not verdict["log_loss_lift_lower_bound_confirmation"].passed


def test_constant_delevered_sizer_is_blocked(world: pd.DataFrame, settings: Settings) -> None:
    cfg = settings.sizer
    signals = compute_signals(world)
    feats = featurize(world).frame
    table = build_table(world, feats, signals, list(FEATURE_NAMES), list(signals.columns))
    cost = cfg.cost_bps * 1e-4
    arm, _ = select_arm(table, list(signals.columns), cost, 8766.0)
    table["signal"] = table[arm].astype(np.float32)
    hold = _later(table).reset_index(drop=True)
    placebo = np.full(len(hold), 0.7)  # de-levered: cuts CVaR vs 1.0x by construction
    mults = {"cvar_ppo": placebo, **baseline_multipliers(hold, placebo, cfg.baseline_window)}
    runs = {name: run_sizer(hold, m, cost) for name, m in mults.items()}
    metrics = {
        f"{'holdout' if n == 'cvar_ppo' else 'baseline/' + n}/{k}": v
        for n, r in runs.items()
        for k, v in sizer_metrics(r, 8766.0, cfg.cvar_alpha).items()
    }
    baselines = {b: runs[b].returns for b in ("constant", "vol_target")}
    metrics |= cvar_cuts(runs["cvar_ppo"].ts, runs["cvar_ppo"].returns, baselines, cfg, seed=1)
    verdict = {g.name: g for g in gates.sizer_gates(metrics, cfg)}
    assert not verdict["cvar_cut_vs_constant_lower_bound"].passed
    assert not verdict["cvar_cut_vs_constant_lower_bound_confirmation"].passed
    assert not all(g.passed for g in verdict.values())


@pytest.mark.parametrize("placebo", ["context_blind", "best_arm_itself"])
def test_context_blind_bandit_is_blocked(
    world: pd.DataFrame, settings: Settings, placebo: str
) -> None:
    cfg = settings.bandit
    feats = featurize(world).frame
    rewards = arm_rewards(world, compute_signals(world), cfg.reward_horizon, 1.0, 0.5)
    frame = world[["ts", "symbol"]].join(rewards).merge(feats, on=["ts", "symbol"]).dropna()
    frame = frame.sort_values(["symbol", "ts"], ignore_index=True)
    train, hold = frame[frame["ts"] < frame["ts"].quantile(0.7)], _later(frame)
    hold = hold.reset_index(drop=True)
    best = int(np.argmax(train[list(rewards.columns)].mean().to_numpy()))
    rng = np.random.default_rng(0)
    one_hot = np.eye(N_ARMS)
    policies = {
        "bandit": one_hot[rng.integers(0, N_ARMS, len(hold))]  # ignores the context
        if placebo == "context_blind"
        else one_hot[np.full(len(hold), best)],  # the comparator itself: lift exactly 0
        REFERENCE: one_hot[np.full(len(hold), best)],
        REGIME_ARM: one_hot[np.full(len(hold), best)],
    }
    metrics = exact_lift_metrics(
        hold["ts"],
        hold[list(rewards.columns)].to_numpy(),
        policies,
        [("bandit", REFERENCE), ("bandit", REGIME_ARM)],
        cfg.model_copy(update={"n_bootstrap": 200}),
        seed=1,
    )
    verdict = {g.name: g for g in gates.bandit_gates(metrics, cfg)}
    assert set(verdict) == {
        "bandit_lift_lower_bound",
        "bandit_lift_lower_bound_confirmation",
        "bandit_lift_vs_regime_arm",
        "bandit_lift_vs_regime_arm_confirmation",
    }
    for name in ("bandit_lift_lower_bound", "bandit_lift_lower_bound_confirmation"):
        assert not verdict[name].passed, verdict[name].reason
    if placebo == "best_arm_itself":
        assert verdict["bandit_lift_lower_bound"].estimate == 0.0
        assert not any(g.passed for g in verdict.values())


@pytest.mark.parametrize("placebo", ["constant", "arm_prior"])
def test_metalabel_placebos_are_blocked(
    world: pd.DataFrame, settings: Settings, placebo: str
) -> None:
    """A constant win probability and a model that only knows the arm (its fit-span win
    rate) must fail the gates against the per-arm prior, on both spans."""
    cfg = settings.metalabel
    feats = featurize(world).frame
    trades = entry_trades(world, compute_signals(world), feats, cfg)
    cut = trades["ts"].quantile(0.7)
    fit, hold = trades[trades["ts"] < cut], trades[trades["ts"] >= cut]
    bars = feats.loc[feats["ts"] >= cut, ["ts", "symbol"]]
    prior = fit_arm_prior(fit, cfg)
    if placebo == "constant":
        p = np.full(len(hold), float(fit["win"].mean()))
        thresholds = (float(fit["win"].mean()), 0.99)  # keeps every trade; keeps none
    else:
        arm_rate = fit.groupby("arm")["win"].mean()
        p = hold["arm"].map(arm_rate).fillna(fit["win"].mean()).to_numpy()
        thresholds = (float(np.median(p)),)
    for threshold in thresholds:
        metrics = filter_lifts(bars, hold, p, prior, threshold, cfg, seed=1)
        verdict = {g.name: g for g in gates.metalabel_gates(metrics, cfg)}
        assert not verdict["precision_within_arm_lower_bound"].passed
        assert not verdict["precision_within_arm_lower_bound_confirmation"].passed
        assert not all(g.passed for g in verdict.values())
