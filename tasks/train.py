"""Prefect tasks around the three trainers: each calls one pipelines function."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from configs import Settings
from pipelines.models.common import Gate, TrainOutcome


def _log_outcome(outcome: TrainOutcome) -> None:
    log = get_run_logger()
    for gate in outcome.gates:
        log.info(
            "%s gate %s: value %.6g vs threshold %.6g -> %s",
            outcome.model,
            gate.name,
            gate.value,
            gate.threshold,
            "pass" if gate.passed else "FAIL",
        )
    log.info("%s ONNX parity max abs diff %.3g", outcome.model, outcome.onnx_max_abs_diff)


@task(name="train_regime", cache_policy=NO_CACHE)
def train_regime_model(
    bars: pd.DataFrame, features: pd.DataFrame, settings: Settings, out_dir: Path
) -> TrainOutcome:
    """Regime classifier: walk-forward selection, BOCD, conformal calibration, ONNX."""
    from pipelines.models.regime.train import train_regime

    outcome = train_regime(bars, features, settings.regime, settings.seed, out_dir)
    _log_outcome(outcome)
    return outcome


@task(name="train_bandit", cache_policy=NO_CACHE)
def train_bandit_model(
    bars: pd.DataFrame, features: pd.DataFrame, settings: Settings, out_dir: Path
) -> TrainOutcome:
    """Neural contextual bandit over the 12 arms, judged off-policy on the held-out span."""
    from pipelines.models.bandit.train import train_bandit

    outcome = train_bandit(bars, features, settings.bandit, settings.seed, out_dir)
    _log_outcome(outcome)
    return outcome


@task(name="train_sizer", cache_policy=NO_CACHE)
def train_sizer_model(
    bars: pd.DataFrame, features: pd.DataFrame, settings: Settings, out_dir: Path
) -> TrainOutcome:
    """CVaR-constrained PPO position sizer against fixed, rule-based and plain-PPO sizing."""
    from pipelines.models.sizer.train import train_sizer

    outcome = train_sizer(bars, features, settings.sizer, settings.seed, out_dir)
    _log_outcome(outcome)
    return outcome


TRAINERS = {
    "regime": train_regime_model,
    "bandit": train_bandit_model,
    "sizer": train_sizer_model,
}


def parity_gate(outcome: TrainOutcome, tolerance: float) -> Gate:
    """ONNX must reproduce the framework's own output before anything is published."""
    diff = float(outcome.onnx_max_abs_diff)
    return Gate("onnx_max_abs_diff", diff, tolerance, bool(diff <= tolerance))
