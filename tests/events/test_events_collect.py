"""The collect flow ingests the bot's logs incrementally beside the bars."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from events_simulation import SimulatedLog, corrupt_logs, write_files

from configs import Settings, load_config
from flows.collect import collect_stage, run_collect
from pipelines.events import LocalStorage, read_dataset
from pipelines.workdir import WorkdirLayout

TINY = Path(__file__).resolve().parents[1] / "e2e" / "tiny.yaml"


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _settings(workdir: Path, logs: Path | None) -> Settings:
    overrides: dict[str, object] = {"workdir": str(workdir), "data.synthetic.n_bars": 700}
    if logs is not None:
        overrides.update({"events.source": "folder", "events.path": str(logs)})
    return load_config(TINY, overrides=overrides, environ={})


def test_collect_ingests_the_bots_logs_incrementally(
    sim_log: SimulatedLog, tmp_path: Path, prefect_api: None
) -> None:
    bad = corrupt_logs(sim_log, n_bad=12, n_duplicates=5, n_tail=3, seed=9)
    logs = tmp_path / "logs"
    half = bad.tail_member[: len(bad.tail_member) // 2]
    write_files(bad.files, logs, {bad.tail_file: half})
    before = _digest(logs)
    settings = _settings(tmp_path / "work", logs)
    n = len(sim_log.decisions)

    first = collect_stage(settings, "run-1")
    assert first.rejected is None
    ev = first.events
    assert ev["decisions_added"] == n and ev["outcomes_added"] == n - 3
    assert ev["joined_added"] == n - 3 and ev["joined_total"] == n - 3
    assert ev["quarantined_by_field"] == dict(sorted(bad.expected_quarantine.items()))
    assert ev["duplicates"] == bad.n_duplicates
    assert (ev["pending_decisions"], ev["incomplete_tails"]) == (3, 1)
    assert first.joined_events is not None and len(first.joined_events) == n - 3
    assert set(first.joined_events["event_id"]) <= {d["event_id"] for d in sim_log.decisions}
    store = LocalStorage(WorkdirLayout(settings.workdir).events)  # <workdir>/data/events
    assert len(read_dataset(store, "joined")) == n - 3

    # nothing new: the second run reads nothing and adds nothing
    second = collect_stage(settings, "run-2")
    assert (second.events["bytes_read"], second.events["decisions_added"]) == (0, 0)
    assert second.events["joined_added"] == 0 and second.events["quarantined"] == 0
    assert second.joined_events is not None and len(second.joined_events) == n - 3
    assert _digest(logs) == before  # the source is only ever read

    # the bot finishes its half-written member: only that is read, and the last 3 join
    (logs / bad.tail_file).write_bytes(b"".join(bad.files[bad.tail_file]) + bad.tail_member)
    third = run_collect(settings)
    assert third["events"]["outcomes_added"] == 3 and third["events"]["joined_added"] == 3
    assert third["events"]["joined_total"] == n
    assert third["rows_added"] == 0  # the bars were collected once
    assert third["events"]["pending_decisions"] == 0


def test_collect_without_an_event_source_has_no_events(tmp_path: Path, prefect_api: None) -> None:
    result = collect_stage(_settings(tmp_path / "work", None), "run-1")
    assert result.events == {} and result.joined_events is None
    assert not WorkdirLayout(tmp_path / "work").events.exists()


class _FailedState:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self) -> None:
        raise self.exc


def _client_error(status: int, code: str) -> Exception:
    from botocore.exceptions import ClientError

    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (ConnectionResetError("reset"), True),
        (TimeoutError("slow"), True),
        (FileNotFoundError("events source /x: not a folder"), False),
        (PermissionError("denied"), False),
        (ValueError("events.source 's3' needs an S3 client"), False),
        (_client_error(503, "ServiceUnavailable"), True),
        (_client_error(503, "SlowDown"), True),
        (_client_error(404, "NoSuchBucket"), False),
        (_client_error(403, "AccessDenied"), False),
    ],
)
def test_ingest_retries_io_errors_only(exc: BaseException, retried: bool) -> None:
    from tasks.data import _is_io_error

    assert _is_io_error(_FailedState(exc)) is retried


def test_ingest_retries_s3_transport_errors() -> None:
    from botocore.exceptions import EndpointConnectionError

    from tasks.data import _is_io_error

    exc = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert _is_io_error(_FailedState(exc)) is True
