"""MLflow bookkeeping: one parent run per flow run, a nested run per model, registry aliases.

Everything goes through an explicit ``MlflowClient`` and run ids, so concurrent tasks never
share MLflow's thread-local "active run". The ONNX model is logged with ``mlflow.onnx`` and
read back through pyfunc (a round trip, as MLflow's ONNX example does) before it is trusted.
"""

from __future__ import annotations

import getpass
import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from prefect import task
from prefect.cache_policies import NO_CACHE

from pipelines.evaluation.gates import blocked_reason
from pipelines.export.onnx import make_session
from pipelines.models.base import ModelResult
from pipelines.workdir import WorkdirLayout

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Model version tags: what became of the version (blocked, passed, published,
#: publish-failed) and the one-line reason, so the registry tells a blocked model's version
#: from a shipped one (only the champion alias did, and only for the current champion).
STATUS_TAG = "edgeflow.status"
REASON_TAG = "edgeflow.reason"
EXPERIMENT_KIND = "mlflow.experimentKind"
CLASSIC_KIND = "custom_model_development"
_PARAM_MAX = 6000
#: MLflow's per-request limits for ``log_batch`` (mlflow.utils.validation).
_BATCH_PARAMS = 100
_BATCH_METRICS = 1000


def default_tracking_uri(workdir: Path) -> str:
    """The local default: a sqlite store under the workdir (MLflow's file store is deprecated)."""
    return f"sqlite:///{WorkdirLayout(workdir).mlflow_db.resolve()}"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"data.synthetic.n_bars": "5000"}`` for MLflow params."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            text = json.dumps(value, default=str) if not isinstance(value, str) else value
            out[name] = text[:_PARAM_MAX]
    return out


@dataclass(frozen=True)
class ModelRecord:
    """What the tracker knows about one model of this flow run."""

    run_id: str
    registered_name: str
    registered_version: str
    pyfunc_max_abs_diff: float


class Tracker:
    """Thin, explicit wrapper over ``MlflowClient`` for the training flow."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_root: Path | None = None,
        *,
        background: bool = False,
    ):
        """``background=True`` opens the store (creating and migrating a new sqlite database:
        ~1.5 s) on a thread, so the flow collects its data meanwhile; the first call that
        needs the experiment waits for it and raises what the opening raised."""
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._artifact_root = artifact_root
        self._opened: tuple[MlflowClient, str | None] | None = None
        self._opening: Future[tuple[MlflowClient, str | None]] | None = None
        self._tagged: set[str] = set()
        if background:
            pool = ThreadPoolExecutor(1, thread_name_prefix="mlflow-open")
            self._opening = pool.submit(self._open)
            pool.shutdown(wait=False)
        else:
            self._opened = self._open()

    def _open(self) -> tuple[MlflowClient, str | None]:
        uri = self.tracking_uri
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # opens (creates) the store
        found = client.get_experiment_by_name(self.experiment)
        return client, None if found is None else str(found.experiment_id)

    def _ready(self) -> tuple[MlflowClient, str | None]:
        if self._opened is None:
            assert self._opening is not None
            self._opened = self._opening.result()
        return self._opened

    @property
    def client(self) -> MlflowClient:
        return self._ready()[0]

    @property
    def experiment_id(self) -> str:
        """The experiment, created on first use: a run refused before it tracks anything
        (bad input, another profile's bars) leaves no empty experiment behind."""
        client, experiment_id = self._ready()
        if experiment_id is None:
            root = self._artifact_root
            location = root.resolve().as_uri() if root else None
            experiment_id = str(
                client.create_experiment(self.experiment, artifact_location=location)
            )
            self._opened = (client, experiment_id)
        # The classic ML view (runs, metrics, models) for MLflow UIs that read the tag; MLflow
        # 3.17's own UI follows its sidebar switch instead (?workflowType=machine_learning).
        if experiment_id not in self._tagged:
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, CLASSIC_KIND)
            self._tagged.add(experiment_id)
        return experiment_id

    def registered_name(self, model: str) -> str:
        """``<experiment>-<model>``: each experiment (profile) owns its aliases."""
        return f"{self.experiment}-{model}"

    def start_run(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_id: str | None = None,
        start_time: int | None = None,
    ) -> str:
        """A run (nested under ``parent_id``); ``start_time`` in ms since the epoch, default now."""
        all_tags = dict(tags or {})
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(
            self.experiment_id, start_time=start_time, run_name=name, tags=all_tags
        )
        run_id = str(run.info.run_id)
        if params:
            items = [Param(k, v) for k, v in flatten(params).items()]
            # One transaction per batch: one log_param per key costs a commit each (~4 ms).
            for i in range(0, len(items), _BATCH_PARAMS):
                self.client.log_batch(run_id, params=items[i : i + _BATCH_PARAMS])
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        items = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if value is not None and np.isfinite(value)
        ]
        for i in range(0, len(items), _BATCH_METRICS):
            self.client.log_batch(run_id, metrics=items[i : i + _BATCH_METRICS])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        self.client.log_dict(run_id, data, name)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        items = [RunTag(k, v) for k, v in tags.items()]
        for i in range(0, len(items), _BATCH_PARAMS):
            self.client.log_batch(run_id, tags=items[i : i + _BATCH_PARAMS])

    def end_run(self, run_id: str, ok: bool) -> None:
        status = RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED)
        self.client.set_terminated(run_id, status=status)

    def log_model(self, run_id: str, outcome: ModelResult) -> ModelRecord:
        """Log and register the ONNX model, then check it by a pyfunc round trip."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        name = self.registered_name(outcome.model)
        path = outcome.shipped_export.path  # the candidate this run would publish
        model = onnx.load(str(path))
        example = _example_input(outcome)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.onnx.log_model(
                model,
                name="model",
                input_example=example,
                save_as_external_data=False,
                onnx_execution_providers=["CPUExecutionProvider"],
                # An ONNX model needs onnx and onnxruntime, nothing else; naming them skips
                # MLflow's inference, which re-imports the model in a subprocess (~1.8 s).
                pip_requirements=mlflow.onnx.get_default_pip_requirements(),
            )
        version = self._register(name, info.model_uri, info.model_id, version_outcome(outcome))
        loaded = mlflow.pyfunc.load_model(info.model_uri)
        diff = _round_trip_diff(path, loaded, example)
        self.client.log_metric(run_id, "onnx/pyfunc_max_abs_diff", diff)
        if outcome.champion is not None and outcome.champion.challenger is not None:
            # the challenger alias follows every run's challenger; champion moves on promotion
            self.client.set_registered_model_alias(name, CHALLENGER, version)
            cand = outcome.champion.challenger
            for key, value in (("edgeflow.candidate", cand.name), ("edgeflow.kind", cand.kind)):
                self.client.set_model_version_tag(name, version, key, value)
        return ModelRecord(run_id, name, version, diff)

    def _register(self, name: str, model_uri: str, model_id: str, tags: Mapping[str, str]) -> str:
        """A new version of ``name`` for the logged model, tagged at creation with its
        outcome so far (:func:`version_outcome`): a blocked model's version was registered
        with nothing saying it was blocked. Registering through the client, not
        ``log_model(registered_model_name=...)``, also keeps MLflow's "Successfully
        registered model" print (to stderr, for a blocked model too) out of the CLI's output;
        the version is logged here in its place, with the outcome."""
        try:
            self.client.create_registered_model(name)
        except mlflow.exceptions.MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = self.client.create_model_version(name, model_uri, tags=dict(tags), model_id=model_id)
        logger.info(
            "registered %s version %s (%s: %s)",
            name,
            mv.version,
            tags[STATUS_TAG],
            tags[REASON_TAG],
        )
        return str(mv.version)

    def set_version_outcome(self, record: ModelRecord, status: str, reason: str) -> None:
        """Re-tag a registered version once the publish settled it (published, publish-failed)."""
        for key, value in ((STATUS_TAG, status), (REASON_TAG, _one_line(reason))):
            self.client.set_model_version_tag(
                record.registered_name, record.registered_version, key, value
            )

    def promote(self, record: ModelRecord) -> None:
        """Move ``champion`` to this version: done only after the store's pointer moved."""
        self.client.set_registered_model_alias(
            record.registered_name, CHAMPION, record.registered_version
        )

    def champion_version(self, model: str) -> str | None:
        try:
            mv = self.client.get_model_version_by_alias(self.registered_name(model), CHAMPION)
        except mlflow.exceptions.MlflowException:
            return None
        return str(mv.version)


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def version_outcome(outcome: ModelResult) -> dict[str, str]:
    """A registered version's tags at registration: :data:`STATUS_TAG` ``blocked`` (with the
    one-line reason the run reports) or ``passed`` (the publish comes next and re-tags it
    ``published`` or ``publish-failed``), and :data:`REASON_TAG`."""
    decision = outcome.champion
    if outcome.passed:
        why = decision.reason if decision is not None else "passed every gate"
        return {STATUS_TAG: "passed", REASON_TAG: _one_line(why)}
    why = decision.reason if decision is not None else blocked_reason(outcome.publish_gates)
    return {STATUS_TAG: "blocked", REASON_TAG: _one_line(why)}


def _example_input(outcome: ModelResult) -> np.ndarray:
    width = outcome.export.graph.input_width
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, width)).astype(np.float32)


def _round_trip_diff(onnx_path: Path, loaded: Any, example: np.ndarray) -> float:
    session = make_session(onnx_path)
    direct = session.run(None, {session.get_inputs()[0].name: example})
    via = loaded.predict(example)
    values = via.values() if isinstance(via, dict) else [via]
    diffs = []
    for ours, theirs in zip(direct, values, strict=False):
        a = np.asarray(ours, dtype=np.float64).ravel()
        b = np.asarray(theirs, dtype=np.float64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"pyfunc round trip changed output shape {a.shape} -> {b.shape}")
        diffs.append(float(np.max(np.abs(a - b))) if a.size else 0.0)
    return max(diffs) if diffs else 0.0


# --------------------------------------------------------------------------- tasks
@task(name="start_tracking", cache_policy=NO_CACHE)
def start_parent_run(
    tracker: Tracker,
    run_id: str,
    settings: Any,
    lineage: Mapping[str, str],
    checks: Mapping[str, Any],
) -> str:
    """The flow run's parent MLflow run: the resolved config, lineage tags, the data checks."""
    tags = {
        "edgeflow.run_id": run_id,
        "edgeflow.profile": settings.profile,
        **lineage,
        # MLflow's standard source tags (the UI's Source, User and commit columns)
        "mlflow.source.name": "edgeflow run",
        "mlflow.source.type": "JOB",
        "mlflow.user": getpass.getuser(),
    }
    if lineage.get("git_commit", "unknown") != "unknown":
        tags["mlflow.source.git.commit"] = lineage["git_commit"].removesuffix("+dirty")
    parent = tracker.start_run(
        f"train-{run_id}", params=settings.model_dump(mode="json"), tags=tags
    )
    tracker.log_dict(parent, dict(checks), "data_checks.json")
    return parent


@task(name="log_model_run", task_run_name="log_{result.model}", cache_policy=NO_CACHE)
def log_model_run(
    tracker: Tracker, parent: str, result: ModelResult, started_ms: int | None = None
) -> tuple[str, ModelRecord]:
    """A nested run with every metric, gate, file and plot; the ONNX model registered and
    read back through pyfunc. It starts at ``started_ms`` (the training's start) when given,
    so its duration in MLflow is the model's, not its logging's."""
    child = tracker.start_run(
        result.model,
        params=result.params,
        parent_id=parent,
        tags={"edgeflow.model": result.model},
        start_time=started_ms,
    )
    tracker.log_metrics(child, result.metrics)
    tracker.log_metrics(child, {f"gate/{g.name}": g.value for g in result.publish_gates})
    shipped = result.shipped_export.path
    extra = [shipped] if shipped != result.onnx_path else []
    for path in [result.onnx_path, *extra, *result.artifacts.values()]:
        tracker.log_artifact(child, path, "files")
    if result.champion is not None:
        decision = result.champion
        tags = {"edgeflow.champion": decision.champion.label, "edgeflow.decision": decision.reason}
        if decision.challenger is not None:
            tags["edgeflow.challenger"] = f"{decision.challenger.name} ({decision.challenger.kind})"
        tracker.set_tags(child, tags)
    return child, tracker.log_model(child, result)


@task(name="log_run_summary", cache_policy=NO_CACHE)
def log_run_summary(tracker: Tracker, parent: str, outcomes: Mapping[str, Any]) -> None:
    """Summary metrics on the parent run: per model whether it published, and every gate."""
    metrics: dict[str, float] = {}
    for name, outcome in outcomes.items():
        metrics[f"{name}/published"] = float(outcome.status == "published")
        for gate in outcome.gates:
            metrics[f"{name}/gate/{gate.name}"] = float(gate.value)
            metrics[f"{name}/gate/{gate.name}/passed"] = float(gate.passed)
    tracker.log_metrics(parent, metrics)
