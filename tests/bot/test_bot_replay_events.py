"""The replay's daily event files hold what hourly ones would, and the event store ingests
the same rows from them: the replay writes them to cut the training's ingest to one file per
bar day, which must not change what the trainings learn from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flows.replay import EVENT_INTERVAL
from pipelines.bot import DecisionEngine, EngineConfig, EventLog
from pipelines.bot.events import read_events
from pipelines.events.storage import FolderSource, LocalStorage
from pipelines.events.store import DATASETS, ingest_events, read_dataset, read_pending
from pipelines.features.names import WARMUP_BARS


def _bars(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ts = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    frames = []
    for k, sym in enumerate(("AAA", "BBB")):
        close = 100.0 * (1 + k) * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
        spread = np.abs(rng.normal(0, 0.002, n)) * close
        frames.append(
            pd.DataFrame(
                {
                    "ts": ts,
                    "symbol": sym,
                    "high": close + spread,
                    "low": close - spread,
                    "close": close,
                    "volume": rng.uniform(100, 1000, n),
                }
            )
        )
    return pd.concat(frames).sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def _trade(bars: pd.DataFrame, log: EventLog, steps: list[int]) -> None:
    """Feed the bars in steps; after each step write the outcomes of the decisions closed by
    then (6 bars later), as the replay does: into the files of their close times."""
    engine = DecisionEngine({}, EngineConfig(bot_id="replay", seed=5), log)
    sig = np.random.default_rng(9).choice([-1, 0, 1], size=(len(bars), 12))
    pending: list[tuple[str, int]] = []
    lo = 0
    for hi in steps:
        for i in range(lo, hi):
            b = bars.iloc[i]
            d = engine.on_bar(b["symbol"], b["ts"], b["high"], b["low"], b["close"], 1.0, sig[i])
            if d is not None:
                pending.append((d.event_id, i))
        still = []
        for eid, row in pending:
            close = row + 2 * 6  # two symbols per stamp
            if close >= hi:
                still.append((eid, row))
                continue
            engine.record_outcome(
                eid, bars["ts"].iat[close], 0.001 * (row % 7 - 3), 0.5, 1e-4, 6, "time_exit"
            )
        pending = still
        lo = hi
    engine.close()


def _content(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in frame.columns if c.endswith(("file", "line"))])


def test_daily_files_ingest_the_same_events_as_hourly(tmp_path: Path) -> None:
    bars = _bars(WARMUP_BARS + 150)
    steps = [2 * (WARMUP_BARS + 50), 2 * (WARMUP_BARS + 100), len(bars)]
    stores = {}
    for interval in ("1h", EVENT_INTERVAL):
        folder = tmp_path / f"logs-{interval}"
        _trade(bars, EventLog(folder, "replay", interval), steps)
        stores[interval] = (folder, LocalStorage(tmp_path / f"store-{interval}"))
    (hourly, h_store), (daily, d_store) = stores["1h"], stores[EVENT_INTERVAL]
    assert len(list(daily.rglob("*.jsonl.gz"))) * 20 < len(list(hourly.rglob("*.jsonl.gz")))
    assert read_events(hourly) and sorted(map(str, read_events(hourly))) == sorted(
        map(str, read_events(daily))
    )
    results = [ingest_events(FolderSource(f), s).to_dict() for f, s in (stores.values())]
    counts = [
        {k: v for k, v in r.items() if k not in ("files_read", "bytes_read")} for r in results
    ]
    assert counts[0] == counts[1] and counts[0]["joined_added"] > 0
    for name in DATASETS:
        # where each row was read from (file, line) is provenance, not what training reads
        a, b = (_content(read_dataset(s, name)) for s in (h_store, d_store))
        key = [c for c in ("event_id", "decision_id") if c in a.columns][:1]
        if key:  # rows come in file order: compare them by id
            a = a.sort_values(key, kind="stable").reset_index(drop=True)
            b = b.sort_values(key, kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    for a, b in zip(read_pending(h_store), read_pending(d_store), strict=True):
        assert len(a) == len(b)
