"""The collect flow: read the source, check it, append new bars, featurize.

Runs every 30 minutes as a deployment (prefect.yaml) and as the first stage of training.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import Failed, State

from configs import Settings, load_config
from pipelines.data.errors import RejectedInputError
from pipelines.features.extended import feature_set_record
from pipelines.memory import release_memory
from pipelines.workdir import WorkdirLayout, new_run_id
from tasks.data import (
    REJECTED,
    CollectResult,
    check_data,
    claim_bar_store,
    collect_raw,
    extend_feature_set,
    featurize_bars,
    ingest_bot_events,
    load_bars,
    load_exogenous_series,
    store_bars,
)


def collect_data(settings: Settings, run_id: str) -> CollectResult:
    """collect -> check -> store -> featurize as tasks of the calling flow; returns what later
    stages and reports need, or the one line that refused the input (the refusing task ends
    Rejected). Any other failure of a task is raised."""
    layout = WorkdirLayout(settings.workdir)
    run_dir = layout.run_dir(run_id)
    claimed = claim_bar_store(
        settings.data, settings.seed, settings.profile, layout.bars, layout.root, return_state=True
    )
    if claimed.name == REJECTED:
        return CollectResult.refused(run_dir, str(claimed.message))
    claimed.result()  # raises what failed otherwise
    read = collect_raw(settings.data, settings.seed, return_state=True)
    if read.name == REJECTED:
        return CollectResult.refused(run_dir, str(read.message))
    raws = read.result()
    check = check_data(raws, settings.data, run_dir, return_state=True)
    if check.name == REJECTED:
        return CollectResult.refused(run_dir, str(check.message))
    checked = check.result()
    appended = store_bars(checked, layout.bars)
    bars, data_hash = load_bars(layout.bars)
    features = featurize_bars(bars, data_hash)
    series: list[Any] = []
    if settings.data.exogenous:
        loaded = load_exogenous_series(settings.data, run_dir, return_state=True)
        if loaded.name == REJECTED:
            return CollectResult.refused(run_dir, str(loaded.message))
        series = loaded.result()
    if series or settings.data.cross_asset.enabled:
        extended = extend_feature_set(features, bars, series, settings.data, return_state=True)
        if extended.name == REJECTED:
            return CollectResult.refused(run_dir, str(extended.message))
        features = extended.result()
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
        feature_set=feature_set_record(series, settings.data.cross_asset),
    )


@flow(name="edgeflow-collect", log_prints=True)
def collect_stage(settings: Settings, run_id: str) -> CollectResult:
    """The collect stage as a flow of its own (``edgeflow collect``, the collect deployment):
    it ends Failed named Rejected, with the refusal's one line, when the input is refused."""
    result = collect_data(settings, run_id)
    if result.rejected is not None:
        return Failed(name=REJECTED, message=result.rejected)  # type: ignore[return-value]
    write_collect_record(result)
    return result


#: A collect run's record in its run folder (a training run writes ``summary.json`` instead):
#: without it, ``edgeflow runs`` saw only ``data_checks.json`` and listed a good scheduled
#: collect as a run that wrote no summary.
COLLECT_RECORD = "collect.json"


def write_collect_record(result: CollectResult) -> Path:
    """Write :data:`COLLECT_RECORD` (``kind: collect``, when it finished, and
    :func:`collect_summary`) into the run folder."""
    record = {"kind": "collect", "finished_at": datetime.now(UTC).isoformat()}
    record.update(collect_summary(result))
    result.run_dir.mkdir(parents=True, exist_ok=True)
    path = result.run_dir / COLLECT_RECORD
    path.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return path


def run_collect(settings: Settings) -> dict[str, Any]:
    """CLI entry: one collect run; returns a JSON-able summary; refused input raises
    :class:`RejectedInputError` with the one line."""
    state = collect_stage(settings, new_run_id(), return_state=True)
    if state.name == REJECTED:
        raise RejectedInputError(str(state.message))
    return collect_summary(state.result())


def collect_summary(result: CollectResult) -> dict[str, Any]:
    """The JSON-able summary of one collect (the CLI prints it; the deployment returns it)."""
    if result.features is None:
        raise RejectedInputError("no features")
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


def deployment_settings(config: str, workdir: str | None) -> Settings:
    """A deployment's settings: the config file, with ``workdir`` only when one is given, so
    each profile keeps to the workdir its file names (the demo's ``.edgeflow``, the default
    profile's ``.edgeflow-default``) and a scheduled run never meets another profile's bars."""
    return load_config(config, overrides={"workdir": workdir} if workdir else None)


@flow(name="edgeflow-collect-scheduled")
def collect_flow(
    config: str = "configs/default.yaml", workdir: str | None = None
) -> dict[str, Any] | State[Any]:
    """Deployment entry (prefect.yaml): build the config once, then collect.

    Refused input ends this run Failed (named Rejected) with the refusal's one line as its
    message, not with a traceback.

    Args:
        config: the profile's YAML file (relative to the checkout) or a shipped profile's name.
        workdir: where the run writes; empty: the config file's own ``workdir``.
    """
    state = collect_stage(deployment_settings(config, workdir), new_run_id(), return_state=True)
    if not state.is_completed():
        return Failed(name=state.name, message=state.message)
    return collect_summary(state.result())
