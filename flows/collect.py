"""The collect flow: read the source, check it, append new bars, featurize.

Runs every 30 minutes as a deployment (prefect.yaml) and as the first stage of training.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from configs import Settings, load_config
from pipelines.memory import release_memory
from pipelines.workdir import WorkdirLayout, new_run_id
from tasks.data import (
    CollectResult,
    Rejected,
    RejectedInputError,
    check_data,
    claim_bar_store,
    collect_raw,
    featurize_bars,
    ingest_bot_events,
    load_bars,
    store_bars,
)


@flow(name="edgeflow-collect", log_prints=True)
def collect_stage(settings: Settings, run_id: str) -> CollectResult:
    """collect -> check -> store -> featurize; returns what later stages and reports need."""
    layout = WorkdirLayout(settings.workdir)
    run_dir = layout.run_dir(run_id)
    claimed = claim_bar_store(
        settings.data, settings.seed, settings.profile, layout.bars, layout.root
    )
    if isinstance(claimed, Rejected):
        return CollectResult.refused(run_dir, claimed.message)
    raws = collect_raw(settings.data, settings.seed)
    if isinstance(raws, Rejected):
        return CollectResult.refused(run_dir, raws.message)
    checked = check_data(raws, settings.data, run_dir)
    if isinstance(checked, Rejected):
        return CollectResult.refused(run_dir, checked.message)
    appended = store_bars(checked, layout.bars)
    bars, data_hash = load_bars(layout.bars)
    features = featurize_bars(bars, data_hash)
    events = ingest_bot_events(settings.events, layout.events)
    release_memory()  # the reads' and featurize's temporaries, before the trainings start
    return CollectResult(
        run_dir=run_dir,
        bars=bars,
        data_hash=data_hash,
        features=features,
        checks=checked.report.to_dict(),
        append=appended.to_dict(),
        events=events.summary,
        joined_events=events.joined,
    )


def run_collect(settings: Settings) -> dict[str, Any]:
    """CLI entry: one collect run; returns a JSON-able summary."""
    result = collect_stage(settings, new_run_id())
    if result.rejected is not None or result.features is None:
        raise RejectedInputError(result.rejected or "no features")
    return {
        "rows_added": result.append["rows_added"],
        "watermarks": result.append["watermarks"],
        "quarantined": result.checks["quarantined"],
        "bars": len(result.bars),
        "feature_rows": len(result.features.frame),
        "warmup_dropped": result.features.warmup_dropped,
        "data_hash": result.data_hash,
        "events": result.events,
    }


@flow(name="edgeflow-collect-scheduled")
def collect_flow(
    config: str = "configs/default.yaml", workdir: str = ".edgeflow"
) -> dict[str, Any]:
    """Deployment entry (prefect.yaml): build the config once, then collect."""
    return run_collect(load_config(config, overrides={"workdir": workdir}))
