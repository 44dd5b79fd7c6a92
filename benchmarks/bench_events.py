"""Event ingestion throughput: a simulated bot's corrupted gzip logs into the event store.

Run: ``.venv/bin/python benchmarks/bench_events.py [--events 1000000] [--reference-sample 2000]``

The simulated bot (``pipelines.events.simulate``) trades 2 synthetic symbols, one decision
per hourly bar, and logs one decision and one outcome per trade (so ``--events`` / 2
decisions), one gzip file per 30 days, each file written as 4 members. Then 0.1 % bad lines
(10 kinds), 0.1 % duplicated lines and a half-written last member (100 outcomes) are added.
Measured:

* ``ingest_events`` of everything into an empty local store (read, validate, de-duplicate,
  join, write Parquet): events/s over all lines;
* the same call again (nothing new: the idempotent no-op);
* completing the half-written member (an incremental read from a byte offset);
* the per-record validators on a sample of decision records: the fast column-wise validator
  against ``jsonschema`` plus the semantic rules.

Writes ``benchmarks/results/events.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "events.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="decision + outcome lines")
    parser.add_argument("--reference-sample", type=int, default=2000)
    args = parser.parse_args()

    import pandas as pd

    from configs.data import SyntheticConfig
    from pipelines.data.synthetic import generate_bars
    from pipelines.events.contract import validate_decisions, validate_reference
    from pipelines.events.simulate import BotSpec, corrupt_logs, simulate_bot, write_files
    from pipelines.events.storage import FolderSource, LocalStorage
    from pipelines.events.store import ingest_events, read_dataset
    from pipelines.features.names import WARMUP_BARS

    per_symbol = args.events // 4 + WARMUP_BARS + 6
    t0 = time.perf_counter()
    bars = generate_bars(SyntheticConfig(n_bars=per_symbol), 7).drop(columns="regime")
    spec = BotSpec(file_interval="30D", members_per_file=4, compresslevel=1, seed=1)
    log = simulate_bot(bars, spec)
    n_dec = len(log.decisions)
    bad = corrupt_logs(
        log, n_bad=n_dec * 2 // 1000, n_duplicates=n_dec * 2 // 1000, n_tail=100, seed=3
    )
    t_gen = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    try:
        src = work / "logs"
        tail_file = bad.tail_file
        write_files(bad.files, src, {tail_file: bad.tail_member[: len(bad.tail_member) // 2]})
        log_mb = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) / 1e6
        n_files = len(bad.files)
        state = LocalStorage(work / "events")

        t0 = time.perf_counter()
        first = ingest_events(FolderSource(src), state)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        noop = ingest_events(FolderSource(src), state)
        t_noop = time.perf_counter() - t0
        write_files({tail_file: bad.files[tail_file]}, src, {tail_file: bad.tail_member})
        t0 = time.perf_counter()
        tail = ingest_events(FolderSource(src), state)
        t_tail = time.perf_counter() - t0
        joined = read_dataset(state, "joined")
        store_mb = sum(p.stat().st_size for p in (work / "events").rglob("*") if p.is_file()) / 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert noop.decisions_added == noop.outcomes_added == noop.joined_added == 0
    assert len(joined) == n_dec and tail.joined_added == 100
    assert first.quarantined_by_field == dict(bad.expected_quarantine)

    sample = log.decisions[: args.reference_sample]
    t0 = time.perf_counter()
    ref = [validate_reference(r) for r in sample]
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = validate_decisions(sample)
    t_fast = time.perf_counter() - t0
    assert all(r is None for r in ref) and len(fast.rows) == len(sample)
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6

    lines_total = first.lines_read
    table = [
        (
            "ingest everything (empty store)",
            t_first,
            f"{lines_total / t_first:,.0f} events/s",
            f"{lines_total:,} lines, {n_files} files, {log_mb:.0f} MB gzip; "
            f"{first.joined_added:,} joined, {first.quarantined} quarantined, "
            f"{first.duplicates} duplicates, {first.pending_decisions} pending",
        ),
        ("re-ingest, nothing new", t_noop, "-", f"{noop.lines_read} lines read, 0 rows added"),
        (
            "complete the half-written member",
            t_tail,
            "-",
            f"{tail.bytes_read:,} bytes from the offset, {tail.joined_added} joined",
        ),
        (
            f"fast validator, {len(sample)} decisions",
            t_fast,
            f"{len(sample) / t_fast:,.0f} records/s",
            "column-wise (numpy, pandas)",
        ),
        (
            f"jsonschema + semantic rules, {len(sample)} decisions",
            t_ref,
            f"{len(sample) / t_ref:,.0f} records/s",
            f"{t_ref / t_fast:.0f}x slower",
        ),
    ]
    quarantine = ", ".join(f"`{k}` {v}" for k, v in sorted(first.quarantined_by_field.items()))
    today = dt.date.today().isoformat()
    lines = [
        "## Events: bot log ingestion",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_events.py --events {args.events} "
        f"--reference-sample {args.reference_sample}`  ",
        f"Machine: 2-core x86_64 CPU, no GPU ({platform.processor() or platform.machine()}), "
        f"Python {sys.version.split()[0]}, pandas {pd.__version__}; date {today}; "
        f"load average at the end {os.getloadavg()[0]:.1f} (cores shared with other jobs); "
        f"peak RSS {rss_gb:.1f} GB.  ",
        f"Input: {n_dec:,} decisions + {n_dec:,} outcomes from the simulated bot (2 symbols, "
        f"hourly; gzip level 1, 30-day files of 4 members), plus {sum(bad.expected_quarantine.values())} "
        f"bad lines, {bad.n_duplicates} duplicated lines and a half-written last member; "
        f"generated in {t_gen:.0f} s (not counted). One run each.",
        "",
        "| step | seconds | throughput | note |",
        "|---|---:|---:|---|",
        *(f"| {name} | {t:.3f} | {r} | {note} |" for name, t, r, note in table),
        "",
        f"Quarantined by field on the corrupted logs (exactly the defects injected): {quarantine}. "
        f"Event store on disk: {store_mb:.0f} MB of Parquet.",
        "",
    ]
    text_out = "\n".join(lines)
    print(text_out)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text_out)


if __name__ == "__main__":
    main()
