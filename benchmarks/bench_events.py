"""Event ingestion throughput: a simulated bot's corrupted gzip logs into the event store.

Run: ``.venv/bin/python benchmarks/bench_events.py [--events 1000000] [--reference-sample 2000]``

The simulated bot (``tests/events_simulation.py``) trades 2 synthetic symbols, one decision
per hourly bar, and logs one decision and one outcome per trade (so ``--events`` / 2
decisions), one gzip file per 30 days, each file written as 4 members. Then 0.1 % bad lines
(10 kinds), 0.1 % duplicated lines and a half-written last member (100 outcomes) are added.
Measured:

* ``ingest_events`` of everything into an empty local store (read, validate, de-duplicate,
  join, write Parquet) on its default fast path: events/s over all lines, wall and CPU;
* the same call again (nothing new: the idempotent no-op);
* completing the half-written member (an incremental read from a byte offset);
* the per-record validators on a sample of decision records: the fast column-wise validator
  against ``jsonschema`` plus the semantic rules.

With ``--learn-bars N`` (default 10000; 0 skips it) a second table compares bandits trained
on a simulated bot's logs (N hourly bars per symbol, 2 symbols, epsilon-greedy logging with
epsilon 0.3 over a random linear scorer): importance-weighted logged feedback, unweighted
logged feedback and full-information rewards from bars, each exported as the configured safe
greedy rule, on the later 30 % of the decisions: the true held-out value (known from bars)
and the DR estimate on the bot's held-out logs with its 90 % CI, ESS share and largest weight.

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
sys.path.insert(0, str(ROOT / "tests"))  # the simulated bot lives with the tests


def _cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (the machine type elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _learning_table(n_bars: int) -> list[str]:
    """Bandits from logged feedback vs full information, judged on held-out truth and logs."""
    import numpy as np
    import pandas as pd
    from events_simulation import BotSpec, simulate_bot, write_files

    from configs.data import SyntheticConfig
    from configs.settings import load_config
    from pipelines.data.synthetic import generate_bars
    from pipelines.events.feedback import evaluate_on_logs, logged_feedback
    from pipelines.events.storage import FolderSource, LocalStorage
    from pipelines.events.store import ingest_events, read_dataset
    from pipelines.models.bandit.neural import NeuralBandit
    from pipelines.models.bandit.train import forward_mean, safety_z
    from pipelines.strategies.signals import ARM_NAMES, N_ARMS

    cfg = load_config().bandit
    bars = generate_bars(SyntheticConfig(n_bars=n_bars), 7).drop(columns="regime")
    log = simulate_bot(bars, BotSpec(epsilon=0.3, horizon=cfg.reward_horizon, seed=5))
    work = Path(tempfile.mkdtemp(prefix="bench-events-learn-"))
    try:
        write_files(log.files, work / "logs")
        state = LocalStorage(work / "events")
        ingest_events(FolderSource(work / "logs"), state)
        fb = logged_feedback(read_dataset(state, "joined"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pos = pd.Index(log.truth["event_id"]).get_indexer(fb.event_id)
    full, probs = log.rewards[pos], log.probs[pos]
    split = fb.ts[int(len(fb) * 0.7)]
    purge = np.timedelta64(cfg.reward_horizon, "h")
    tr = np.flatnonzero(fb.ts < split - purge)
    te = np.flatnonzero(fb.ts >= split)
    frame = pd.DataFrame(full[tr], columns=list(ARM_NAMES))
    frame.insert(0, "symbol", fb.symbol[tr])
    frame.insert(0, "ts", fb.ts[tr])
    frame = frame.sort_values(["symbol", "ts"], kind="stable")
    targets = np.empty_like(full[tr])
    targets[frame.index.to_numpy()] = forward_mean(
        frame.reset_index(drop=True), list(ARM_NAMES), cfg.label_window
    )
    best_arm = int(np.argmax(full[tr].mean(axis=0)))
    w_tr = 1.0 / fb.propensity[tr]
    logged_best = int(
        np.argmax(
            [
                np.sum((w_tr * fb.reward[tr])[fb.arm[tr] == a])
                / max(np.sum(w_tr[fb.arm[tr] == a]), 1e-12)
                for a in range(N_ARMS)
            ]
        )
    )
    z = safety_z(cfg.safety_level, cfg.reward_horizon)

    def bandit() -> NeuralBandit:
        return NeuralBandit(
            hidden=tuple(cfg.hidden),
            dropout=cfg.dropout,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            patience=cfg.patience,
            val_fraction=cfg.val_fraction,
            prior_precision=cfg.prior_precision,
            seed=0,
        )

    import torch

    def greedy(model: NeuralBandit, default: int) -> np.ndarray:
        module = model.safe_scoring_module(default, z)
        with torch.no_grad():
            values = module(torch.from_numpy(fb.X[te].copy())).numpy()
        return np.argmax(values, axis=1)

    x_tr, a_tr, r_tr = fb.X[tr], fb.arm[tr], fb.reward[tr]
    t0 = time.perf_counter()
    iw = bandit().fit(x_tr, a_tr, r_tr, N_ARMS, propensity=fb.propensity[tr], max_weight=20.0)
    t_iw = time.perf_counter() - t0
    plain = bandit().fit(x_tr, a_tr, r_tr, N_ARMS)
    t0 = time.perf_counter()
    full_info = bandit().fit_full_information(x_tr, targets, best_arm)
    t_full = time.perf_counter() - t0
    choices = {
        "logged feedback, importance-weighted": greedy(iw, logged_best),
        "logged feedback, unweighted": greedy(plain, logged_best),
        "full information from bars": greedy(full_info, best_arm),
        f"best single arm on train ({ARM_NAMES[best_arm]})": np.full(len(te), best_arm),
    }
    held = fb.subset(te)
    rows = np.arange(len(te))
    out = [
        "",
        f"### Learning from the bot's logs ({len(tr):,} training / {len(te):,} held-out decisions)",
        "",
        f"Command: as above (`--learn-bars {n_bars}`); simulated bot on 2 x {n_bars:,} "
        f"synthetic hourly bars (seed 7), epsilon-greedy logging (epsilon 0.3) over a random "
        f"linear scorer; bandit settings from the default config (safe greedy rule, level "
        f"{cfg.safety_level}); training {t_iw:.0f} s (logged, weighted) and {t_full:.0f} s "
        f"(full information). bps per decision; DR on the held-out logs with 90 % "
        f"moving-block bootstrap CI; ESS = effective sample share of the importance weights.",
        "",
        "| policy | true held-out value | DR on the bot's logs [90 % CI] | ESS share "
        "| max weight |",
        "|---|---:|---:|---:|---:|",
    ]
    logging_true = float(np.mean(np.sum(probs[te] * full[te], axis=1)))
    base = evaluate_on_logs(held, None, n_boot=400, block=24, level=0.9, seed=0)
    e = base.estimates["logging"]["dr"]
    out.append(
        f"| logging policy (the bot) | {logging_true * 1e4:.1f} | {e.value * 1e4:.1f} "
        f"[{e.low * 1e4:.1f}, {e.high * 1e4:.1f}] | 1.00 | 1.0 |"
    )
    for name, arm in choices.items():
        onehot = np.zeros((len(te), N_ARMS))
        onehot[rows, arm] = 1.0
        res = evaluate_on_logs(held, onehot, n_boot=400, block=24, level=0.9, seed=0)
        e = res.estimates["candidate"]["dr"]
        d = res.diagnostics["candidate"]
        true_value = float(np.mean(full[te][rows, arm]))
        out.append(
            f"| {name} | {true_value * 1e4:.1f} | {e.value * 1e4:.1f} "
            f"[{e.low * 1e4:.1f}, {e.high * 1e4:.1f}] | {d.ess_fraction:.2f} | "
            f"{d.max_weight:.1f} |"
        )
    out.append("")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="decision + outcome lines")
    parser.add_argument("--reference-sample", type=int, default=2000)
    parser.add_argument("--learn-bars", type=int, default=10_000, help="0 skips the table")
    args = parser.parse_args()

    import pandas as pd
    from events_simulation import BotSpec, corrupt_logs, simulate_bot, write_files

    from configs.data import SyntheticConfig
    from pipelines.data.synthetic import generate_bars
    from pipelines.events.contract import validate_decisions, validate_reference
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

        load_before = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        first = ingest_events(FolderSource(src), state)
        t_first, c_first = time.perf_counter() - t0, time.process_time() - c0
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
            f"{c_first:.0f} CPU s = {lines_total / c_first:,.0f} events per CPU second; "
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
        f"--reference-sample {args.reference_sample} --learn-bars {args.learn_bars}`  ",
        f"Machine: {os.cpu_count()}-core {_cpu_model()}, no GPU, "
        f"Python {sys.version.split()[0]}, pandas {pd.__version__}; date {today}; "
        f"1-minute load average {load_before:.1f} before the first ingest and "
        f"{os.getloadavg()[0]:.1f} at the end (cores shared with other jobs); "
        f"peak RSS {rss_gb:.1f} GB.  ",
        f"Input: {n_dec:,} decisions + {n_dec:,} outcomes from the simulated bot (2 symbols, "
        f"hourly; gzip level 1, 30-day files of 4 members), plus "
        f"{sum(bad.expected_quarantine.values())} bad lines, {bad.n_duplicates} duplicated "
        "lines and a half-written last member; "
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
    if args.learn_bars:
        lines += _learning_table(args.learn_bars)
    text_out = "\n".join(lines)
    print(text_out)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text_out)


if __name__ == "__main__":
    main()
