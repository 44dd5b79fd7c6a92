"""Incremental ingestion of simulated bot logs: folder and S3, watermarks, quarantine, join."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import boto3
import orjson
import pytest
from events_simulation import (
    BAD_LINE_KINDS,
    SimulatedLog,
    corrupt_logs,
    encode_member,
    put_files,
    write_files,
)

from configs.events import EventsConfig
from pipelines.events.storage import (
    FolderSource,
    LocalStorage,
    S3Source,
    S3Storage,
    open_source,
    open_state,
)
from pipelines.events.store import (
    STATE_KEY,
    ingest_events,
    joined_count,
    load_state,
    read_dataset,
    read_pending,
)


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_corrupted_logs_ingest_exactly_twice_safe(sim_log: SimulatedLog, tmp_path: Path) -> None:
    bad = corrupt_logs(sim_log, n_bad=23, n_duplicates=9, n_tail=4, seed=5)
    src = tmp_path / "logs"
    half = bad.tail_member[: len(bad.tail_member) // 2]
    write_files(bad.files, src, {bad.tail_file: half})
    before = _digest(src)
    state = LocalStorage(tmp_path / "events")
    n = len(sim_log.decisions)

    first = ingest_events(FolderSource(src), state)
    assert first.decisions_added == n
    assert first.outcomes_added == n - 4  # the 4 outcomes in the truncated member wait
    assert first.joined_added == n - 4 and first.pending_decisions == 4
    assert first.duplicates == 9
    assert first.incomplete_tails == 1
    assert first.quarantined == 23
    assert first.quarantined_by_field == dict(bad.expected_quarantine)
    assert set(bad.expected_quarantine) == {f for _, f in BAD_LINE_KINDS}
    q = read_dataset(state, "quarantine")
    assert len(q) == 23 and (q["line"] > 0).all() and q["file"].str.endswith(".jsonl.gz").all()
    assert _digest(src) == before  # input never modified

    again = ingest_events(FolderSource(src), state)
    assert (again.decisions_added, again.outcomes_added, again.joined_added) == (0, 0, 0)
    assert again.quarantined == 0 and again.duplicates == 0 and again.pending_decisions == 4
    assert len(read_dataset(state, "joined")) == n - 4

    # the bot finishes the member: only its bytes are read, its outcomes join
    write_files({bad.tail_file: bad.files[bad.tail_file]}, src, {bad.tail_file: bad.tail_member})
    done = ingest_events(FolderSource(src), state)
    assert done.bytes_read == len(bad.tail_member) and done.lines_read == 4
    assert done.outcomes_added == 4 and done.joined_added == 4 and done.pending_decisions == 0
    joined = read_dataset(state, "joined")
    assert len(joined) == n and joined["event_id"].is_unique
    assert set(joined.loc[joined["outcome_id"].isin(bad.tail_event_ids), "outcome_file"]) == {
        bad.tail_file
    }
    truth = sim_log.truth.set_index("event_id")
    assert (joined.set_index("event_id")["reward"] == truth.loc[joined["event_id"], "reward"]).all()
    assert joined_count(state) == n
    counts = load_state(state)["counts"]
    assert counts == {
        "decisions": n,
        "outcomes": n,
        "joined": n,
        "quarantined": 23,
        "duplicates": 9,
    }


def test_appended_member_is_read_from_the_offset(sim_log: SimulatedLog, tmp_path: Path) -> None:
    src = tmp_path / "logs"
    name = "bot-9/bot-9_20240101T0000.jsonl.gz"
    first = encode_member(sim_log.decisions[:30])
    write_files({name: [first]}, src)
    state = LocalStorage(tmp_path / "events")
    r1 = ingest_events(FolderSource(src), state)
    assert r1.decisions_added == 30 and r1.bytes_read == len(first)
    second = encode_member(sim_log.decisions[30:45] + sim_log.outcomes[:10])
    write_files({name: [first, second]}, src)
    r2 = ingest_events(FolderSource(src), state)
    assert r2.bytes_read == len(second) and r2.lines_read == 25
    assert (r2.decisions_added, r2.outcomes_added, r2.joined_added) == (15, 10, 10)
    wm = load_state(state)["files"][name]
    assert wm == {"offset": len(first) + len(second), "lines": 55, "size": len(first) + len(second)}
    decisions = read_dataset(state, "decisions")
    assert decisions["line"].tolist() == list(range(1, 46))


def test_late_and_early_outcomes_join_on_a_later_ingest(
    sim_log: SimulatedLog, tmp_path: Path
) -> None:
    src = tmp_path / "logs"
    state = LocalStorage(tmp_path / "events")
    dec, out = sim_log.decisions[:40], sim_log.outcomes[:40]
    # outcomes 0-19 arrive before their decisions; outcomes 20-39 after them
    write_files({"b/a.jsonl.gz": [encode_member(out[:20])]}, src)
    r1 = ingest_events(FolderSource(src), state)
    assert r1.pending_outcomes == 20 and r1.joined_added == 0
    write_files({"b/b.jsonl.gz": [encode_member(dec)]}, src)
    r2 = ingest_events(FolderSource(src), state)
    assert r2.joined_added == 20 and r2.pending_decisions == 20 and r2.pending_outcomes == 0
    write_files({"b/c.jsonl.gz": [encode_member(out[20:] + out[:3])]}, src)
    r3 = ingest_events(FolderSource(src), state)
    assert r3.joined_added == 20 and r3.duplicates == 3 and r3.pending_decisions == 0
    pend_d, pend_o = read_pending(state)
    assert pend_d.empty and pend_o.empty
    assert not [k for k in state.list("pending/")]


def test_a_second_outcome_and_an_outcome_before_its_decision_are_quarantined(
    sim_log: SimulatedLog, tmp_path: Path
) -> None:
    src = tmp_path / "logs"
    dec, out = sim_log.decisions[0], sim_log.outcomes[0]
    other = dict(out, event_id="second-outcome")
    early = dict(sim_log.outcomes[1], closed_at="2000-01-01T00:00:00Z")
    write_files(
        {"x.jsonl.gz": [encode_member([dec, out, other, sim_log.decisions[1], early])]}, src
    )
    state = LocalStorage(tmp_path / "events")
    res = ingest_events(FolderSource(src), state)
    assert res.joined_added == 1 and res.quarantined == 2 and res.pending_decisions == 1
    q = read_dataset(state, "quarantine").set_index("event_id")
    assert (
        q.loc["second-outcome", "line"] == 3 and q.loc["second-outcome", "field"] == "decision_id"
    )
    assert "before" in q.loc[early["event_id"], "reason"]


def test_plain_jsonl_corrupt_gzip_and_shrunk_files(sim_log: SimulatedLog, tmp_path: Path) -> None:
    src = tmp_path / "logs"
    src.mkdir()
    lines = b"".join(orjson.dumps(d) + b"\n" for d in sim_log.decisions[:5])
    (src / "a.jsonl").write_bytes(lines + orjson.dumps(sim_log.decisions[5])[:40])  # no newline
    (src / "b.jsonl.gz").write_bytes(encode_member(sim_log.decisions[6:8]) + b"not gzip at all")
    state = LocalStorage(tmp_path / "events")
    r1 = ingest_events(FolderSource(src), state)
    assert r1.decisions_added == 7 and r1.incomplete_tails == 1
    assert r1.quarantined_by_field == {"<file>": 1}
    (src / "a.jsonl").write_bytes(lines[:10])
    r2 = ingest_events(FolderSource(src), state)
    assert r2.quarantined_by_field == {"<file>": 1} and r2.decisions_added == 0
    assert ingest_events(FolderSource(src), state).quarantined == 0


def test_uncommitted_parts_of_a_crashed_ingest_are_removed(
    sim_log: SimulatedLog, tmp_path: Path
) -> None:
    src = tmp_path / "logs"
    write_files({"a.jsonl.gz": [encode_member(sim_log.decisions[:5])]}, src)
    state = LocalStorage(tmp_path / "events")
    ingest_events(FolderSource(src), state)
    state.write("joined/part-000099.parquet", b"half-written")
    write_files({"b.jsonl.gz": [encode_member(sim_log.outcomes[:5])]}, src)
    res = ingest_events(FolderSource(src), state)
    assert res.joined_added == 5
    assert "joined/part-000099.parquet" not in state.list("joined/")
    assert len(read_dataset(state, "joined")) == 5


def test_s3_logs_and_s3_state(sim_log: SimulatedLog, s3_endpoint: str, s3_bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bad = corrupt_logs(sim_log, n_bad=10, n_duplicates=4, n_tail=3, seed=2)
    half = bad.tail_member[: len(bad.tail_member) // 2]
    put_files(client, s3_bucket, "bots/raw", bad.files, {bad.tail_file: half})
    cfg = EventsConfig(
        source="s3",
        s3_uri=f"s3://{s3_bucket}/bots/raw",
        s3_endpoint_url=s3_endpoint,
        state_uri=f"s3://{s3_bucket}/state/events",
    )
    source = open_source(cfg, client)
    state = open_state(cfg, Path("unused"), client)
    assert isinstance(source, S3Source) and isinstance(state, S3Storage)
    n = len(sim_log.decisions)
    r1 = ingest_events(source, state)
    assert r1.joined_added == n - 3 and r1.quarantined == 10 and r1.duplicates == 4
    assert r1.quarantined_by_field == dict(bad.expected_quarantine)
    r2 = ingest_events(source, state)
    assert (r2.decisions_added, r2.outcomes_added, r2.joined_added, r2.quarantined) == (0, 0, 0, 0)
    put_files(
        client,
        s3_bucket,
        "bots/raw",
        {bad.tail_file: bad.files[bad.tail_file]},
        {bad.tail_file: bad.tail_member},
    )
    # a fresh process (no local state at all) continues from the S3 state
    r3 = ingest_events(S3Source(client, cfg.s3_uri or ""), S3Storage(client, cfg.state_uri or ""))
    assert r3.bytes_read == len(bad.tail_member) and r3.joined_added == 3
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="state/")["Contents"]]
    assert f"state/events/{STATE_KEY}" in keys
    assert len(read_dataset(state, "joined")) == n


def test_config_requires_a_location_for_its_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"events\.path"):
        EventsConfig(source="folder")
    with pytest.raises(ValueError, match="s3_uri"):
        EventsConfig(source="s3", s3_uri="bucket/prefix")
    assert open_source(EventsConfig()) is None
    local = open_state(EventsConfig(), tmp_path / "data" / "events")
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "data" / "events"


def test_gzip_member_helper_round_trips(sim_log: SimulatedLog) -> None:
    member = encode_member(sim_log.outcomes[:3])
    lines = gzip.decompress(member).splitlines()
    assert [orjson.loads(x) for x in lines] == sim_log.outcomes[:3]
    assert gzip.decompress(member + member).count(b"\n") == 6  # members concatenate
