"""Latency of one decision of the bot's decision engine, all models, one core.

Models are published to a file store and served through ``ModelClient`` exactly as a bot
would: the regime is a real LightGBM classifier (the config's 150 rounds x 15 leaves, fitted
on synthetic bars' true regimes) exported with the pipeline's own converter; the bandit
(43 -> 128 -> 64 -> 12, ReLU), sizer (44 -> 64 -> 64 -> 1, tanh, mapped to [0.1, 2.0]) and a
meta-labeler (55 -> 32 -> 1, sigmoid) are dense graphs of the real models' sizes with random
weights (latency depends on the shapes, not the values). Run:
    .venv/bin/python benchmarks/bench_engine.py
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from configs.settings import load_config
from pipelines.bot import DecisionEngine, EngineConfig, EventLog, OnlineBocd
from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.features.stream import SymbolFeatureState
from pipelines.models.regime.candidates import make_candidate
from pipelines.models.regime.export import export_onnx
from pipelines.registry import FileStore
from pipelines.strategies import compute_signals

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "engine.md"
N_BARS = 3000  # per symbol; the first 200 are the feature warm-up
SYMBOLS = ["SYN1", "SYN2"]


def _regime_onnx(bars: pd.DataFrame, path: Path) -> bytes:
    settings = load_config()
    fs = featurize(bars).frame
    y = bars.set_index(["symbol", "ts"]).loc[list(zip(fs["symbol"], fs["ts"], strict=True))]
    codes = y[TRUE_REGIME_COLUMN].to_numpy(np.int64)  # the generator codes REGIMES order
    model = make_candidate("lightgbm", settings.regime, 0)
    model.fit(fs[list(FEATURE_NAMES)].to_numpy(np.float32), codes)
    export_onnx(model, path, FEATURE_NAMES, REGIMES)
    return path.read_bytes()


def _pct(values: list[float]) -> tuple[float, float, float]:
    arr = np.asarray(values) * 1e6
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), float(arr.max())


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "bot"))  # the tests' ONNX builders and key
    from bot_support import keyring, mlp_onnx, publish

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    load_before = os.getloadavg()
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": N_BARS, "symbols": SYMBOLS})
    bars = generate_bars(cfg, 7).sort_values(["ts", "symbol"]).reset_index(drop=True)
    signals = compute_signals(bars).to_numpy()
    rows: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = FileStore(root / "store")
        publish(store, "regime", _regime_onnx(bars, root / "regime.onnx"))
        publish(store, "bandit", mlp_onnx("features", "arm_values", (43, 128, 64, 12)))
        publish(
            store,
            "sizer",
            mlp_onnx("observation", "multiplier", (44, 64, 64, 1), activation="Tanh", head="sizer"),
        )
        publish(store, "metalabel", mlp_onnx("features", "p_win", (55, 32, 1), head="sigmoid"))
        sizes = {
            m: (root / "store" / m / "v000001" / "model.onnx").stat().st_size
            for m in ("regime", "bandit", "sizer", "metalabel")
        }
        for label, interval in (
            ("decision, event written (hourly files)", "1h"),
            ("decision, event written (daily files)", "1D"),
            ("decision, no event log", None),
        ):
            events = EventLog(root / f"events-{interval}", "bench", interval) if interval else None
            engine = DecisionEngine.from_store(
                store, keyring(), root / f"cache-{interval}", EngineConfig(), events
            )
            assert all(v == "v000001" for v in engine.versions.values()), engine.versions
            times, cpu = [], []
            for i, b in enumerate(bars.itertuples(index=False)):
                c0, t0 = time.thread_time(), time.perf_counter()
                d = engine.on_bar(b.symbol, b.ts, b.high, b.low, b.close, b.volume, signals[i])
                dt_s, dc_s = time.perf_counter() - t0, time.thread_time() - c0
                if d is not None:
                    assert not d.fallbacks, d.fallbacks
                    times.append(dt_s)
                    cpu.append(dc_s)
            engine.close()
            rows[f"{label}: wall"] = _pct(times)
            rows[f"{label}: CPU time of the thread"] = _pct(cpu)
            n_decisions = len(times)
        # components, same bars
        feats, bocd = [], []
        state, det = SymbolFeatureState("SYN1"), OnlineBocd(1 / 200, 300)
        one = bars[bars["symbol"] == "SYN1"]
        sec = pd.DatetimeIndex(one["ts"]).as_unit("s").asi8
        last = np.nan
        for s, h, lo, c, v in zip(
            sec, *(one[k].to_numpy() for k in ("high", "low", "close", "volume")), strict=True
        ):
            t0 = time.perf_counter()
            state.update(int(s), h, lo, c, v)
            t1 = time.perf_counter()
            lc = float(np.log(c))
            det.update(lc - last)
            t2 = time.perf_counter()
            last = lc
            feats.append(t1 - t0)
            bocd.append(t2 - t1)
        rows["features update (43, one bar)"] = _pct(feats[200:])
        rows["online BOCD update (R = 300)"] = _pct(bocd[200:])
        record = d.as_event("bench")
        same, new = [], []
        with EventLog(root / "events-parts", "bench") as log:
            hours = pd.date_range("2024-01-01", periods=400, freq="h", tz="UTC")
            for hour in hours:
                record["ts"] = hour.isoformat()
                t0 = time.perf_counter()
                log.write(record)  # the interval's first event: creates its file
                t1 = time.perf_counter()
                log.write(record)  # appends to the open file
                new.append(t1 - t0)
                same.append(time.perf_counter() - t1)
        rows["event append to the open interval file"] = _pct(same)
        rows["event that opens a new interval file"] = _pct(new)
        x = np.zeros((1, 43), np.float32)
        for role, feed in (
            ("regime", x),
            ("bandit", x),
            ("metalabel", np.zeros((1, 55), np.float32)),
            ("sizer", np.zeros((1, 44), np.float32)),
        ):
            client = engine.clients[role]
            assert client is not None
            ts = []
            for _ in range(2000):
                t0 = time.perf_counter()
                client.predict(feed)
                ts.append(time.perf_counter() - t0)
            rows[f"`{role}` predict ({sizes[role] / 1024:.0f} KiB ONNX)"] = _pct(ts)

    lines = [
        "## Decision engine: latency per decision",
        "",
        "Command: `.venv/bin/python benchmarks/bench_engine.py`  ",
        f"Machine: 2-core x86_64 CPU, no GPU ({platform.python_implementation()} "
        f"{platform.python_version()}, shared with other jobs), process pinned to one core, "
        "onnxruntime 1 intra-op thread  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        f"{len(SYMBOLS)} symbols x {N_BARS} synthetic hourly bars fed bar by bar to "
        "`DecisionEngine.on_bar`; timed are the "
        f"{n_decisions} decisions after each symbol's 200-bar warm-up. A decision = the 43 "
        "features updated incrementally, online BOCD, regime (real LightGBM export), bandit "
        "(epsilon-greedy draw), meta-labeler and sizer through `ModelClient.predict`, the "
        "thresholds, the `Decision`; with the event log it also appends the gzip JSON line. "
        "Components are timed separately on the same bars.",
        "",
        "| step | p50 us | p99 us | max us |",
        "|---|---|---|---|",
    ]
    for label, (p50, p99, mx) in rows.items():
        lines.append(f"| {label} | {p50:.0f} | {p99:.0f} | {mx:.0f} |")
    p99 = rows["decision, event written (hourly files): wall"][1]
    p99_cpu = rows["decision, event written (hourly files): CPU time of the thread"][1]
    lines += [
        "",
        f"Goal p99 <= 1000 us per decision with all models, event written: wall p99 "
        f"{p99:.0f} us ({'met' if p99 <= 1000 else 'not met'}), CPU-time p99 {p99_cpu:.0f} us "
        f"({'met' if p99_cpu <= 1000 else 'not met'}). Wall time includes the time the shared "
        "machine's scheduler gives the core to other jobs; the thread's CPU time "
        "(`time.thread_time`) excludes it, but not the cache and memory contention of the "
        f"other jobs (1-minute load average {load_before[0]:.1f} before the run and "
        f"{os.getloadavg()[0]:.1f} after it, on 2 cores). The max is one-off noise (other "
        "jobs, GC, the first call of each path). With hourly files every second decision "
        "opens a new file (2 symbols, hourly bars); with daily files one in 48 does.",
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
