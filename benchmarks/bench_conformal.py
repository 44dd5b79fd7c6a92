"""Conformal coverage of the regime classifier's sets, per method, on the generator and real sets.

Run: ``.venv/bin/python benchmarks/bench_conformal.py [--config demo] [--seeds 7]
[--sets generator GOOG EURUSD SP500 NASDAQ] [--gammas 0.005 0.02 0.05]``

Each set is prepared and fitted by the regime trainer itself (``RegimeTrainer.prepare`` and
``fit`` with the run's named random streams: the same model, calibration part and held-out
rows a flow run on that set would have), and every conformal method of
``pipelines.models.regime.conformal`` runs on the same held-out stream in time order, each
label revealed ``label_horizon`` bars later, through the function the trainer uses
(``conformal_stream_metrics``). Printed per set and method: coverage and mean set size on the
test span and on the confirmation span, and whether ``|coverage - target| <=
coverage_tolerance`` holds on both (the coverage gate, for that method). The configured ACI
step is the default; ``--gammas`` adds rows for other steps, for sensitivity only.

Sets: ``generator`` (the config's synthetic bars, true regimes as labels), ``GOOG`` daily and
``EURUSD`` hourly (shipped by ``backtesting``), ``SP500`` and ``NASDAQ`` daily 1999-2018
(shipped by ``arch``); real sets use the forward-looking rule labels. Writes
``benchmarks/results/conformal.md``.
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
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "conformal.md"
sys.path.insert(0, str(ROOT))

from configs.settings import Settings, load_config  # noqa: E402
from pipelines.models.regime.conformal import METHODS  # noqa: E402

SETS: tuple[str, ...] = ("generator", "GOOG", "EURUSD", "SP500", "NASDAQ")


def load_set(name: str, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bars and features of one set, read and checked as the flow does."""
    from benchmarks.bench_real import load_datasets
    from pipelines.data.synthetic import generate_bars
    from pipelines.features import featurize

    if name == "generator":
        bars = generate_bars(settings.data.synthetic, settings.seed)
        return bars, featurize(bars).frame
    if name in ("GOOG", "EURUSD"):
        (data,) = load_datasets([name], [], settings)
    else:
        (data,) = load_datasets([], [], settings, [name.lower()])
    return data.bars, data.features


def held_out_stream(
    bars: pd.DataFrame, features: pd.DataFrame, cfg: Any, seed: int
) -> dict[str, Any]:
    """The trainer's own calibration rows and held-out rows with the fitted model's
    probabilities (prepare and fit exactly as a run does)."""
    from pipelines.data.schema import REGIMES
    from pipelines.models.base import TrainInputs
    from pipelines.models.regime.candidates import predict_proba_full
    from pipelines.models.regime.train import RegimeTrainer
    from pipelines.seeding import Streams
    from pipelines.strategies import compute_signals

    trainer = RegimeTrainer()
    streams = Streams(seed).child("regime")
    data = trainer.prepare(TrainInputs(bars, features, compute_signals(bars)), cfg, streams)
    fitted = trainer.fit(data, cfg, streams)
    k = len(REGIMES)
    cal, hold = data.calib, data.holdout
    return {
        "calib_proba": predict_proba_full(fitted.model, data.mats(cal)["features"], k),
        "calib_y": cal["y"].to_numpy(),
        "calib_ts": cal["ts"],
        "proba": predict_proba_full(fitted.model, data.mats(hold)["features"], k),
        "y": hold["y"].to_numpy(),
        "symbol": hold["symbol"].to_numpy(),
        "ts": hold["ts"],
        "model": fitted.best,
        "n_calib": len(cal),
        "n_hold": len(hold),
        "source": data.source,
    }


def rows_for(
    set_name: str, seed: int, stream: dict[str, Any], cfg: Any, gammas: list[float]
) -> list[dict[str, Any]]:
    """One row per method (and per extra ACI step) with both spans' coverage and set size."""
    from pipelines.data.schema import REGIMES
    from pipelines.models.regime.conformal import conformal_stream_metrics

    out = []
    runs: list[tuple[str, float, tuple[Any, ...]]] = [
        (m, cfg.conformal_gamma, (m,)) for m in METHODS
    ]
    runs += [
        (f"{m} (gamma {g:g})", g, (m,))
        for g in gammas
        if g != cfg.conformal_gamma
        for m in ("aci", "aci_rolling")
    ]
    for label, gamma, methods in runs:
        metrics, _ = conformal_stream_metrics(
            stream["calib_proba"],
            stream["calib_y"],
            stream["calib_ts"],
            stream["proba"],
            stream["y"],
            stream["symbol"],
            stream["ts"],
            coverage=cfg.conformal_coverage,
            gamma=gamma,
            window=cfg.conformal_window,
            horizon=cfg.label_horizon,
            confirm_fraction=cfg.confirm_fraction,
            class_names=REGIMES,
            methods=methods,
        )
        m = methods[0]
        row: dict[str, Any] = {"set": set_name, "seed": seed, "method": label}
        ok = True
        for span, prefix in (("test", ""), ("confirm", "confirm/")):
            cov = metrics[f"{prefix}conformal/{m}/coverage"]
            row[f"{span}_coverage"] = cov
            row[f"{span}_size"] = metrics[f"{prefix}conformal/{m}/mean_set_size"]
            worst = min(
                (metrics[f"{prefix}conformal/{m}/coverage/{r}"] for r in REGIMES),
                key=lambda v: v if np.isfinite(v) else np.inf,
            )
            row[f"{span}_worst_class"] = worst
            ok = ok and abs(cov - cfg.conformal_coverage) <= cfg.coverage_tolerance
        row["gate"] = "pass" if ok else "FAIL"
        out.append(row)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| set | seed | method | test coverage | test set size | test worst class | "
        "confirmation coverage | confirmation set size | confirmation worst class | gate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['seed']} | {r['method']} | {r['test_coverage']:.3f} | "
            f"{r['test_size']:.2f} | {r['test_worst_class']:.3f} | {r['confirm_coverage']:.3f} | "
            f"{r['confirm_size']:.2f} | {r['confirm_worst_class']:.3f} | {r['gate']} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], methods: tuple[str, ...]) -> str:
    """Per set and method (configured step only), the mean over seeds of each span's coverage
    and set size, and on how many seeds the coverage gate held on both spans."""
    lines = [
        "| set | method | test coverage | test set size | confirmation coverage | "
        "confirmation set size | gate held (seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    frame = pd.DataFrame([r for r in rows if r["method"] in methods])
    for (name, method), g in frame.groupby(["set", "method"], sort=False):
        lines.append(
            f"| {name} | {method} | {g['test_coverage'].mean():.3f} | {g['test_size'].mean():.2f} "
            f"| {g['confirm_coverage'].mean():.3f} | {g['confirm_size'].mean():.2f} | "
            f"{(g['gate'] == 'pass').sum()} / {len(g)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--gammas", type=float, nargs="*", default=[0.02, 0.05])
    args = parser.parse_args()
    settings = load_config(args.config, environ={})
    cfg = settings.regime
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    info: list[str] = []
    for name in args.sets:
        bars, feats = load_set(name, settings)
        for seed in args.seeds:
            t_set = time.perf_counter()
            stream = held_out_stream(bars, feats, cfg, seed)
            new = rows_for(name, seed, stream, cfg, args.gammas)
            rows += new
            info.append(
                f"- {name} seed {seed}: {stream['source']} labels, model {stream['model']}, "
                f"{stream['n_calib']} calibration rows, {stream['n_hold']} held-out rows "
                f"({time.perf_counter() - t_set:.0f} s)"
            )
            print(info[-1], flush=True)
            print(table(new), flush=True)
    seeds = " ".join(str(s) for s in args.seeds)
    gammas = " ".join(f"{g:g}" for g in args.gammas)
    text = f"""## Conformal coverage under drift

Command: `.venv/bin/python benchmarks/bench_conformal.py --config {args.config} --seeds {seeds}
--sets {" ".join(args.sets)} --gammas {gammas}` · machine: {os.cpu_count()}-core
{platform.machine()} CPU, no GPU, shared with other jobs (Python {platform.python_version()}) ·
date: {dt.date.today().isoformat()} · {time.perf_counter() - t0:.0f} s in all.

Target coverage {cfg.conformal_coverage:.2f}, tolerance {cfg.coverage_tolerance:.2f}; labels
revealed {cfg.label_horizon} bars later; ACI step {cfg.conformal_gamma:g} (rows with another
gamma are sensitivity only), rolling window {cfg.conformal_window} revealed scores per class;
gate method in the config: `{cfg.conformal_method}`. "Worst class": the lowest per-class
coverage (Mondrian sets target each class).

{chr(10).join(info)}

Mean over seeds (configured ACI step):

{summary(rows, METHODS)}

Every seed (rows with another gamma are sensitivity only):

{table(rows)}
"""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
