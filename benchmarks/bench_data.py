"""Data-layer throughput: read + check CSV/Parquet, append to the bar store, read it back.

Run: ``.venv/bin/python benchmarks/bench_data.py [--bars 100000] [--repeats 2]``

Measures, on ``--bars`` hourly bars per symbol for 2 symbols (synthetic, written once as CSV
with ISO 8601 UTC timestamps and as Parquet):

* ``read_files`` + ``check_bars`` on the CSV and on the Parquet file (rows/s, best of repeats);
* ``check_bars`` alone when 1 % of rows are bad (the quarantine path);
* ``append_bars`` of everything into an empty store, a no-op re-append (idempotency cost),
  an incremental append of 24 new bars per symbol, and ``read_bars`` of the whole store.

Writes ``benchmarks/results/data.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "data.md"


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000, help="bars per symbol")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from configs.data import ChecksConfig
    from configs.settings import load_config
    from pipelines.data.checks import check_bars
    from pipelines.data.sources import read_files
    from pipelines.data.store import append_bars, read_bars
    from pipelines.data.synthetic import generate_bars

    n_sym = 2
    cfg = load_config().data.synthetic.model_copy(
        update={"n_bars": args.bars + 24, "symbols": ["SYN1", "SYN2"]}
    )
    full = generate_bars(cfg, 7).drop(columns="regime")
    bars = full.groupby("symbol").head(args.bars).reset_index(drop=True)
    rows = len(bars)
    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        text = bars.assign(ts=bars["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        text.to_csv(work / "bars.csv", index=False)
        bars.to_parquet(work / "bars.parquet", index=False)
        checks = ChecksConfig()
        lenient = ChecksConfig(max_quarantine_fraction=0.05)

        def run(path: Path, c: ChecksConfig = checks) -> Any:
            return check_bars(read_files(path), c, interval="1h", quarantine_dir=work / "q")

        t_csv, out = _best(lambda: run(work / "bars.csv"), args.repeats)
        assert out.report.rows_out == rows
        t_pq, _ = _best(lambda: run(work / "bars.parquet"), args.repeats)

        rng = np.random.default_rng(0)
        dirty = text.copy()
        bad = rng.choice(rows, size=rows // 100, replace=False)
        dirty.loc[bad, "close"] = -1.0
        dirty.to_csv(work / "dirty.csv", index=False)
        t_dirty, out = _best(lambda: run(work / "dirty.csv", lenient), args.repeats)
        assert out.report.quarantined_total == len(bad)

        store = work / "store"
        t_append, _ = _best(lambda: append_bars(store, bars), 1)
        t_noop, res = _best(lambda: append_bars(store, bars), args.repeats)
        assert res.rows_added == 0
        t_incr, res = _best(lambda: append_bars(store, full), 1)
        assert res.rows_added == 24 * n_sym
        t_read, back = _best(lambda: read_bars(store), args.repeats)
        assert len(back) == len(full)
        csv_mb = (work / "bars.csv").stat().st_size / 1e6
        pq_mb = (work / "bars.parquet").stat().st_size / 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def rate(t: float, n: int = rows) -> str:
        return f"{n / t / 1e6:.2f} M rows/s"

    table = [
        ("read + check CSV", t_csv, rate(t_csv), f"{csv_mb:.1f} MB file"),
        ("read + check Parquet", t_pq, rate(t_pq), f"{pq_mb:.1f} MB file"),
        ("read + check CSV, 1 % bad rows", t_dirty, rate(t_dirty), f"{len(bad)} quarantined"),
        ("append to empty store", t_append, rate(t_append), "2 part files"),
        ("re-append same bars (no-op)", t_noop, rate(t_noop), "0 rows added"),
        ("incremental append, 24 new bars/symbol", t_incr, "-", "48 rows added"),
        ("read_bars whole store", t_read, rate(t_read, len(full)), f"{len(full)} rows"),
    ]
    today = dt.date.today().isoformat()
    lines = [
        "## Data: sources, checks, bar store",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_data.py --bars {args.bars} "
        f"--repeats {args.repeats}`  ",
        f"Machine: 2-core x86_64 CPU, no GPU ({platform.processor() or platform.machine()}), "
        f"Python {sys.version.split()[0]}, pandas {pd.__version__}; date {today}; "
        f"load average at the end {os.getloadavg()[0]:.1f} (cores shared with other jobs).  ",
        f"Input: {n_sym} symbols x {args.bars:,} hourly bars = {rows:,} rows; "
        f"best of {args.repeats} (appends to an empty store: 1 run).",
        "",
        "| step | seconds | throughput | note |",
        "|---|---:|---:|---|",
        *(f"| {name} | {t:.3f} | {r} | {note} |" for name, t, r, note in table),
        "",
    ]
    text_out = "\n".join(lines)
    print(text_out)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text_out)


if __name__ == "__main__":
    main()
