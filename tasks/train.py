"""The training task: one Prefect task that calls one trainer from ``pipelines.models``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from configs import Settings
from pipelines.models.common import Gate, TrainOutcome

#: model -> (module, trainer function, settings section). Imported lazily: torch, SB3 and
#: LightGBM are heavy and the CLI's --help should not pay for them.
TRAINERS: dict[str, tuple[str, str, str]] = {
    "regime": ("pipelines.models.regime.train", "train_regime", "regime"),
    "bandit": ("pipelines.models.bandit.train", "train_bandit", "bandit"),
    "sizer": ("pipelines.models.sizer.train", "train_sizer", "sizer"),
}


def _trainer(model: str) -> Callable[..., TrainOutcome]:
    module, func, _ = TRAINERS[model]
    fn: Callable[..., TrainOutcome] = getattr(import_module(module), func)
    return fn


@task(name="train", task_run_name="train_{model}", cache_policy=NO_CACHE)
def train_model(
    model: str, bars: pd.DataFrame, features: pd.DataFrame, settings: Settings, out_dir: Path
) -> TrainOutcome:
    """Train, evaluate against baselines on the held-out span, export ONNX with parity."""
    section = getattr(settings, TRAINERS[model][2])
    outcome = _trainer(model)(bars, features, section, settings.seed, out_dir)
    log = get_run_logger()
    for gate in outcome.gates:
        log.info(
            "%s gate %s: value %.6g vs threshold %.6g -> %s",
            model,
            gate.name,
            gate.value,
            gate.threshold,
            "pass" if gate.passed else "FAIL",
        )
    log.info("%s ONNX parity max abs diff %.3g", model, outcome.onnx_max_abs_diff)
    return outcome


def parity_gate(outcome: TrainOutcome, tolerance: float) -> Gate:
    """ONNX must reproduce the framework's own output before anything is published."""
    diff = float(outcome.onnx_max_abs_diff)
    return Gate("onnx_max_abs_diff", diff, tolerance, bool(diff <= tolerance))
