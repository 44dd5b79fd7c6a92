"""The training tasks: which models can train, and one generic task that trains any of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed

from configs import Settings
from pipelines.memory import release_memory
from pipelines.models.base import ModelResult, NotTrainable, TrainInputs, run_trainer
from pipelines.models.specs import SPECS
from pipelines.seeding import Streams
from pipelines.strategies import compute_signals


@task(name="compute_signals", cache_policy=NO_CACHE)
def compute_arm_signals(bars: pd.DataFrame) -> pd.DataFrame:
    """The 12 arms' signals, once per run, for every model that reads them."""
    return compute_signals(bars)


def plan_models(features: pd.DataFrame) -> dict[str, str | None]:
    """Each model and why it must be skipped (too little history), or None to train it."""
    return {name: spec.skip_reason(features) for name, spec in SPECS.items()}


@task(name="train", task_run_name="train_{model}", cache_policy=NO_CACHE)
def train_model(
    model: str,
    inputs: TrainInputs,
    settings: Settings,
    out_dir: Path,
    upstream: Mapping[str, ModelResult] | None = None,
) -> ModelResult:
    """Train, evaluate against baselines on the held-out span, export ONNX, judge the gates."""
    spec = SPECS[model]
    if upstream:  # only results: a failed or skipped upstream model is simply absent
        done = {k: v for k, v in upstream.items() if isinstance(v, ModelResult)}
        inputs = replace(inputs, upstream=done)
    log = get_run_logger()
    try:
        result = run_trainer(
            spec,
            inputs,
            spec.config(settings),
            Streams(settings.seed).child(model),
            out_dir,
            settings.training.parity_tolerance,
        )
    except NotTrainable as exc:
        log.warning("%s skipped: %s", model, exc)
        return Completed(name="Skipped", message=f"{model}: {exc}")  # type: ignore[return-value]
    finally:
        release_memory(collect=True)
    for gate in result.gates:
        log.info("%s gate %s -> %s", model, gate.reason, "pass" if gate.passed else "FAIL")
    return result
