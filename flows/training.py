"""The training flow: the whole DAG, composed from tasks. No math here.

collect -> check -> featurize -> {regime, bandit, sizer} (submitted independently: one at a
time on threads by default, in parallel on Dask) -> gates + parity ->
publish (signed) -> recommendation -> report. A model that fails a gate or parity is not
published and its last good version stays live; the other models still publish.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from configs import Settings, load_config
from flows.collect import collect_stage
from flows.lineage import config_hash, git_commit
from pipelines.registry.keys import keyring_from_env
from pipelines.registry.store import open_store
from pipelines.workdir import WorkdirLayout, new_run_id
from tasks.publish import publish_files
from tasks.recommend import derive_recommendation
from tasks.reporting import decide_training, record_training, write_run_report
from tasks.tracking import Tracker, default_tracking_uri
from tasks.train import parity_gate, train_model

PARITY_TOLERANCE = 1e-5
MODELS = ("regime", "bandit", "sizer")


def store_uri(settings: Settings) -> str:
    """The configured store, or the local default under the workdir."""
    return settings.registry.store or (WorkdirLayout(settings.workdir).store.resolve().as_uri())


def make_tracker(settings: Settings) -> Tracker:
    layout = WorkdirLayout(settings.workdir)
    uri = settings.mlflow.tracking_uri or default_tracking_uri(settings.workdir)
    return Tracker(uri, settings.mlflow.experiment, artifact_root=layout.mlartifacts)


@flow(name="edgeflow-training", task_runner=ThreadPoolTaskRunner(max_workers=3))  # type: ignore[arg-type]
def training_flow(settings: Settings, force: bool = False) -> dict[str, Any]:
    """Collect, train, gate, export, publish and report; returns the run summary."""
    log = get_run_logger()
    layout = WorkdirLayout(settings.workdir)
    run_id = new_run_id()
    started = datetime.now(UTC)
    data = collect_stage(settings, run_id)
    run_dir: Path = data["run_dir"]
    if "rejected" in data:
        return {"status": "rejected", "reason": data["rejected"], "run_dir": str(run_dir)}

    decision = decide_training(layout, data["bars"], settings.training.min_new_bars, force)
    if not decision["train"]:
        log.info("not training: %s", decision["reason"])
        return {"status": "skipped", "reason": decision["reason"], "run_dir": str(run_dir)}
    log.info("training: %s", decision["reason"])

    # Secrets and clients are built here, at the entry point, and passed down.
    keyring = keyring_from_env(os.environ, settings, settings.workdir)
    store = open_store(store_uri(settings), endpoint_url=settings.registry.s3_endpoint_url)
    tracker = make_tracker(settings)
    lineage = {
        "git_commit": git_commit(),
        "data_hash": data["data_hash"],
        "config_hash": config_hash(settings),
    }
    parent = tracker.start_run(
        f"train-{run_id}",
        params=settings.model_dump(mode="json"),
        tags={"edgeflow.run_id": run_id, "edgeflow.profile": settings.profile, **lineage},
    )
    tracker.log_dict(parent, data["checks"], "data_checks.json")

    features = data["features"].frame
    futures = {
        name: train_model.submit(name, data["bars"], features, settings, run_dir / name)
        for name in MODELS
    }
    results: dict[str, dict[str, Any]] = {}
    outcomes = {}
    for name, future in futures.items():
        state = future.wait() or future.state
        if not state.is_completed():
            log.error("%s training failed: %s", name, state.message)
            results[name] = {"status": "failed", "detail": str(state.message)}
            continue
        outcome = future.result()
        outcomes[name] = outcome
        gates = list(outcome.gates)
        if not any(g.name == "onnx_max_abs_diff" for g in gates):
            gates.append(parity_gate(outcome, PARITY_TOLERANCE))
        child = tracker.start_run(
            name, params=outcome.params, parent_id=parent, tags={"edgeflow.model": name}
        )
        metrics = {**outcome.metrics, "onnx_max_abs_diff": outcome.onnx_max_abs_diff}
        tracker.log_metrics(child, metrics)
        tracker.log_metrics(child, {f"gate/{g.name}": g.value for g in gates})
        for path in [outcome.onnx_path, *outcome.artifacts.values()]:
            tracker.log_artifact(child, path, "files")
        record = tracker.log_model(child, outcome)
        failed = [g.name for g in gates if not g.passed]
        if failed:
            detail = f"blocked by gate(s) {', '.join(failed)}; the previous version stays live"
            log.warning("%s %s", name, detail)
            results[name] = {"status": "blocked", "detail": detail, "gates": gates}
            tracker.set_tags(child, {"edgeflow.status": "blocked"})
            tracker.end_run(child, ok=True)
            continue
        # JSON cannot carry NaN (e.g. recall of a class absent from the held-out span).
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        publish_state = publish_files(
            store,
            name,
            {"model.onnx": outcome.onnx_path},
            keyring,
            finite,
            gates,
            {**lineage, "mlflow_run_id": child, "mlflow_model_version": record.registered_version},
            settings.registry.keep_last,
            return_state=True,
        )
        if not publish_state.is_completed():
            detail = f"publish failed ({publish_state.message}); the previous version stays live"
            log.error("%s %s", name, detail)
            results[name] = {"status": "failed", "detail": detail, "gates": gates}
            tracker.set_tags(child, {"edgeflow.status": "publish-failed"})
            tracker.end_run(child, ok=False)
            continue
        published = publish_state.result()
        tracker.promote(record)
        tracker.set_tags(
            child, {"edgeflow.status": "published", "edgeflow.version": published.version}
        )
        tracker.end_run(child, ok=True)
        results[name] = {
            "status": "published",
            "detail": f"version {published.version} (sequence {published.sequence})",
            "version": published.version,
            "gates": gates,
        }

    if "regime" in outcomes:
        results["recommendation"] = publish_recommendation(
            data["bars"],
            features,
            outcomes,
            results,
            settings,
            run_dir,
            store,
            keyring,
            lineage,
            tracker,
            parent,
        )

    summary = {
        "status": "ok" if all(r["status"] != "failed" for r in results.values()) else "failed",
        "run_id": run_id,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "store": store_uri(settings),
        "mlflow_run_id": parent,
        "mlflow_tracking_uri": tracker.tracking_uri,
        "models": {
            k: {kk: vv for kk, vv in v.items() if kk not in {"gates", "tables"}}
            for k, v in results.items()
        },
        **lineage,
    }
    report = write_run_report(run_dir, summary, results, outcomes, data["checks"], data["bars"])
    tracker.log_artifact(parent, report.parent, "report")
    summary["report"] = str(report)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if any(r["status"] == "published" for r in results.values()):
        record_training(layout, summary, len(data["bars"]))
    tracker.end_run(parent, ok=summary["status"] == "ok")
    return summary


def with_task_runner(settings: Settings) -> Any:
    """The training flow on the configured task runner (threads, or Dask via prefect-dask)."""
    if settings.training.task_runner != "dask":
        threads: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(
            max_workers=settings.training.concurrency
        )
        return training_flow.with_options(task_runner=threads)  # type: ignore[arg-type]
    from prefect_dask import DaskTaskRunner

    if settings.training.dask_address:
        runner = DaskTaskRunner(address=settings.training.dask_address)
    else:
        runner = DaskTaskRunner(
            cluster_kwargs={
                "n_workers": settings.training.dask_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    return training_flow.with_options(task_runner=runner)  # type: ignore[arg-type]


def publish_recommendation(
    bars: Any,
    features: Any,
    outcomes: dict[str, Any],
    results: dict[str, dict[str, Any]],
    settings: Settings,
    run_dir: Path,
    store: Any,
    keyring: Any,
    lineage: dict[str, str],
    tracker: Tracker,
    parent: str,
) -> dict[str, Any]:
    """Derive ``latest_recommendation.json`` and publish it signed when the classifier passed."""
    passed = {name: r["status"] == "published" for name, r in results.items()}
    doc = derive_recommendation(
        bars,
        features,
        outcomes,
        passed,
        settings.bandit.reward_horizon,
        settings.bandit.holdout_fraction,
    )
    doc = {"generated_at": datetime.now(UTC).isoformat(), **doc}
    path = run_dir / "recommendation" / "latest_recommendation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True))
    rows = [
        {"family": fam, "regime": reg, **cell}
        for fam, cells in doc["recommendations"].items()
        for reg, cell in cells.items()
    ]
    table = path.with_name("recommendation.csv")
    pd.DataFrame(rows).to_csv(table, index=False)
    tracker.log_artifact(parent, path, "recommendation")
    if not passed.get("regime"):
        return {
            "status": "blocked",
            "detail": "the regime classifier did not pass its gates",
            "tables": [table],
        }
    published = publish_files(
        store,
        "recommendation",
        {"latest_recommendation.json": path},
        keyring,
        {},
        [],
        {**lineage, "mlflow_run_id": parent},
        settings.registry.keep_last,
    )
    return {
        "status": "published",
        "detail": f"version {published.version} (sources: {doc['sources']})",
        "version": published.version,
        "tables": [table],
    }


def run_training(settings: Settings, force: bool = False) -> dict[str, Any]:
    """CLI entry: one training run."""
    result: dict[str, Any] = with_task_runner(settings)(settings, force=force)
    return result


@flow(name="edgeflow-training-scheduled")
def scheduled_training(
    config: str = "configs/default.yaml", workdir: str = ".edgeflow", force: bool = False
) -> dict[str, Any]:
    """Deployment entry (prefect.yaml): build the config once, then train."""
    settings = load_config(config, overrides={"workdir": workdir})
    result: dict[str, Any] = with_task_runner(settings)(settings, force=force)
    return result
