"""Regime classifier figures: walk-forward table, baselines, coverage, BOCD, parity, latency.

Run: ``.venv/bin/python benchmarks/bench_regime.py [--config demo] [--repeats 2000]``

Trains on the demo profile's synthetic bars (2 symbols x 20000 hourly bars) with the configured
seed, exactly as the flow does, then times ONNX inference against native ``predict_proba`` for
every candidate (one thread each, single row and 1,000 rows, p50/p99). Writes
``benchmarks/results/regime.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "regime.md"


def _pct(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return _pct(out)


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _bocd_known_series() -> pd.DataFrame:
    """BOCD on series with known change points, by kind of change (10 repeats of each)."""
    from pipelines.models.regime.bocd import bocd_changepoint_prob, detection_stats

    kinds = {
        "vol x3 up (0.01 -> 0.03)": ((0.0, 0.01), (0.0, 0.03)),
        "vol /3 down (0.03 -> 0.01)": ((0.0, 0.03), (0.0, 0.01)),
        "vol x1.5 up (0.004 -> 0.006)": ((0.0, 0.004), (0.0, 0.006)),
        "drift 0 -> 0.003, vol 0.006": ((0.0, 0.006), (0.003, 0.006)),
    }
    rows = []
    for name, (a, b) in kinds.items():
        rng = np.random.default_rng(0)
        segs, cps, pos = [], [], 0
        for _ in range(10):
            segs += [rng.normal(a[0], a[1], 300), rng.normal(b[0], b[1], 300)]
            cps.append(pos + 300)
            pos += 600
        x = np.concatenate(segs)
        prob = bocd_changepoint_prob(x, 1 / 300, 300, window=24, prior_var=float(np.var(x)))
        for thr in (0.7, 0.9):
            st = detection_stats(prob, cps, thr, max_delay=48, burn_in=24)
            # false alarms: alarms outside [c, c+48] of the 10 changes *and* of the 9 changes
            # back to the first segment, which are real changes too
            back = [c + 300 for c in cps[:-1]]
            st_all = detection_stats(prob, sorted(cps + back), thr, max_delay=48, burn_in=24)
            rows.append(
                {
                    "change": name,
                    "threshold": thr,
                    "detected": f"{st.detected}/{st.n_changes}",
                    "median_delay_bars": st.median_delay,
                    "mean_delay_bars": st.mean_delay,
                    "false_alarms_per_1000_bars": st_all.false_alarms_per_1000,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from configs import load_config
    from pipelines.data.schema import REGIMES
    from pipelines.data.synthetic import generate_bars
    from pipelines.export.onnx import make_session, max_abs_diff
    from pipelines.features import FEATURE_NAMES, featurize
    from pipelines.models.regime.candidates import make_candidate
    from pipelines.models.regime.export import (
        INPUT_NAME,
        OUTPUT_NAMES,
        export_onnx,
        onnx_probabilities,
    )
    from pipelines.models.regime.train import build_dataset
    from pipelines.models.specs import SPECS, train_one

    cfg = load_config(args.config, environ={})
    bars = generate_bars(cfg.data.synthetic, cfg.seed)
    t0 = time.perf_counter()
    feats = featurize(bars).frame
    feat_s = time.perf_counter() - t0
    out_dir = Path(tempfile.mkdtemp(prefix="bench-regime-"))
    t0 = time.perf_counter()
    outcome = train_one(SPECS["regime"], bars, feats, cfg.regime, cfg.seed, out_dir)
    train_s = time.perf_counter() - t0
    m = outcome.metrics
    best = outcome.params["selected_model"]

    comparison = pd.read_csv(outcome.artifacts["comparison"])
    comparison = comparison[
        [
            "model",
            "kind",
            "folds",
            "log_loss_mean",
            "log_loss_std",
            "balanced_accuracy_mean",
            "balanced_accuracy_std",
            "fit_seconds_mean",
            "selected",
        ]
    ]
    holdout = pd.read_csv(outcome.artifacts["holdout"])
    gates = pd.DataFrame([g.as_dict() for g in outcome.gates])
    bocd_known = _bocd_known_series()

    # latency of every candidate: fit on the training span, export, time both paths
    frame, _, _ = build_dataset(bars, feats, cfg.regime)
    cut = frame["ts"].quantile(1 - cfg.regime.holdout_fraction)
    train = frame[frame["ts"] < cut]
    X = train[list(FEATURE_NAMES)].to_numpy(np.float32)
    y = train["y"].to_numpy()
    X_hold = frame[frame["ts"] >= cut][list(FEATURE_NAMES)].to_numpy(np.float32)
    rng = np.random.default_rng(0)
    batch = X_hold[rng.choice(len(X_hold), 1000, replace=False)]
    row = X_hold[:1]
    lat_rows = []
    for name in cfg.regime.candidates:
        model = make_candidate(name, cfg.regime, cfg.seed).fit(X, y)
        path = export_onnx(model, out_dir / f"lat_{name}.onnx", FEATURE_NAMES, REGIMES)
        sess = make_session(path)
        parity = max_abs_diff(onnx_probabilities(path, model, X_hold), model.predict_proba(X_hold))
        reps_batch = max(args.repeats // 20, 20)
        o1 = _time(partial(sess.run, [OUTPUT_NAMES[1]], {INPUT_NAME: row}), args.repeats)
        n1 = _time(partial(model.predict_proba, row), args.repeats)
        ob = _time(partial(sess.run, [OUTPUT_NAMES[1]], {INPUT_NAME: batch}), reps_batch)
        nb = _time(partial(model.predict_proba, batch), reps_batch)
        lat_rows.append(
            {
                "model": name + (" (selected)" if name == best else ""),
                "onnx_1_p50_us": o1[0],
                "onnx_1_p99_us": o1[1],
                "native_1_p50_us": n1[0],
                "native_1_p99_us": n1[1],
                "onnx_1000_p50_us": ob[0],
                "onnx_1000_p99_us": ob[1],
                "native_1000_p50_us": nb[0],
                "native_1000_p99_us": nb[1],
                "parity_max_abs_diff": parity,
            }
        )
    latency = pd.DataFrame(lat_rows)

    bocd_keys = [k for k in m if k.startswith("bocd/")]
    bocd_gen = pd.DataFrame(
        [
            {
                "threshold": name,
                "changes": m[f"bocd/{name}/n_changes"],
                "detection_rate": m[f"bocd/{name}/detection_rate"],
                "mean_delay_bars": m[f"bocd/{name}/mean_delay_bars"],
                "false_alarms_per_1000_bars": m[f"bocd/{name}/false_alarms_per_1000_bars"],
            }
            for name in ("reduce", "exit")
        ]
    )
    assert bocd_keys
    sizes = ", ".join(f"{k}: {m[f'conformal/set_size_{k}_fraction']:.3f}" for k in range(5))
    recall = ", ".join(
        f"{k.split('/')[-1]} {m[k]:.3f}" for k in m if k.startswith("holdout/recall/")
    )
    support = ", ".join(
        f"{k.split('/')[-1]} {int(m[k])}" for k in m if k.startswith("holdout/support/")
    )
    bc = cfg.regime.bocd
    cmd = f".venv/bin/python benchmarks/bench_regime.py --config {args.config}"
    if args.repeats != 2000:
        cmd += f" --repeats {args.repeats}"
    text = f"""## Regime classifier

Command: `{cmd}` · machine: 2-core x86_64 CPU, no GPU ({platform.processor() or "x86_64"},
Python {sys.version.split()[0]}), shared with other jobs · date: {dt.date.today().isoformat()}.
Data: the `{args.config}` profile's synthetic bars ({len(bars)} bars, {bars["symbol"].nunique()}
symbols, seed {cfg.seed}); targets are the generator's true regimes; held out: the last
{cfg.regime.holdout_fraction:.0%} of the time range. Featurize {feat_s:.1f} s;
`train_one(SPECS['regime'], ...)` (walk-forward {m["time/walk_forward_seconds"]:.1f} s,
refit {m["time/refit_seconds"]:.1f} s, BOCD, conformal, plots, export) {train_s:.1f} s in all.

### Walk-forward comparison ({cfg.regime.n_folds} expanding folds, purge {cfg.regime.purge} +
embargo {cfg.regime.embargo} bars; selection by {cfg.regime.selection_metric})

{_md_table(comparison)}

### Held-out span: selected model ({best}) vs baselines

{_md_table(holdout)}

Per-class recall: {recall} (support: {support}).

### Conformal sets (split conformal, LAC score, target {m["conformal/target_coverage"]:.2f})

Empirical held-out coverage **{m["conformal/coverage"]:.3f}** (target
{m["conformal/target_coverage"]:.2f}, calibrated on {int(m["conformal/n_calibration"])} rows),
mean set size {m["conformal/mean_set_size"]:.3f}, qhat {m["conformal/qhat"]:.4f};
set-size fractions {sizes}. ECE (top-label, 10 bins) {m["holdout/ece"]:.4f}.

### BOCD changepoints

On series with known change points (10 changes each, hazard 1/300, R = 300, window 24; an
alarm is an upward crossing of the threshold; detected = alarm within 48 bars):

{_md_table(bocd_known, "{:.2f}")}

On the generator's regime switches (every symbol, all labelled rows; config hazard
{bc.hazard:.4f}, R = {bc.max_run_length}, window {bc.window}):

{_md_table(bocd_gen, "{:.3f}")}

### ONNX export and latency (onnxruntime 1 thread vs native `predict_proba`, µs)

Selected model parity on the held-out rows: max abs diff **{outcome.onnx_max_abs_diff:.2e}**
(gate {cfg.training.parity_tolerance:.0e}); opset {outcome.opset}. Every candidate:

{_md_table(latency, "{:.1f}")}

### Gates

{_md_table(gates, "{:.4g}")}
"""
    latency_fmt = latency.copy()
    latency_fmt["parity_max_abs_diff"] = latency_fmt["parity_max_abs_diff"].map("{:.2e}".format)
    text = text.replace(_md_table(latency, "{:.1f}"), _md_table(latency_fmt, "{:.1f}"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)
    print(f"artifacts in {out_dir}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
