"""Exit settings chosen on evidence: defaults vs heuristic vs grid vs Q-learning, forward.

Run: ``.venv/bin/python benchmarks/bench_exit_policy.py [--n-bars 20000] [--sample GOOG EURUSD]
[--arch sp500]``

Per data set, family and cell, every candidate of ``pipelines.exit_policy`` is fitted on the
earlier trades (``recommendation.holdout_fraction`` held out) and its paired per-trade net
P&L lift over the neutral defaults (2.0 / 3.0 ATR, the bot's fallback and the first run's
live settings) is measured on the test and the confirmation span, with the slot's
moving-block bootstrap and level. ``shipped`` is what ``choose_exits`` ships against the
defaults: the best candidate on the fit span, kept only when both lower bounds are > 0.

Data: the demo generator (cells: the family over all trades, ``*``, and each *true* regime,
what a perfect regime classifier would give; the bot's regime comes from the classifier, so
these cells are a ceiling on regime cells), ``backtesting``'s GOOG daily and EURUSD hourly
samples and ``arch``'s S&P 500 daily (family level only: no regime classifier passes its
gates on them, so the recommendation carries family-level values). Also timed: the grid and
the Q-learning agent per cell. Writes ``benchmarks/results/exit_policy.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "exit_policy.md"
sys.path.insert(0, str(ROOT))

NAMES = ("heuristic", "grid", "qlearn")


def _bps(iv: Any) -> str:
    if iv is None or not np.isfinite(iv.value):
        return "-"
    return f"{iv.value * 1e4:+.1f} [{iv.low * 1e4:+.1f}, {iv.high * 1e4:+.1f}]"


def evaluate(
    name: str, bars: pd.DataFrame, cells_from_truth: bool, settings: Any, records: list[dict]
) -> list[str]:
    """Markdown rows for one data set (see the module docstring); one record per judged cell
    and candidate is appended to ``records``."""
    from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN
    from pipelines.evaluation.bootstrap import mean_difference
    from pipelines.evaluation.spans import paired_span_cis
    from pipelines.exit_policy import (
        MIN_TRADES,
        QLearn,
        _pnl,
        candidate_pairs,
        choose_exits,
        lift_cis,
        split_trades,
    )
    from pipelines.recommendations import NEUTRAL, SAFE_BOUNDS, atr_fraction, family_signals
    from pipelines.seeding import Streams
    from pipelines.strategies import ARM_FAMILIES, compute_signals
    from pipelines.strategies.exits import entry_rows, trade_windows

    cfg = settings.recommendation
    cost, slip = settings.bandit.cost_bps, settings.bandit.slippage_bps
    costs = {"cost_bps": cost, "slippage_bps": slip}
    spans = {
        "confirm_fraction": cfg.confirm_fraction,
        "block": cfg.bootstrap_block,
        "n_boot": cfg.n_bootstrap,
        "level": cfg.ci_level,
    }
    q = QLearn.from_config(cfg)
    live = (NEUTRAL["stop_loss_multiplier"], NEUTRAL["take_profit_multiplier"])
    bars = bars.sort_values(["symbol", "ts"], ignore_index=True)
    fam = family_signals(compute_signals(bars), ARM_FAMILIES)
    atr = atr_fraction(bars)
    streams = Streams(settings.seed).child("bench-exit-policy").child(name)
    out = []
    for family in fam.columns:
        sig = fam[family].to_numpy()
        rows = entry_rows(sig, bars["symbol"].to_numpy())
        w = trade_windows(bars, rows, sig[rows], atr[rows], cfg.max_hold)
        ts = bars["ts"].to_numpy()[w.row]
        fit, held = split_trades(ts, cfg.holdout_fraction)
        cells: dict[str, np.ndarray] = {"*": np.ones(w.n, dtype=bool)}
        if cells_from_truth and TRUE_REGIME_COLUMN in bars.columns:
            truth = bars[TRUE_REGIME_COLUMN].to_numpy()[w.row]
            for k, regime in enumerate(REGIMES):
                cells[regime] = (truth == regime) | (truth == k)
        for cell, sel in cells.items():
            f, h = fit & sel, held & sel
            if f.sum() < MIN_TRADES or h.sum() < 2 * MIN_TRADES:
                out.append(
                    f"| {name} | {family} | {cell} | {int(f.sum())} / {int(h.sum())} | "
                    "too few trades | - | - | - | - | live | - | - |"
                )
                continue
            cs = streams.child(family).child(cell)
            t0 = time.perf_counter()
            grid_only = candidate_pairs(w, f, live, SAFE_BOUNDS, **costs, q=None, q_rng=None)
            t1 = time.perf_counter()
            pairs = candidate_pairs(w, f, live, SAFE_BOUNDS, **costs, q=q, q_rng=cs.numpy("qlearn"))
            t2 = time.perf_counter()
            assert pairs["grid"] == grid_only["grid"]
            fit_bps = {k: float(_pnl(w, *p, cost, slip)[f].mean()) * 1e4 for k, p in pairs.items()}
            base_fit = float(_pnl(w, *live, cost, slip)[f].mean()) * 1e4
            lifts = {
                k: lift_cis(w, ts, h, p, live, **costs, **spans, seed=cs.seed("ci"))
                for k, p in pairs.items()
            }
            choice = choose_exits(
                w,
                ts,
                f,
                h,
                live,
                SAFE_BOUNDS,
                **costs,
                **spans,
                seed=cs.seed("ci"),
                q=q,
                q_seed=cs.seed("qlearn"),
            )
            cand = " · ".join(
                f"{k} {pairs[k][0]:g}/{pairs[k][1]:g} ({fit_bps[k] - base_fit:+.1f})" for k in NAMES
            )
            test = " · ".join(f"{k[0]} {_bps(lifts[k]['test'])}" for k in NAMES)
            conf = " · ".join(f"{k[0]} {_bps(lifts[k]['confirm'])}" for k in NAMES)
            best_test = max(NAMES, key=lambda k: lifts[k]["test"].value)
            # what choosing the risk for net P&L would do: a risk r's lift over the default
            # 1% is (r / 1% - 1) x the trades' P&L, so the gate passes exactly when the
            # P&L's own bounds clear zero on both spans, and then only at a bound
            own = paired_span_cis(
                ts[h],
                _pnl(w, *live, cost, slip)[h],
                np.zeros(int(h.sum())),
                mean_difference,
                block=spans["block"],
                n=spans["n_boot"],
                level=spans["level"],
                seed=cs.seed("risk"),
                confirm_fraction=spans["confirm_fraction"],
            )
            if own["test"].low > 0 and own["confirm"].low > 0:
                risk = "upper"
            elif own["test"].high < 0 and own["confirm"].high < 0:
                risk = "lower"
            else:
                risk = "stays"
            for k in NAMES:
                records.append(
                    {
                        "data": name,
                        "cell": f"{family}/{cell}",
                        "candidate": k,
                        "test": lifts[k]["test"].value * 1e4,
                        "confirm": lifts[k]["confirm"].value * 1e4,
                        "both_low_above_0": bool(
                            lifts[k]["test"].low > 0 and lifts[k]["confirm"].low > 0
                        ),
                        "best_test": k == best_test,
                        "fit_pick": k == choice.challenger,
                        "risk": risk,
                        "shipped": choice.candidate,
                    }
                )
            shipped = (
                choice.candidate
                if choice.candidate == "live"
                else f"{choice.candidate} {choice.stop:g}/{choice.take:g}"
            )
            out.append(
                f"| {name} | {family} | {cell} | {int(f.sum())} / {int(h.sum())} | "
                f"{base_fit:+.1f} | {cand} | {test} | {conf} | {best_test} | {shipped} | "
                f"{(t1 - t0) * 1e3:.0f} | {(t2 - t1) * 1e3:.0f} |"
            )
    return out


def summarize(frame: pd.DataFrame) -> list[str]:
    """Markdown summary rows per data set and candidate (see the output's text)."""
    out = [
        "| data | candidate | cells | mean test lift | mean confirmation lift | both bounds > 0 "
        "| best on test | picked on fit |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    if frame.empty:
        return out
    for (data, cand), g in frame.groupby(["data", "candidate"], sort=False):
        out.append(
            f"| {data} | {cand} | {len(g)} | {g['test'].mean():+.1f} | "
            f"{g['confirm'].mean():+.1f} | {int(g['both_low_above_0'].sum())} | "
            f"{int(g['best_test'].sum())} | {int(g['fit_pick'].sum())} |"
        )
    wide = frame.pivot_table(index=["data", "cell"], columns="candidate", values="test")
    wide = wide.reset_index()
    heads = []
    for data, g in wide.groupby("data", sort=False):
        heads.append(f"{data} {int((g['qlearn'] > g['grid']).sum())} of {len(g)}")
    shipped = int(frame.drop_duplicates(["data", "cell"])["shipped"].ne("live").sum())
    out += [
        "",
        "Q-learning vs the grid on the test span (cells where qlearn's estimate is higher): "
        + ", ".join(heads)
        + f". Cells where the rule replaced the defaults: {shipped}.",
    ]
    cells = frame.drop_duplicates(["data", "cell"])
    out += [
        "",
        "Risk per trade chosen for net P&L (the same gate, against the default 1 %): per data "
        "set, the judged cells whose defaults' net P&L per trade has both lower bounds > 0 "
        "(the gate would move the risk to its upper bound, 2 %), both upper bounds < 0 (to "
        "its lower bound, 0.25 %), or neither (1 % stays).",
        "",
        "| data | cells | to the upper bound | to the lower bound | stays |",
        "|---|---:|---:|---:|---:|",
    ]
    for data, g in cells.groupby("data", sort=False):
        counts = g["risk"].value_counts()
        out.append(
            f"| {data} | {len(g)} | {counts.get('upper', 0)} | {counts.get('lower', 0)} | "
            f"{counts.get('stays', 0)} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-bars", type=int, default=20000)
    parser.add_argument("--sample", nargs="*", default=["GOOG", "EURUSD"])
    parser.add_argument("--arch", nargs="*", default=["sp500"])
    args = parser.parse_args()

    from benchmarks.bench_real import load_datasets
    from configs import load_config
    from pipelines.data.synthetic import generate_bars

    settings = load_config("demo", environ={})
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    syn = settings.data.synthetic.model_copy(update={"n_bars": args.n_bars})
    records: list[dict] = []
    rows = evaluate("demo", generate_bars(syn, settings.seed), True, settings, records)
    for ds in load_datasets(args.sample, [], settings, args.arch):
        rows += evaluate(ds.name, ds.bars, False, settings, records)
    summary = summarize(pd.DataFrame(records))
    wall = time.perf_counter() - t0
    cfg = settings.recommendation
    text = "\n".join(
        [
            "## Exit settings chosen on evidence: defaults vs heuristic vs grid vs Q-learning",
            "",
            "Command: `.venv/bin/python benchmarks/bench_exit_policy.py "
            f"--n-bars {args.n_bars} --sample {' '.join(args.sample)} --arch "
            f"{' '.join(args.arch)}`  ",
            f"Machine: {os.cpu_count()}-core {platform.machine()} CPU, no GPU, one thread, "
            f"shared (load average {load:.1f} at start); "
            f"{dt.datetime.now(dt.UTC).date().isoformat()}; {wall:.0f} s in all  ",
            f"Data: the demo generator ({len(syn.symbols)} symbols x {args.n_bars} hourly "
            "bars; cells `*` = all of a family's trades, and each *true* regime, a ceiling on "
            "what a regime classifier's cells could give), `backtesting`'s GOOG daily and "
            "EURUSD hourly, `arch`'s S&P 500 daily (family level only). Costs "
            f"{settings.bandit.cost_bps:g} + {settings.bandit.slippage_bps:g} bps per side, "
            f"time exit after {cfg.max_hold} bars, the later {cfg.holdout_fraction:g} of each "
            f"cell's trades held out (test, then confirmation: the last "
            f"{cfg.confirm_fraction:g}), {cfg.n_bootstrap} block-bootstrap resamples of "
            f"{cfg.bootstrap_block} trades, {cfg.ci_level:.0%} intervals. Q-learning: "
            f"{cfg.q_episodes} episodes x {cfg.q_steps} moves, epsilon {cfg.q_epsilon:g}, "
            f"alpha {cfg.q_alpha:g}, gamma {cfg.q_gamma:g}, {cfg.q_batch} trades per reward, "
            "0.25-ATR lattice; seeds from the demo config's streams.",
            "",
            "All lifts are net bps per trade over the defaults (2.0 / 3.0 ATR). `candidates`: "
            "each challenger's stop/target and its fit-span lift (in-sample); `test` and "
            "`confirmation`: h = heuristic, g = grid, q = qlearn, estimate [interval]; "
            "`best test`: the candidate with the highest test-span estimate; `shipped`: what "
            "the champion rule ships against the defaults (the best fit-span candidate, only "
            "when both lower bounds are > 0). `grid ms` / `q ms`: the grid search and the "
            "Q-learning agent (with its lattice simulation) for the cell.",
            "",
            "Summary per data set and candidate over the cells judged (enough trades): the "
            "mean test and confirmation lift over the defaults (bps per trade), the cells where "
            "both lower bounds are > 0 (it would beat the defaults through the gate), the cells "
            "where it has the best test estimate, and the cells where the fit span picks it "
            "(the challenger the rule gates).",
            "",
            *summary,
            "",
            "Caveat: a span only a few bootstrap blocks long (GOOG: about 30 trades per span, "
            f"{cfg.bootstrap_block}-trade blocks) is barely resampled by the moving-block "
            "bootstrap, so its interval can even miss its own estimate; such bounds are weak "
            "evidence either way.",
            "",
            "| data | family | cell | trades fit / held | defaults fit bps | candidates "
            "(fit lift) | test lift | confirmation lift | best test | shipped | grid ms | q ms |",
            "|---|---|---|---:|---:|---|---|---|---|---|---:|---:|",
            *rows,
            "",
        ]
    )
    print(text)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
