"""The demo flow's wall time by stage, and what Prefect orchestration costs on top.

Runs the demo profile as plain function calls (sequential, then the trainings on threads), as
the same stages with the flow's bookkeeping but no Prefect, and as the real Prefect training
flow (local API, default thread runner). Writes benchmarks/results/flow.md.

    .venv/bin/python benchmarks/bench_flow.py [--config configs/demo.yaml]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = Path(tempfile.mkdtemp(prefix="edgeflow-bench-flow-"))
from flows.cli.runtime import prepare_environment, seed_mlflow_database  # noqa: E402

prepare_environment(WORK / "flow", flows=True)

from configs import load_config  # noqa: E402
from pipelines.data.checks import check_bars  # noqa: E402
from pipelines.data.sources import load_source  # noqa: E402
from pipelines.data.store import append_bars, read_bars  # noqa: E402
from pipelines.data.synthetic import generate_bars  # noqa: E402
from pipelines.features import featurize  # noqa: E402
from pipelines.models.base import TrainInputs  # noqa: E402
from pipelines.models.specs import SPECS, train_one  # noqa: E402
from pipelines.strategies import compute_signals  # noqa: E402
from pipelines.workdir import WorkdirLayout  # noqa: E402
from tasks.context import ModelOutcome  # noqa: E402


def plain(config: str) -> dict[str, float]:
    """Every stage as a plain call, sequential, no Prefect, no MLflow, no publish."""

    s = load_config(config, overrides={"workdir": str(WORK / "plain")})
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    raws = load_source(s.data, s.seed)
    t["collect"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    checked = check_bars(raws, s.data.checks, interval=s.data.interval)
    t["check"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    append_bars(WORK / "plain" / "bars", checked.bars)
    bars = read_bars(WORK / "plain" / "bars")
    t["store+load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = featurize(bars).frame
    t["featurize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    signals = compute_signals(bars)
    t["signals"] = time.perf_counter() - t0
    out = WORK / "plain" / "models"
    results: dict[str, Any] = {}
    for name, spec in SPECS.items():
        t0 = time.perf_counter()
        upstream = {u: results[u] for u in spec.after}  # the sizer trades the bandit's arms
        results[name] = train_one(
            spec, bars, feats, spec.config(s), s.seed, out / name, signals, upstream=upstream
        )
        t[f"train {name}"] = time.perf_counter() - t0
    return t


def plain_concurrent(config: str) -> float:
    """The trainings as plain calls on threads, as the flow runs them (no Prefect)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    s = load_config(config, overrides={"workdir": str(WORK / "plainc")})
    bars = generate_bars(s.data.synthetic, s.seed)
    feats = featurize(bars).frame
    signals = compute_signals(bars)
    out = WORK / "plainc" / "models"
    futures: dict[str, Future[Any]] = {}

    def train(name: str) -> Any:
        spec = SPECS[name]
        upstream = {u: futures[u].result() for u in spec.after}  # waits, as the flow does
        return train_one(
            spec, bars, feats, spec.config(s), s.seed, out / name, signals, upstream=upstream
        )

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=s.training.concurrency) as pool:  # SPECS order: deps first
        for name in SPECS:
            futures[name] = pool.submit(train, name)
        for f in futures.values():
            f.result()
    return time.perf_counter() - t0


class Timers:
    """Seconds spent inside named library calls (wrapped for one measurement, then restored)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, key: str) -> None:
        original = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


def bookkeeping_timers() -> Timers:
    """Wrap the bookkeeping calls the flow makes, to split their cost (goal: measure each)."""
    import mlflow
    import mlflow.tracking._model_registry.fluent as registry

    import tasks.publish
    import tasks.reporting
    import tasks.tracking
    from tasks.tracking import Tracker

    timers = Timers()
    timers.wrap(registry, "_register_model", "MLflow model registration")
    timers.wrap(mlflow.onnx, "log_model", "MLflow log_model (registration included)")
    timers.wrap(mlflow.pyfunc, "load_model", "pyfunc round trip: load")
    timers.wrap(tasks.tracking, "_round_trip_diff", "pyfunc round trip: predict and compare")
    timers.wrap(Tracker, "log_artifact", "MLflow artifact logging (files, plots, report)")
    timers.wrap(Tracker, "start_run", "MLflow runs and params")
    timers.wrap(Tracker, "log_metrics", "MLflow metrics")
    timers.wrap(tasks.publish, "publish_model", "signed publish")
    timers.wrap(tasks.reporting, "write_report", "HTML report")
    timers.wrap(tasks.reporting, "plot_bars_overview", "HTML report")
    return timers


def _cpu() -> float:
    """CPU seconds of this process (every thread) and of its finished children (featurize's)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _server_cpu() -> float:
    """CPU seconds of Prefect's local API server so far."""
    import psutil

    t = psutil.Process(_API[0].process.pid).cpu_times()
    return float(t.user + t.system)


def bookkept(config: str, workdir: str) -> tuple[float, dict[str, float], float]:
    """The flow's stages and bookkeeping without Prefect: the same task bodies (``.fn``), the
    same trainings on threads, each model logged and published as it finishes, the report.

    Prefect's part is what is left out: flow and task runs, their states, the API and the
    run logger (disabled here). Returns the wall time, the bookkeeping's split and the CPU
    seconds.
    """
    from concurrent.futures import Future, ThreadPoolExecutor, as_completed

    from prefect.logging import disable_run_logger

    from pipelines.workdir import WorkdirLayout
    from tasks import data as t_data
    from tasks import publish as t_publish
    from tasks import reporting as t_reporting
    from tasks import tracking as t_tracking
    from tasks import train as t_train
    from tasks.context import RunContext

    s = load_config(config, overrides={"workdir": str(WORK / workdir)})
    layout = WorkdirLayout(s.workdir)
    seed_mlflow_database(layout.mlflow_db, layout.mlartifacts)  # as the CLI does
    timers = bookkeeping_timers()
    t0, c0 = time.perf_counter(), _cpu()
    with disable_run_logger():
        ctx = RunContext.open(s)
        run_dir = ctx.run_dir
        claimed = t_data.claim_bar_store.fn(s.data, s.seed, s.profile, layout.bars, layout.root)
        assert claimed is None, claimed
        raws = t_data.collect_raw.fn(s.data, s.seed)
        checked = t_data.check_data.fn(raws, s.data, run_dir)
        t_data.store_bars.fn(checked, layout.bars)
        bars, data_hash = t_data.load_bars.fn(layout.bars)
        features = t_data.featurize_bars.fn(bars, data_hash).frame
        events = t_data.ingest_bot_events.fn(s.events, layout.events)
        lineage = {**ctx.lineage, "data_hash": data_hash}
        checks = checked.report.to_dict()
        parent = t_tracking.start_parent_run.fn(ctx.tracker, ctx.run_id, s, lineage, checks)
        inputs = TrainInputs(bars, features, compute_signals(bars), events=events.joined)
        futures: dict[str, Future[Any]] = {}

        def train(name: str) -> Any:
            upstream = {u: _trained(futures[u].result()) for u in SPECS[name].after}
            return t_train.train_model.fn(name, inputs, s, ctx.model_dir(name), upstream)

        outcomes: dict[str, ModelOutcome] = {}
        results: dict[str, Any] = {}
        with ThreadPoolExecutor(max_workers=s.training.concurrency) as pool:
            for name in SPECS:
                futures[name] = pool.submit(train, name)
            names = {id(f): n for n, f in futures.items()}
            for future in as_completed(list(futures.values())):
                result = _trained(future.result()).result
                name = names[id(future)]
                results[name] = result
                outcomes[name] = _settle(ctx, parent, result, t_tracking, t_publish)
        outcomes = {name: outcomes[name] for name in SPECS}
        summary = {"run_id": ctx.run_id, "models": {n: o.summary() for n, o in outcomes.items()}}
        report = t_reporting.write_run_report.fn(run_dir, summary, outcomes, results, checks, bars)
        ctx.tracker.log_artifact(parent, report.parent, "report")
        t_tracking.log_run_summary.fn(ctx.tracker, parent, outcomes)
        ctx.tracker.end_run(parent, ok=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    timers.restore()
    return wall, timers.seconds, cpu


def _trained(out: Any) -> Any:
    """What the flow's futures resolve to: a train task returns a named state (Blocked) or
    the trained model itself."""
    return out.result() if hasattr(out, "is_completed") else out


def _settle(ctx: Any, parent: str, result: Any, t_tracking: Any, t_publish: Any) -> Any:
    """settle_model's work: log to MLflow, publish when every gate passed."""
    child, record = t_tracking.log_model_run.fn(ctx.tracker, parent, result)
    if not result.passed:
        ctx.tracker.end_run(child, ok=True)
        return ModelOutcome(result.model, "blocked", "blocked", result.gates)
    published = t_publish.publish_files.fn(
        ctx.store,
        result.model,
        {"model.onnx": result.onnx_path},
        ctx.keyring,
        result.metrics,
        result.gates,
        {**ctx.lineage, "mlflow_run_id": child},
        ctx.settings.registry.keep_last,
    )
    ctx.tracker.promote(record)
    ctx.tracker.end_run(child, ok=True)
    return ModelOutcome(result.model, "published", published.version, result.gates)


CLI_START = """
import os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from flows.cli.runtime import prepare_environment
prepare_environment(Path(tempfile.mkdtemp()) / "wd", flows=True)
from flows.cli.local_api import start_local_api, wait_for_api
api = start_local_api(Path(os.environ["PREFECT_HOME"]))
t0 = time.perf_counter()
import flows.training
t1 = time.perf_counter()
wait_for_api(api)
print(t1 - t0, time.perf_counter() - t1)
"""


def cli_start(runs: int = 3) -> list[tuple[float, float]]:
    """The CLI's start in fresh interpreters: (training imports, wait for the API after them).

    The CLI spawns the API before it imports the training code, so only what is left of the
    start after the imports is on the critical path.
    """
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    out = []
    for _ in range(runs):
        res = subprocess.run(
            [sys.executable, "-c", CLI_START, str(ROOT)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        imports, wait = map(float, res.stdout.split()[-2:])
        out.append((imports, wait))
    return out


_API: list[Any] = []


def start_api() -> float:
    """Start Prefect's local API as the CLI does; the seconds until it answers."""
    from flows.cli.local_api import start_local_api, wait_for_api

    t0 = time.perf_counter()
    api = start_local_api(Path(os.environ["PREFECT_HOME"]))
    wait_for_api(api)
    _API.append(api)
    return time.perf_counter() - t0


def orchestrated(config: str, workdir: str) -> tuple[float, float, float]:
    """The real training flow on the local API, run as the CLI runs it: its wall time, this
    process's CPU seconds and the API server's."""
    from flows.cli.local_api import serving
    from flows.training import run_training

    s = load_config(config, overrides={"workdir": str(WORK / workdir)})
    layout = WorkdirLayout(s.workdir)
    seed_mlflow_database(layout.mlflow_db, layout.mlartifacts)  # as the CLI does
    with serving(_API[0]):
        t0, c0, s0 = time.perf_counter(), _cpu(), _server_cpu()
        run_training(s, force=True)
        return time.perf_counter() - t0, _cpu() - c0, _server_cpu() - s0


def _paired_interval(diffs: list[float], base: float) -> str:
    """``mean [lo, hi] s ([lo, hi] % of base)``: Student's t on the pair differences, which
    keeps the run-to-run drift that falls on both halves of a pair out of the interval."""
    from statistics import mean, stdev

    from scipy.stats import t

    if len(diffs) < 2:
        return f"{mean(diffs):+.2f} s (one pair: no interval)"
    m = mean(diffs)
    half = float(t.ppf(0.975, len(diffs) - 1)) * stdev(diffs) / len(diffs) ** 0.5
    lo, hi = m - half, m + half
    return f"{m:+.2f} s [{lo:+.2f}, {hi:+.2f}] ({lo / base:+.1%} to {hi / base:+.1%} of B)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--pairs", type=int, default=2, help="B/C pairs, alternating")
    args = parser.parse_args()
    load = os.getloadavg()
    p = plain(args.config)
    concurrent = plain_concurrent(args.config)
    # The first bookkept run pays MLflow's once-per-process costs (its package scan at the
    # first log_model) and is not counted; then B and C alternate, so drift in the machine's
    # load falls on both, and the pairs are reported one by one.
    starts = cli_start()
    book_cold, _, _ = bookkept(args.config, "book-cold")
    api_start = start_api()
    pairs: list[tuple[float, float]] = []
    cpus: list[tuple[float, float, float]] = []  # B's CPU, C's (this process), C's server's
    for i in range(args.pairs):
        flow_i, flow_cpu, server_cpu = orchestrated(args.config, f"flow-{i}")
        book_i, split, book_cpu = bookkept(args.config, f"book-{i}")
        pairs.append((book_i, flow_i))
        cpus.append((book_cpu, flow_cpu, server_cpu))
    book = sum(b for b, _ in pairs) / len(pairs)
    flow = sum(c for _, c in pairs) / len(pairs)
    cpu_b = sum(b for b, _, _ in cpus) / len(cpus)
    cpu_c = sum(c + srv for _, c, srv in cpus) / len(cpus)
    wall_ci = _paired_interval([c - b for b, c in pairs], book)
    cpu_ci = _paired_interval([c + srv - b for b, c, srv in cpus], cpu_b)
    plain_total = sum(p.values())
    train_seq = sum(v for k, v in p.items() if k.startswith("train "))
    plain_par = plain_total - train_seq + concurrent
    register = split.pop("MLflow model registration", 0.0)
    split["MLflow log_model (registration included)"] -= register
    split = {"MLflow model registration": register, **split}
    lines = [
        "## Training flow: wall time by stage and orchestration overhead",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_flow.py --config {args.config} "
        f"--pairs {args.pairs}`  ",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU "
        f"(load average {load[0]:.1f} at start)  ",
        f"Date: {datetime.now(UTC).date().isoformat()}",
        "",
        "| stage (plain calls, sequential) | seconds |",
        "|---|---:|",
        *[f"| {k} | {v:.2f} |" for k, v in p.items()],
        f"| **sum** | **{plain_total:.2f}** |",
        f"| the {len(SPECS)} trainings on threads at once (`training.concurrency`) "
        f"| {concurrent:.2f} |",
        f"| **sum with concurrent trainings** | **{plain_par:.2f}** |",
        "",
        "| the whole run, three ways (trainings on threads in each) | seconds |",
        "|---|---:|",
        f"| A. the stages as plain calls (above), no bookkeeping | {plain_par:.2f} |",
        f"| B. the same stages and the flow's bookkeeping (MLflow runs, model logging and "
        f"registration, pyfunc round trips, signed publish, report) as plain calls, no "
        f"Prefect (mean of {len(pairs)}) | {book:.2f} (each: "
        f"{', '.join(f'{b:.2f}' for b, _ in pairs)}; first run in the process, not "
        f"counted: {book_cold:.2f}) |",
        f"| C. the Prefect training flow (same work, as flow and task runs on the local API; "
        f"mean of {len(pairs)}) | {flow:.2f} (each: "
        f"{', '.join(f'{c:.2f}' for _, c in pairs)}) |",
        f"| Prefect's local API start (`flows/cli/local_api.py`, measured alone; the CLI "
        f"overlaps it with the imports) | {api_start:.2f} |",
        "",
        "| the CLI's start, fresh interpreter (API spawned, then the training code "
        "imported) | training imports s | wait for the API after them s |",
        "|---|---:|---:|",
        *[f"| run {i + 1} | {imp:.2f} | {wait:.2f} |" for i, (imp, wait) in enumerate(starts)],
        "",
        "| CPU seconds, pair by pair | B | C: the flow's process | C: the API server | "
        "C against B |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| pair {i + 1} | {b:.1f} | {c:.1f} | {srv:.1f} | {(c + srv) / b - 1:+.1%} |"
            for i, (b, c, srv) in enumerate(cpus)
        ],
        "",
        "| bookkeeping in the last run B, by call (summed over threads) | seconds |",
        "|---|---:|",
        *[f"| {k} | {v:.2f} |" for k, v in split.items()],
        "",
        f"Orchestration overhead (C against B, the same work with and without Prefect): "
        f"{flow - book:+.2f} s ({(flow / book - 1) * 100:+.1f}%), the API start excluded; "
        f"{flow + api_start - book:+.2f} s "
        f"({((flow + api_start) / book - 1) * 100:+.1f}%) if it were waited for in full, "
        f"where the CLI waits {min(w for _, w in starts):.2f}-{max(w for _, w in starts):.2f} "
        "s of it (the table above; the start's CPU still competes with the imports on the 2 "
        "cores); pair by pair "
        f"{', '.join(f'{c - b:+.2f}' for b, c in pairs)} s. "
        f"In CPU seconds (the process, its featurize child and, for C, the API server): "
        f"{cpu_c - cpu_b:+.1f} s ({cpu_c / cpu_b - 1:+.1%}) on average. "
        f"Over the {len(pairs)} pairs, a 95 % t-interval on the mean of C - B: wall {wall_ci}; "
        f"CPU {cpu_ci}. "
        f"Bookkeeping (B against A): {book - plain_par:+.2f} s. "
        "All three share the machine's 2 cores, run the same DAG (the sizer starts when the "
        "bandit it trades is trained) on the same number of threads, and follow the plain "
        "sequential calls in the same process, so imports and compiled kernels are loaded.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results" / "flow.md").write_text(text)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
