"""Wall time of the four trainings on the demo at 1, 2 and 4 threads (the flow's DAG: regime,
bandit and meta-labeler at once, the sizer after the bandit), as plain calls through the
registry. Picks ``training.concurrency``. Writes benchmarks/results/concurrency.md.

    .venv/bin/python benchmarks/bench_concurrency.py [--config configs/demo.yaml] [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from pipelines.data.synthetic import generate_bars
    from pipelines.features import featurize
    from pipelines.models.specs import SPECS, train_one
    from pipelines.strategies import compute_signals

    s = load_config(args.config, environ={})
    bars = generate_bars(s.data.synthetic, s.seed)
    feats = featurize(bars).frame
    signals = compute_signals(bars)

    def run(workers: int) -> float:
        out = tempfile.mkdtemp(prefix="edgeflow-bench-conc-")
        futures: dict[str, Any] = {}

        def one(name: str) -> Any:
            spec = SPECS[name]
            # like the flow's task runner: a model waits for its upstream results in its thread
            up = {u: futures[u].result() for u in spec.after if u in futures}
            return train_one(
                spec,
                bars,
                feats,
                spec.config(s),
                s.seed,
                Path(out) / name,
                signals,
                s.training.parity_tolerance,
                up,
            )

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            for name in SPECS:  # registry order, as the flow submits them
                futures[name] = pool.submit(one, name)
            for f in futures.values():
                f.result()
        return time.perf_counter() - t0

    rows = []
    for _ in range(args.repeat):
        for workers in (1, 2, 4):
            load = os.getloadavg()[0]
            rows.append((workers, run(workers), load))
            print(f"{workers} thread(s): {rows[-1][1]:.1f} s (load {load:.1f})")
    lines = [
        "## Concurrent trainings: wall time by thread count",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_concurrency.py --config {args.config}`  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU; "
        f"{dt.datetime.now(dt.UTC).date().isoformat()}",
        "",
        "The four trainings of the demo through the registry, submitted in registry order as the "
        "flow submits them (the sizer waits for the bandit in its thread); results are identical "
        "at every thread count (tests/models/).",
        "",
        "| threads | seconds | load average at start |",
        "|---:|---:|---:|",
        *[f"| {w} | {t:.1f} | {ld:.1f} |" for w, t, ld in rows],
        "",
    ]
    (ROOT / "benchmarks" / "results" / "concurrency.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
