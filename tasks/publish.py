"""Publishing tasks: signed, ordered writes to the model store, then the MLflow alias."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed

from pipelines.evaluation.gates import Gate, blocked_reason
from pipelines.lineage import rebuild_lineage
from pipelines.memory import release_memory
from pipelines.models.base import ModelResult
from pipelines.registry.errors import PublishError, VerificationError
from pipelines.registry.publish import PublishedVersion, heartbeat, publish_model
from pipelines.registry.publisher_state import recorded_models
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store
from pipelines.registry.verify import has_pointer
from pipelines.workdir import WorkdirLayout
from tasks.context import ModelOutcome, RunContext
from tasks.shadow import publish_challenger_files, shadows
from tasks.tracking import log_model_run
from tasks.train import Trained


@task(name="publish_model", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_files(
    store: Store,
    model: str,
    files: Mapping[str, Path | bytes],
    keyring: KeyRing,
    metrics: Mapping[str, float],
    gates: list[Gate],
    lineage: Mapping[str, Any],
    keep_last: int,
    state_dir: Path | None = None,
) -> PublishedVersion:
    """Files, manifest, signature, then the signed LATEST pointer (the registry's order).

    ``state_dir`` is the workdir's publisher state (``WorkdirLayout.publisher_state``): the
    sequence continues from what this publisher signed, even after a truncated history.

    The manifest's lineage gets the Python and package versions a rebuild must match
    (:func:`pipelines.lineage.rebuild_lineage`); the caller's lineage wins on a shared key.
    """
    published = publish_model(
        store,
        model,
        dict(files),
        keyring,
        # JSON cannot carry NaN (e.g. recall of a class absent from the held-out span).
        metrics={k: float(v) for k, v in metrics.items() if math.isfinite(v)},
        gates=[g.as_dict() for g in gates],
        lineage={**rebuild_lineage(), **lineage},
        keep_last=keep_last,
        state_dir=state_dir,
    )
    log = get_run_logger()
    log.info(
        "published %s %s (sequence %d) to %s",
        model,
        published.version,
        published.sequence,
        published.store_uri,
    )
    if published.pruned:
        log.info("pruned %s versions %s", model, ", ".join(published.pruned))
    return published


def live_note(store: Store, model: str) -> str:
    """What stays in service when this run publishes nothing for ``model``."""
    has_versions = any(key.count("/") >= 2 for key in store.list_keys(model))
    return "the live version stays in service" if has_versions else "nothing is live for it yet"


@task(name="settle_model", task_run_name="settle_{result.model}", cache_policy=NO_CACHE)
def settle_model(
    ctx: RunContext, parent: str, result: ModelResult, started_ms: int | None = None
) -> ModelOutcome:
    """Log to MLflow, then publish if every gate passed and move the ``champion`` alias.

    ``started_ms``: when the model's training began; its MLflow run starts there and ends
    when this task has logged and published it.
    """
    log = get_run_logger()
    name = result.model
    child, record = log_model_run(ctx.tracker, parent, result, started_ms)
    gates = result.publish_gates
    decision = result.champion
    if not result.passed:
        why = decision.reason if decision is not None else f"blocked: {blocked_reason(gates)}"
        detail = f"{why}; {live_note(ctx.store, name)}"
        log.warning("%s %s", name, detail)
        ctx.tracker.set_tags(child, {"edgeflow.status": "blocked"})
        ctx.tracker.end_run(child, ok=True)
        outcome = ModelOutcome(name, "blocked", detail, gates, mlflow_run_id=child)
        return Completed(name="Blocked", message=detail, data=outcome)  # type: ignore[return-value]
    lineage: dict[str, Any] = {
        **ctx.lineage,
        "seed": ctx.settings.seed,
        "mlflow_run_id": child,
        "mlflow_model_version": record.registered_version,
    }
    if decision is not None:  # which candidate ships, of which kind, and what it replaced
        lineage |= decision.lineage()
    if shadows(ctx, name):  # promotion: shadow -> CHALLENGER; the champion stays live
        state = publish_challenger_files(
            ctx.store,
            name,
            {"model.onnx": result.shipped_export.path},
            ctx.keyring,
            result.deterministic_metrics(),
            gates,
            lineage,
            ctx.settings.registry.pointer_ttl_hours,
            WorkdirLayout(ctx.settings.workdir).publisher_state,
            return_state=True,
        )
    else:
        state = publish_files(
            ctx.store,
            name,
            {"model.onnx": result.shipped_export.path},
            ctx.keyring,
            # Wall-clock timings stay in MLflow: in the signed manifest they would make two
            # rebuilds of the same model differ (docs/manifest.md, "Rebuild").
            result.deterministic_metrics(),
            gates,
            lineage,
            ctx.settings.registry.keep_last,
            WorkdirLayout(ctx.settings.workdir).publisher_state,
            return_state=True,
        )
    if not state.is_completed():
        detail = f"publish failed ({state.message}); {live_note(ctx.store, name)}"
        log.error("%s %s", name, detail)
        ctx.tracker.set_tags(child, {"edgeflow.status": "publish-failed"})
        ctx.tracker.set_version_outcome(record, "publish-failed", detail)
        ctx.tracker.end_run(child, ok=False)
        outcome = ModelOutcome(name, "failed", detail, gates, mlflow_run_id=child)
        return Failed(message=detail, data=outcome)  # type: ignore[return-value]
    published: PublishedVersion = state.result()
    if published.kind == "challenger":  # the champion alias moves when it is promoted
        detail = (
            f"challenger {published.version} published under CHALLENGER (sequence "
            f"{published.sequence}) for the bot to shadow; LATEST unchanged"
        )
    else:
        ctx.tracker.promote(record)
        detail = f"version {published.version} (sequence {published.sequence})"
    ctx.tracker.set_tags(
        child, {"edgeflow.status": "published", "edgeflow.version": published.version}
    )
    if decision is not None:
        detail = f"{detail}: {decision.reason}"
    ctx.tracker.set_version_outcome(record, "published", detail)
    ctx.tracker.end_run(child, ok=True)
    outcome = ModelOutcome(
        name, "published", detail, gates, version=published.version, mlflow_run_id=child
    )
    return Completed(name="Published", message=detail, data=outcome)  # type: ignore[return-value]


@task(name="heartbeat_pointers", cache_policy=NO_CACHE)
def heartbeat_pointers(ctx: RunContext, outcomes: Mapping[str, ModelOutcome]) -> dict[str, str]:
    """Re-sign a fresh pointer for every live model this run did not publish, so a bot can
    tell a quiet store from a frozen one. The heartbeat signs the version of the newest
    verified pointer (history, LATEST and this publisher's state), never an older one: a
    junk or replayed LATEST is replaced, not re-signed; what cannot be repaired is reported
    (an alert in the log, not a failed run)."""
    log = get_run_logger()
    ttl = timedelta(hours=ctx.settings.registry.pointer_ttl_hours)
    done: dict[str, str] = {}
    state_dir = WorkdirLayout(ctx.settings.workdir).publisher_state
    signed = set(recorded_models(state_dir, ctx.store.uri))  # a deleted LATEST still alerts
    for name, outcome in outcomes.items():
        if outcome.status == "published":
            continue
        if name not in signed and not has_pointer(ctx.store, name):
            continue
        try:
            beat = heartbeat(ctx.store, name, ctx.keyring, ttl=ttl, state_dir=state_dir)
        except (PublishError, VerificationError) as exc:
            log.error("ALERT %s: no heartbeat, the live pointer does not verify: %s", name, exc)
            done[name] = f"refused: {exc}"
            continue
        log.info("%s heartbeat: %s re-signed at sequence %d", name, beat.version, beat.sequence)
        done[name] = f"{beat.version} re-signed (sequence {beat.sequence})"
    return done


def settle_trained(
    ctx: RunContext, parent: str, name: str, future: Any
) -> tuple[ModelOutcome, ModelResult | None]:
    """One finished training future -> its outcome: skipped, failed, or settled (logged,
    then published or blocked). Runs in the flow's thread as soon as the training ends."""
    log = get_run_logger()
    future.wait()  # the final state from the future itself, not a lagging API read
    state = future.state
    if state.name == "Skipped":
        return ModelOutcome(name, "skipped", str(state.message)), None
    if not state.is_completed():
        log.error("%s training failed: %s", name, state.message)
        return ModelOutcome(name, "failed", f"training failed: {state.message}"), None
    trained: Trained = future.result()
    result = trained.result
    outcome = settle_model(ctx, parent, result, trained.started_ms, return_state=True).result(
        raise_on_failure=False
    )
    release_memory()
    if isinstance(outcome, BaseException):
        log.error("%s could not be logged or published: %s", name, outcome)
        outcome = ModelOutcome(name, "failed", f"logging or publishing failed: {outcome}")
    return outcome, result
