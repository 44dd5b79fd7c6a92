"""The event log: one file per bot per interval, one complete gzip member per event."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest

from pipelines.bot.events import EventLog, event_id, read_events


def test_files_per_interval_and_members_per_event(tmp_path: Path) -> None:
    with EventLog(tmp_path, "bot-1") as log:
        a = log.write({"ts": "2024-03-01T10:59:59+00:00", "n": 1})
        b = log.write({"ts": "2024-03-01T12:30:00+01:00", "n": 2})  # 11:30 UTC
        c = log.write({"closed_at": "2024-03-01T11:00:00Z", "n": 3})
        d = log.write({"ts": "2024-03-01T11:10:00"}, sec=1709291400)  # sec wins: 11:10 UTC
    assert a == tmp_path / "bot-1" / "20240301T1000.jsonl.gz"
    assert b == c == d == tmp_path / "bot-1" / "20240301T1100.jsonl.gz"
    raw = b.read_bytes()
    members = 0
    while raw:  # each event is a complete gzip member: a reader can stop after any of them
        z = zlib.decompressobj(31)
        line = z.decompress(raw)
        assert json.loads(line).get("n") in (2, 3, None)
        raw = z.unused_data
        members += 1
    assert members == 3
    with gzip.open(b, "rt") as fh:
        assert [json.loads(x).get("n") for x in fh] == [2, 3, None]
    assert [e.get("n") for e in read_events(tmp_path)] == [1, 2, 3, None]


def test_bad_ids_and_intervals_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bot_id"):
        EventLog(tmp_path, "bad bot")
    with pytest.raises(ValueError, match="whole number of seconds"):
        EventLog(tmp_path, "b", interval="1500ms")
    assert event_id("bot 1", "BTC/USD", 86400) == "bot_1:BTC_USD:86400"
