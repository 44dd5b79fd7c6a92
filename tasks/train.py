"""The training tasks: which models can train, and one generic task that trains any of them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Completed

from configs import Settings
from pipelines.evaluation.gates import blocked_reason
from pipelines.memory import release_memory
from pipelines.models.base import ModelResult, NotTrainable, TrainInputs, run_trainer
from pipelines.models.specs import SPECS
from pipelines.seeding import Streams
from pipelines.strategies import compute_signals

#: The name of a train task's final state when the model it trained ships nothing this run
#: (a gate failed, or its challenger did not beat the champion). Prefect colours states by
#: their type, and a blocked model is no failure, so the state stays Completed; the name is
#: what the timeline, the task list and the state badge show.
BLOCKED = "Blocked"
#: The name of a train task's final state when the model passed every gate (and beat its
#: slot's champion, where it has one). Training ends before the publish is tried, so it
#: cannot say Published; the model's settle task is named Published or Blocked once it is.
PASSED = "Passed"


@dataclass(frozen=True)
class Trained:
    """A judged model and when its training ran (wall clock, milliseconds since the epoch, as
    MLflow keeps a run's times), so the model's MLflow run spans its training and not only
    the seconds its logging took."""

    result: ModelResult
    started_ms: int
    finished_ms: int


def _now_ms() -> int:
    return int(time.time() * 1000)


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
    upstream: Mapping[str, Trained] | None = None,
) -> Trained:
    """Train, evaluate against baselines on the held-out span, export ONNX, judge the gates.

    Ends Completed named :data:`BLOCKED` (with the one-line reason) when the model will not
    ship, :data:`PASSED` when it goes on to publish, Skipped when it cannot train.
    """
    started = _now_ms()
    spec = SPECS[model]
    if upstream:  # only results: a failed or skipped upstream model is simply absent
        done = {k: v.result for k, v in upstream.items() if isinstance(v, Trained)}
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
    return judged_state(model, Trained(result, started, _now_ms()))  # type: ignore[return-value]


def judged_state(model: str, trained: Trained) -> State:
    """The train task's final state: Completed named :data:`BLOCKED` with the one-line reason,
    or :data:`PASSED`; both carry ``trained`` as the task's result for settle and publish. A
    passed model's task used to end plain Completed, which the docs' "Blocked or Published"
    did not cover."""
    result = trained.result
    decision = result.champion
    if not result.passed:
        why = decision.reason if decision is not None else blocked_reason(result.publish_gates)
        return Completed(name=BLOCKED, message=f"{model}: {why}", data=trained)
    why = decision.reason if decision is not None else "passed every gate"
    return Completed(name=PASSED, message=f"{model}: {why}", data=trained)
