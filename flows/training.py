"""The training flow: the whole DAG, composed from tasks. No math here.

collect -> check -> featurize -> signals -> the live champions -> every model of the registry
(concurrently, each from its own random streams) -> gates + parity -> challenger vs champion
-> MLflow + publish (signed) per model as soon as it is judged -> recommendation -> report.
A slot whose challenger does not beat its champion on both spans (or, without a champion
stage, a model that fails a gate or parity) publishes nothing and its live version stays;
the other slots still publish.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prefect import allow_failure, flow, get_run_logger
from prefect.futures import as_completed
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from configs import Settings
from flows.collect import collect_data, deployment_settings
from pipelines.models.base import TrainInputs
from pipelines.models.specs import SPECS
from tasks.champions import read_champions
from tasks.context import ModelOutcome, RunContext, store_uri
from tasks.data import CollectResult, pull_cloud_state, push_cloud_state
from tasks.publish import heartbeat_pointers, settle_trained
from tasks.recommend import publish_recommendation
from tasks.reporting import close_run, decide_training, final_state
from tasks.shadow import settle_challengers
from tasks.tracking import start_parent_run
from tasks.train import compute_arm_signals, plan_models, train_model

__all__ = ["run_training", "scheduled_training", "store_uri", "training_flow"]


@flow(name="edgeflow-training", task_runner=ThreadPoolTaskRunner(max_workers=4))  # type: ignore[arg-type]
def training_flow(settings: Settings, force: bool = False) -> State[dict[str, Any]]:
    """The run between a pull and a push of the workdir's state (``training.state_uri``):
    a stateless runner continues where the last run stopped. A failed pull pushes nothing."""
    pull_cloud_state(settings)
    try:
        return _training(settings, force)
    finally:
        push_cloud_state(settings)


def _training(settings: Settings, force: bool) -> State[dict[str, Any]]:
    """Collect, train, gate, export, publish and report.

    The final state tells the truth: Failed for rejected input or a model that failed,
    Completed named Skipped when too little new data arrived, else Completed with the counts
    of published, blocked and skipped models; every one carries the run summary.
    """
    log = get_run_logger()
    ctx = RunContext.open(settings)
    # The collect stage's tasks run as this flow's own, not as a subflow: a subflow run costs
    # its own state round trips and, on the local SQLite API, a "database is locked" retry
    # now and then (2 s of backoff; docs/performance.md). ``edgeflow collect`` runs it as a flow.
    data = collect_data(settings, ctx.run_id)
    if data.rejected is not None or data.features is None:
        summary: dict[str, Any] = {
            "status": "rejected",
            "reason": data.rejected,
            "run_dir": str(data.run_dir),
        }
        return Failed(message=f"rejected input: {data.rejected}", data=summary)
    decision = decide_training(ctx.layout, data.bars, settings.training.min_new_bars, force)
    log.info("%straining: %s", "" if decision.train else "not ", decision.reason)
    if not decision.train:
        summary = {"status": "skipped", "reason": decision.reason, "run_dir": str(data.run_dir)}
        return Completed(name="Skipped", message=decision.reason, data=summary)

    lineage = {**ctx.lineage, "data_hash": data.data_hash}
    ctx = RunContext(**{**ctx.__dict__, "lineage": lineage})
    parent = start_parent_run(ctx.tracker, ctx.run_id, settings, lineage, data.checks)
    # every manifest this run signs names its input columns and their sources (not a tag of
    # the parent run: MLflow tags are short strings; it is logged there as features.json)
    ctx.tracker.log_dict(parent, data.feature_set, "features.json")
    ctx = RunContext(**{**ctx.__dict__, "lineage": {**lineage, "features": data.feature_set}})
    try:
        return _train_and_settle(settings, ctx, parent, data)
    except BaseException:
        # a crash or Ctrl-C: MLflow's parent run says FAILED instead of staying RUNNING
        with contextlib.suppress(Exception):
            ctx.tracker.end_run(parent, ok=False)
        raise


def _train_and_settle(
    settings: Settings, ctx: RunContext, parent: str, data: CollectResult
) -> State[dict[str, Any]]:
    """Every model trained concurrently, each settled as it finishes, then the report."""
    log = get_run_logger()
    assert data.features is not None  # checked by the caller
    features = data.features.frame
    # promotion: shadow -> last run's challenger is promoted or withdrawn first, so this
    # run's champion stage starts from the champion that results (direct: nothing runs)
    shadow_mode = settings.registry.promotion == "shadow"
    shadowed = settle_challengers(ctx, data.bars) if shadow_mode else {}
    # what is live per slot, verified: each slot's candidates must beat it to replace it
    champions = read_champions(ctx) if settings.training.champions else None
    inputs = TrainInputs(
        data.bars,
        features,
        compute_arm_signals(data.bars),
        events=data.joined_events,
        champions=champions,
    )

    outcomes: dict[str, ModelOutcome] = {}
    futures: dict[str, Any] = {}
    for name, reason in plan_models(features).items():
        if reason is not None:
            log.warning("skipping %s", reason)
            outcomes[name] = ModelOutcome(name, "skipped", reason)
            continue
        # a failed or skipped upstream model does not stop this one (it trains without it)
        upstream = {u: allow_failure(futures[u]) for u in SPECS[name].after if u in futures}
        futures[name] = train_model.submit(
            name,
            inputs,
            settings,
            ctx.model_dir(name),
            upstream or None,  # type: ignore[arg-type]  # futures resolve to results
        )
    # Each model is logged and published here, in the flow's process, as soon as it is
    # judged, while the others still train.
    names = {id(f): n for n, f in futures.items()}
    results = {}
    for future in as_completed(list(futures.values())):
        name = names[id(future)]
        outcomes[name], result = settle_trained(ctx, parent, name, future)
        if result is not None:
            results[name] = result
    outcomes = {name: outcomes[name] for name in SPECS}  # registry order

    if results:  # never blocked whole: without a regime champion, family-level values
        outcomes["recommendation"] = publish_recommendation(
            ctx, parent, data.bars, features, inputs.signals, results, outcomes, data.joined_events
        )
    heartbeats = heartbeat_pointers(ctx, outcomes)
    shadow_lines = {name: s.line for name, s in shadowed.items()}
    summary = close_run(ctx, parent, data, outcomes, results, heartbeats, shadow_lines or None)
    return final_state(summary, outcomes)


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


def run_training(settings: Settings, force: bool = False) -> dict[str, Any]:
    """CLI entry: one training run; its summary whatever state the flow run ended in."""
    return summary_of(with_task_runner(settings)(settings, force=force, return_state=True))


def summary_of(state: Any) -> dict[str, Any]:
    """The summary a flow run's final state carries; a crash is raised, not summarised."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    summary: dict[str, Any] = result
    return summary


@flow(name="edgeflow-training-scheduled")
def scheduled_training(
    config: str = "configs/default.yaml", workdir: str | None = None, force: bool = False
) -> State[Any]:
    """Deployment entry (prefect.yaml): build the config once, then train (a subflow, on the
    configured task runner).

    This run, the one ``prefect deployment run`` prints, ends as the training ended: its own
    state with the training's name and one-line message (Failed ``rejected input: ...``,
    Skipped, Completed with the counts), and carries the run's artifacts. Returning the
    subflow's state itself would end it "1/1 states failed." and make the worker raise a
    ``TypeError`` on the summary a failed state carries.

    Args:
        config: the profile's YAML file (relative to the checkout) or a shipped profile's name.
        workdir: where the run writes; empty: the config file's own ``workdir``.
        force: train even when too few new bars arrived since the last published training.
    """
    settings = deployment_settings(config, workdir)
    state = with_task_runner(settings)(settings, force=force, return_state=True)
    return own_state(state)


def own_state(state: State[Any]) -> State[Any]:
    """A new state for the calling flow run from its subflow's final one: same type, name and
    message; a Completed one keeps the summary as its result, a failed one carries no data
    (Prefect turns a failed state's result into its exception: the message, one line)."""
    if state.is_completed():
        summary = state.result(raise_on_failure=False)
        return Completed(name=state.name, message=state.message, data=summary)
    return Failed(name=state.name if state.is_failed() else "Failed", message=state.message)
