"""Prefect tasks for the data half of the DAG: collect, check, store, load, featurize."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.states import Failed, State

import pipelines.features
from configs import Settings
from configs.data import DataConfig
from configs.events import EventsConfig
from pipelines.cloudstate import pull_state, push_state
from pipelines.data.checks import CheckedBars, check_bars
from pipelines.data.errors import DataError
from pipelines.data.exogenous import ExogenousData, load_exogenous
from pipelines.data.fingerprint import frame_hash, source_hash
from pipelines.data.provenance import claim_store, source_fingerprint
from pipelines.data.sources import RawFrame, load_source
from pipelines.data.store import AppendResult, append_bars, read_bars
from pipelines.events import ingest_events, read_dataset
from pipelines.events.storage import open_source, open_state
from pipelines.features import FeatureSet
from pipelines.features.extended import extend_features, feature_set_record
from pipelines.features.isolated import featurize_isolated

#: The name of a task run's final state when it refused the input: Failed (red in Prefect's
#: UI, counted as a failure), its message the one line, no traceback; returned rather than
#: raised so that nothing logs a traceback for bad input. Never retried.
REJECTED = "Rejected"


def rejected_state(message: str) -> State[Any]:
    """The state a task returns when it refuses its input: logged once as one ERROR line."""
    get_run_logger().error("rejected input: %s", message)
    return Failed(name=REJECTED, message=message)


def _not_rejected(task: Any, run: Any, state: State[Any]) -> bool:
    """Retry I/O failures, never a refusal: bad input is the same on every try."""
    return state.name != REJECTED


def _io_not_rejected(task: Any, run: Any, state: State[Any]) -> bool:
    """Retry only an I/O failure. (A task with retries also keeps Prefect from logging a
    returned refusal a second time, at ERROR with an empty traceback.)"""
    return state.name != REJECTED and _is_io_error(state)


@dataclass(frozen=True)
class CollectResult:
    """What the collect stage hands the training flow: the stored bars and their features,
    or the one line that refused the input (``rejected``)."""

    run_dir: Path
    bars: pd.DataFrame = field(default_factory=pd.DataFrame)
    data_hash: str = ""
    features: FeatureSet | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    append: dict[str, Any] = field(default_factory=dict)
    rejected: str | None = None
    events: dict[str, Any] = field(default_factory=dict)
    joined_events: pd.DataFrame | None = None
    #: The feature columns the models train on (:func:`feature_set_record`): version, id
    #: and each column's name and source; the published manifests carry it.
    feature_set: dict[str, Any] = field(default_factory=feature_set_record)

    @classmethod
    def refused(cls, run_dir: Path, message: str) -> CollectResult:
        return cls(run_dir=run_dir, rejected=message)


FEATURES_CODE_HASH = source_hash(Path(pipelines.features.__file__).parent.glob("*.py"))


def s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client; credentials and region come from the usual AWS chain."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


@task(
    name="collect_raw",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=_not_rejected,
    cache_policy=NO_CACHE,
)
def collect_raw(cfg: DataConfig, seed: int) -> list[RawFrame]:
    """Read the configured source as it is (I/O: retried; bad input ends the task
    :data:`REJECTED`, not retried)."""
    client = s3_client(cfg.s3_endpoint_url) if cfg.source == "s3" else None
    try:
        raws = load_source(cfg, seed, s3_client=client)
    except DataError as exc:
        return rejected_state(str(exc))  # type: ignore[return-value]
    get_run_logger().info("read %d table(s) from source %r", len(raws), cfg.source)
    return raws


@task(name="claim_bar_store", retries=1, retry_condition_fn=_io_not_rejected, cache_policy=NO_CACHE)
def claim_bar_store(cfg: DataConfig, seed: int, profile: str, root: Path, workdir: Path) -> None:
    """Refuse a source other than the one whose bars the store holds: the task ends
    :data:`REJECTED` with that one line (no traceback)."""
    try:
        claim_store(root, source_fingerprint(cfg, seed, profile), workdir=workdir)
    except DataError as exc:
        return rejected_state(str(exc))  # type: ignore[return-value]
    return None


@task(name="check_data", retries=1, retry_condition_fn=_io_not_rejected, cache_policy=NO_CACHE)
def check_data(raws: list[RawFrame], cfg: DataConfig, run_dir: Path) -> CheckedBars:
    """Validate; quarantine bad rows; a fatal problem ends the task :data:`REJECTED`, naming
    file, column and row."""
    try:
        checked = check_bars(
            raws,
            cfg.checks,
            interval=cfg.interval,
            now=datetime.now(UTC),
            quarantine_dir=run_dir / "quarantine",
        )
    except DataError as exc:
        return rejected_state(str(exc))  # type: ignore[return-value]
    report = checked.report
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "data_checks.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    log = get_run_logger()
    log.info(
        "checked %d rows: %d kept, %d quarantined %s, %d unsorted, %d gap(s)",
        report.rows_in,
        report.rows_out,
        report.quarantined_total,
        report.quarantined,
        report.unsorted,
        report.gap_count,
    )
    if report.quarantine_path:
        log.warning("quarantined rows written to %s", report.quarantine_path)
    return checked


@task(name="store_bars", retries=2, retry_delay_seconds=[1, 5], cache_policy=NO_CACHE)
def store_bars(checked: CheckedBars, root: Path) -> AppendResult:
    """Append bars newer than each symbol's watermark (idempotent, so safe to retry)."""
    result = append_bars(root, checked.bars)
    get_run_logger().info("stored %d new bar(s) %s", result.rows_added, result.added)
    return result


@task(name="load_bars", retries=2, retry_delay_seconds=[1, 5], cache_policy=NO_CACHE)
def load_bars(root: Path) -> tuple[pd.DataFrame, str]:
    """All stored bars and their content hash (the cache key and lineage of everything after)."""
    bars = read_bars(root)
    return bars, frame_hash(bars)


@task(
    name="featurize",
    # Keyed on the bars' content hash, not on the frame itself (hashing it again is wasted work).
    cache_policy=(INPUTS - "bars") + TASK_SOURCE,
    persist_result=True,
)
def featurize_bars(
    bars: pd.DataFrame, data_hash: str, code_hash: str = FEATURES_CODE_HASH
) -> FeatureSet:
    """The 43 features; cached across runs on (data hash, feature code hash).

    Computed in a child process (:mod:`pipelines.features.isolated`): numba stays out of the
    process that trains next.
    """
    features = featurize_isolated(bars)
    get_run_logger().info(
        "featurized %d rows x %d features (%d warm-up rows dropped)",
        len(features.frame),
        len(pipelines.features.FEATURE_NAMES),
        features.warmup_dropped,
    )
    return features


@task(name="load_exogenous", retries=2, retry_delay_seconds=[1, 5], cache_policy=NO_CACHE)
def load_exogenous_series(cfg: DataConfig, run_dir: Path) -> list[ExogenousData]:
    """Read and check every configured exogenous series afresh (they are not stored: the
    source fingerprint records them); quarantined rows go to ``<run>/quarantine``. A refused
    series ends the task :data:`REJECTED` with its one line (I/O retried, a refusal not)."""
    client = s3_client(cfg.s3_endpoint_url) if any(e.s3_uri for e in cfg.exogenous) else None
    try:
        series = load_exogenous(cfg, s3_client=client, quarantine_dir=run_dir / "quarantine")
    except DataError as exc:
        return rejected_state(str(exc))  # type: ignore[return-value]
    log = get_run_logger()
    for s in series:
        log.info(
            "exogenous series %r: %d value(s) from %s, lag %s",
            s.name,
            len(s.frame),
            s.origin,
            s.lag,
        )
    return series


@task(name="extend_features", cache_policy=NO_CACHE)
def extend_feature_set(
    features: FeatureSet, bars: pd.DataFrame, exogenous: list[ExogenousData], cfg: DataConfig
) -> FeatureSet:
    """The 43 plus the configured cross-asset and exogenous columns (docs/features.md),
    computed in this process (plain numpy and pandas, no numba); a non-finite value is a
    refusal naming the feature and row."""
    try:
        extended = extend_features(features, bars, exogenous, cfg.cross_asset)
    except ValueError as exc:
        return rejected_state(str(exc))  # type: ignore[return-value]
    get_run_logger().info(
        "extended features: %d column(s) after the 43",
        extended.frame.shape[1] - 2 - len(pipelines.features.FEATURE_NAMES),
    )
    return extended


@dataclass(frozen=True)
class EventsIngest:
    """One ingest of the bot's logs: the counts, and every joined decision committed so far."""

    summary: dict[str, Any]
    joined: pd.DataFrame | None


# Only I/O is retried: a bad line is quarantined by ingest_events, not raised, and a config
# error (a folder source that is not a folder) fails the same way on every try.
@task(
    name="ingest_bot_events",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=lambda task, run, state: _is_io_error(state),
    cache_policy=NO_CACHE,
)
def ingest_bot_events(cfg: EventsConfig, default_root: Path) -> EventsIngest:
    """Read what is new in the bot's decision/outcome logs into the event store and return
    the store's joined decisions (the bandit's logged feedback)."""
    needs_s3 = cfg.source == "s3" or (cfg.state_uri or "").startswith("s3://")
    client = s3_client(cfg.s3_endpoint_url) if needs_s3 else None
    source = open_source(cfg, client)
    if source is None:
        return EventsIngest({}, None)
    storage = open_state(cfg, default_root, client)
    result = ingest_events(source, storage)
    log = get_run_logger()
    log.info(
        "events: %d file(s) read, %d decision(s) and %d outcome(s) added, %d joined, "
        "%d duplicate(s), %d pending decision(s), %d pending outcome(s)",
        result.files_read,
        result.decisions_added,
        result.outcomes_added,
        result.joined_added,
        result.duplicates,
        result.pending_decisions,
        result.pending_outcomes,
    )
    if result.quarantined:
        log.warning(
            "events: %d line(s) quarantined %s (under %s/quarantine)",
            result.quarantined,
            result.quarantined_by_field,
            storage.describe(),
        )
    joined = read_dataset(storage, "joined")
    summary = {**result.to_dict(), "joined_total": len(joined), "state": storage.describe()}
    return EventsIngest(summary, joined if len(joined) else None)


def _is_io_error(state: Any) -> bool:
    """Whether a failed task run failed on I/O (worth retrying) rather than on its input or
    its configuration: connection and timeout errors, S3 transport errors, S3 5xx and
    throttling answers. A missing folder, a refused key or a missing bucket is not retried."""
    try:
        state.result()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return False
    except (OSError, ConnectionError, TimeoutError):
        return True
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            return status >= 500 or code in {"SlowDown", "Throttling", "RequestTimeout"}
        return isinstance(exc, BotoCoreError)
    return False


def _state_client(settings: Settings) -> Any:
    return s3_client(settings.registry.s3_endpoint_url)


@task(
    name="pull_cloud_state",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=lambda task, run, state: _is_io_error(state),
    cache_policy=NO_CACHE,
)
def pull_cloud_state(settings: Settings) -> dict[str, Any]:
    """Stateless runs: bring data/ and state/ from ``training.state_uri`` into the workdir
    (bars, events, watermarks, pending decisions, the last-training record); a no-op unset."""
    uri = settings.training.state_uri
    if uri is None:
        return {}
    result = pull_state(_state_client(settings), uri, settings.workdir)
    get_run_logger().info(
        "pulled state %s (generation %d): %d file(s), %d byte(s), %d unchanged",
        uri,
        result.generation,
        len(result.transferred),
        result.bytes,
        result.unchanged,
    )
    return result.to_dict()


@task(
    name="push_cloud_state",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=lambda task, run, state: _is_io_error(state),
    cache_policy=NO_CACHE,
)
def push_cloud_state(settings: Settings) -> dict[str, Any]:
    """Stateless runs: upload what changed under data/ and state/ to ``training.state_uri``
    so the next runner continues from here; a no-op unset."""
    uri = settings.training.state_uri
    if uri is None:
        return {}
    result = push_state(_state_client(settings), uri, settings.workdir)
    get_run_logger().info(
        "pushed state %s (generation %d): %d file(s), %d byte(s), %d deleted, %d unchanged",
        uri,
        result.generation,
        len(result.transferred),
        result.bytes,
        len(result.deleted),
        result.unchanged,
    )
    return result.to_dict()
