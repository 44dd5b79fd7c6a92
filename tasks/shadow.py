"""Shadow promotion tasks (``registry.promotion: shadow``): publish a passing challenger under
``CHALLENGER``, and settle the standing one at the start of the next run."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.bot.engine import EngineConfig
from pipelines.bot.shadow import SCORED_ROLES, read_shadow_events
from pipelines.evaluation.gates import Gate
from pipelines.lineage import rebuild_lineage
from pipelines.models.promotion import (
    ShadowRules,
    ShadowSettlement,
    indexed_rewards,
    settle_shadow,
)
from pipelines.registry.challenger import publish_challenger
from pipelines.registry.errors import PublishError, VerificationError
from pipelines.registry.publish import PublishedVersion, heartbeat
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store
from pipelines.strategies.signals import arm_rewards, compute_signals
from pipelines.workdir import WorkdirLayout
from tasks.context import RunContext
from tasks.tracking import ModelRecord


def shadows(ctx: RunContext, model: str) -> bool:
    """True when ``model``'s passing challenger goes to ``CHALLENGER`` instead of ``LATEST``
    (shadow mode, and a slot whose shadow decisions can be scored on realized bars)."""
    return ctx.settings.registry.promotion == "shadow" and model in SCORED_ROLES


def shadow_folder(ctx: RunContext) -> Path:
    """Where the bots' shadow logs are read from."""
    folder = ctx.settings.registry.shadow_events
    return Path(folder) if folder is not None else Path(ctx.settings.workdir) / "shadow"


@task(name="publish_challenger", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_challenger_files(
    store: Store,
    model: str,
    files: Mapping[str, Path | bytes],
    keyring: KeyRing,
    metrics: Mapping[str, float],
    gates: list[Gate],
    lineage: Mapping[str, Any],
    ttl_hours: float,
    state_dir: Path | None = None,
) -> PublishedVersion:
    """Files, manifest, signature, then the signed ``CHALLENGER`` pointer; then a heartbeat of
    the champion's ``LATEST`` (this run moved nothing there, and a slot that keeps sending
    challengers must not let its champion's pointer expire)."""
    log = get_run_logger()
    ttl = timedelta(hours=ttl_hours)
    published = publish_challenger(
        store,
        model,
        dict(files),
        keyring,
        metrics={k: float(v) for k, v in metrics.items() if math.isfinite(v)},
        gates=[g.as_dict() for g in gates],
        lineage={**rebuild_lineage(), **lineage},
        ttl=ttl,
        state_dir=state_dir,
    )
    log.info(
        "published %s %s as challenger (CHALLENGER sequence %d); LATEST unchanged",
        model,
        published.version,
        published.sequence,
    )
    if published.previous_version is not None:
        try:
            beat = heartbeat(store, model, keyring, ttl=ttl, state_dir=state_dir)
            log.info("%s champion %s re-signed (sequence %d)", model, beat.version, beat.sequence)
        except (PublishError, VerificationError) as exc:
            log.error("ALERT %s: no heartbeat for the champion: %s", model, exc)
    return published


@task(name="settle_challengers", cache_policy=NO_CACHE)
def settle_challengers(ctx: RunContext, bars: pd.DataFrame) -> dict[str, ShadowSettlement]:
    """Each scored slot's standing challenger judged on its shadow decisions (before anything
    is trained, so this run's champion stage starts from the champion that results)."""
    log = get_run_logger()
    reg = ctx.settings.registry
    b = ctx.settings.bandit
    events = read_shadow_events(shadow_folder(ctx))
    rewards = indexed_rewards(
        bars,
        arm_rewards(bars, compute_signals(bars), b.reward_horizon, b.cost_bps, b.slippage_bps),
    )
    rules = ShadowRules(
        min_decisions=reg.min_shadow_decisions,
        block=reg.shadow_bootstrap_block,
        n_bootstrap=reg.shadow_n_bootstrap,
        level=reg.shadow_ci_level,
        seed=ctx.settings.seed,
        # the engine's veto threshold (EngineConfig): what "keeps a trade" meant on the bar
        metalabel_threshold=EngineConfig().metalabel_threshold,
    )
    state_dir = WorkdirLayout(ctx.settings.workdir).publisher_state
    out: dict[str, ShadowSettlement] = {}
    for model in SCORED_ROLES:
        try:
            settled = settle_shadow(
                ctx.store,
                model,
                ctx.keyring,
                events,
                rewards,
                rules,
                state_dir=state_dir,
                ttl=timedelta(hours=reg.pointer_ttl_hours),
                keep_last=reg.keep_last,
            )
        except (PublishError, VerificationError) as exc:
            log.error("ALERT %s challenger not settled: %s", model, exc)
            out[model] = ShadowSettlement(model, "none", f"{model} challenger not settled: {exc}")
            continue
        if settled.action != "none":
            log.info("%s", settled.line)
        if settled.action == "promoted" and settled.version is not None:
            _move_champion_alias(ctx, model, settled.version)
        out[model] = settled
    return out


def _move_champion_alias(ctx: RunContext, model: str, version: str) -> None:
    """The MLflow ``champion`` alias follows ``LATEST`` to the promoted version (its manifest
    names the registered model version it was logged as)."""
    from pipelines.registry.verify import verify_version

    vv = verify_version(ctx.store, model, version, ctx.keyring)
    registered = json.loads(vv.manifest_bytes).get("lineage", {}).get("mlflow_model_version")
    if registered is None:
        return
    name = ctx.tracker.registered_name(model)
    ctx.tracker.promote(ModelRecord("", name, str(registered), math.nan))
