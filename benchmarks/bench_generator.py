"""Synthetic generator vs real bars: stylized facts, per-regime Sharpe, what models can learn.

Run: ``.venv/bin/python benchmarks/bench_generator.py [--config demo] [--long-bars 300000]``

Compares the demo profile's synthetic bars (and the null world) with the real bars shipped
by the ``backtesting`` package (GOOG daily, EURUSD hourly; offline) on the stylized facts the
generator is tested against, then measures on the synthetic bars: each regime's annualized
Sharpe (on a long single-symbol series, so sampling noise is small), the fixed 1.0x Sharpe
of every strategy arm, whether volume alone names the regime, and what the feature set with
a quick LightGBM reaches on the true regimes next to the persistence baseline. Writes
``benchmarks/results/generator.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "generator.md"
sys.path.insert(0, str(ROOT))

from configs.settings import load_config  # noqa: E402
from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN  # noqa: E402
from pipelines.data.synthetic import generate_bars, generate_null_bars, generate_symbol  # noqa: E402
from pipelines.evaluation.risk import bars_per_year  # noqa: E402


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _acf(x: np.ndarray, lag: int) -> float:
    d = x - x.mean()
    return float(d[:-lag] @ d[lag:] / (d @ d))


def _sample_bars(name: str) -> pd.DataFrame:
    from backtesting import test as bt

    raw = getattr(bt, name)
    frame = raw.rename(columns=str.lower).reset_index(names="ts")
    frame["ts"] = pd.to_datetime(frame["ts"]).dt.tz_localize("UTC")
    frame["symbol"] = name
    return frame[["ts", "symbol", "open", "high", "low", "close", "volume"]]


def stylized_facts(name: str, bars: pd.DataFrame) -> dict[str, object]:
    """Facts per symbol, averaged over symbols (log returns of closes)."""
    rows = []
    ann = bars_per_year(bars["ts"], bars["symbol"])
    for _, g in bars.groupby("symbol"):
        r = np.diff(np.log(g["close"].to_numpy(dtype=np.float64)))
        sq = r**2
        rows.append(
            {
                "kurt": float(pd.Series(r).kurt()),
                "acf1": _acf(r, 1),
                "max_acf_1_5": max(abs(_acf(r, k)) for k in range(1, 6)),
                "acf_sq_1": _acf(sq, 1),
                "acf_sq_5": _acf(sq, 5),
                "acf_sq_20": _acf(sq, 20),
                "min_acf_sq_1_20": min(_acf(sq, k) for k in range(1, 21)),
                "ann_vol": float(r.std(ddof=1) * np.sqrt(ann)),
                "ann_sharpe": float(r.mean() / r.std(ddof=1) * np.sqrt(ann)),
                "bars": float(r.size + 1),
            }
        )
    mean = pd.DataFrame(rows).mean()
    return {
        "data": name,
        "bars/symbol": int(mean["bars"]),
        "bars/year": round(ann),
        "excess kurtosis": mean["kurt"],
        "acf r lag 1": mean["acf1"],
        "max |acf r| 1-5": mean["max_acf_1_5"],
        "acf r^2 lag 1": mean["acf_sq_1"],
        "acf r^2 lag 5": mean["acf_sq_5"],
        "acf r^2 lag 20": mean["acf_sq_20"],
        "min acf r^2 1-20": mean["min_acf_sq_1_20"],
        "ann. vol": mean["ann_vol"],
        "buy&hold Sharpe": mean["ann_sharpe"],
    }


def per_regime(cfg_long: object, seed: int) -> pd.DataFrame:
    bars = generate_symbol("SYN1", cfg_long, seed)  # type: ignore[arg-type]
    r = np.diff(np.log(bars["close"].to_numpy()))
    regime = bars[TRUE_REGIME_COLUMN].to_numpy()[1:]
    rows = []
    for k, name in enumerate(REGIMES):
        rr = r[regime == k]
        rows.append(
            {
                "regime": name,
                "share of bars": rr.size / r.size,
                "vol per bar": float(rr.std(ddof=1)),
                "ann. Sharpe": float(rr.mean() / rr.std(ddof=1) * np.sqrt(8766.0)),
                "excess kurtosis": float(pd.Series(rr).kurt()),
            }
        )
    return pd.DataFrame(rows)


def arm_sharpes(bars: pd.DataFrame, cost: float) -> pd.DataFrame:
    """Fixed 1.0x on each arm: per-bar P&L, equal weight across symbols, annualized."""
    from pipelines.strategies import compute_signals
    from pipelines.strategies.signals import ARM_NAMES

    signals = compute_signals(bars)
    nxt = bars.groupby("symbol")["close"].shift(-1) / bars["close"] - 1.0
    ann = bars_per_year(bars["ts"], bars["symbol"])
    rows = []
    for arm in ARM_NAMES:
        s = signals[arm].astype(float)
        turn = s.groupby(bars["symbol"]).diff().fillna(s).abs()
        pnl = (s * nxt - cost * turn).fillna(0.0)
        port = pnl.groupby(bars["ts"]).mean().to_numpy()
        rows.append({"arm": arm, "Sharpe": float(port.mean() / port.std(ddof=1) * np.sqrt(ann))})
    return pd.DataFrame(rows)


def volume_only(bars: pd.DataFrame) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    feats, labels, times = [], [], []
    for _, g in bars.groupby("symbol"):
        lv = np.log(g["volume"].to_numpy())
        lv = lv - lv.mean()
        feats.append(np.c_[lv, np.diff(lv, prepend=lv[0])])
        labels.append(g[TRUE_REGIME_COLUMN].to_numpy())
        times.append(g["ts"].astype("int64").to_numpy())
    x, y, ts = np.vstack(feats), np.concatenate(labels), np.concatenate(times)
    train = ts <= np.quantile(ts, 0.7)
    model = LogisticRegression(max_iter=1000, class_weight="balanced").fit(x[train], y[train])
    return float(balanced_accuracy_score(y[~train], model.predict(x[~train])))


def learnability(bars: pd.DataFrame, horizon: int, seed: int) -> tuple[pd.DataFrame, str]:
    """Features + quick LightGBM / logistic vs persistence and prior on the true regimes."""
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, log_loss, recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pipelines.evaluation.splits import time_split_bars
    from pipelines.features import FEATURE_NAMES, featurize
    from pipelines.models.regime.candidates import PersistenceClassifier, persistence_inputs

    fs = featurize(bars)
    frame = fs.frame
    truth = bars[["ts", "symbol", TRUE_REGIME_COLUMN]]
    y = frame[["ts", "symbol"]].merge(truth, on=["ts", "symbol"], how="left")[TRUE_REGIME_COLUMN]
    y = y.to_numpy(dtype=np.int64)
    x = frame[list(FEATURE_NAMES)].to_numpy()
    split = time_split_bars(frame, 0.3, purge_bars=horizon, embargo_bars=horizon)
    tr, te = split.earlier, split.later
    k = len(REGIMES)
    out = []

    def add(name: str, proba: np.ndarray, seconds: float) -> None:
        pred = proba.argmax(axis=1)
        out.append(
            {
                "model": name,
                "balanced_accuracy": float(balanced_accuracy_score(y[te], pred)),
                "log_loss": float(log_loss(y[te], np.clip(proba, 1e-12, 1), labels=range(k))),
                "fit_s": seconds,
                "recall": recall_score(y[te], pred, labels=range(k), average=None),
            }
        )

    t0 = time.perf_counter()
    lgbm = LGBMClassifier(
        n_estimators=300,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    ).fit(x[tr], y[tr])
    add("lightgbm (43 features)", lgbm.predict_proba(x[te]), time.perf_counter() - t0)
    t0 = time.perf_counter()
    logit = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[tr], y[tr])
    add("logistic (43 features)", logit.predict_proba(x[te]), time.perf_counter() - t0)
    t0 = time.perf_counter()
    lag = persistence_inputs(frame, y, horizon)
    pers = PersistenceClassifier(n_classes=k).fit(lag[tr], y[tr])
    add(
        f"persistence (label at t-{horizon})", pers.predict_proba(lag[te]), time.perf_counter() - t0
    )
    prior = np.bincount(y[tr], minlength=k) / tr.size
    add("prior (majority)", np.tile(prior, (te.size, 1)), 0.0)
    table = pd.DataFrame(out)
    recalls = {
        r["model"]: ", ".join(f"{n} {v:.2f}" for n, v in zip(REGIMES, r["recall"], strict=True))
        for r in out
    }
    note = "\n".join(f"- {m}: {v}" for m, v in recalls.items())
    return table.drop(columns="recall"), note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--long-bars", type=int, default=300000)
    args = parser.parse_args()
    cfg = load_config(args.config, environ={})
    syn_cfg = cfg.data.synthetic
    seed = cfg.seed
    t_start = time.perf_counter()
    bars = generate_bars(syn_cfg, seed)
    null = generate_null_bars(syn_cfg, seed)
    facts = [
        stylized_facts(f"synthetic ({args.config}, seed {seed})", bars),
        stylized_facts("null world (GARCH-t)", null),
        stylized_facts("GOOG daily (backtesting)", _sample_bars("GOOG")),
        stylized_facts("EURUSD hourly (backtesting)", _sample_bars("EURUSD")),
    ]
    facts_df = pd.DataFrame(facts)
    long_cfg = syn_cfg.model_copy(update={"n_bars": args.long_bars, "symbols": ["SYN1"]})
    regimes = pd.concat(
        [per_regime(long_cfg, s).assign(seed=s) for s in (seed, seed + 1)], ignore_index=True
    )
    arms = arm_sharpes(bars, 0.0).rename(columns={"Sharpe": "Sharpe, no cost"})
    arms["Sharpe, 1 bp/turn"] = arm_sharpes(bars, 1e-4)["Sharpe"]
    arms_null = arm_sharpes(null, 0.0)
    arms["null world, no cost"] = arms_null["Sharpe"]
    vol_ba = volume_only(bars)
    learn, recall_note = learnability(bars, cfg.regime.label_horizon, seed)
    elapsed = time.perf_counter() - t_start

    n_sym = len(syn_cfg.symbols)
    text = f"""## Synthetic generator vs real bars

Command: `.venv/bin/python benchmarks/bench_generator.py --config {args.config}` · machine:
2-core x86_64 CPU, no GPU ({platform.machine()}, Python {platform.python_version()}), shared
with other jobs · date: {dt.date.today().isoformat()} · {elapsed:.0f} s in all.
Synthetic: the `{args.config}` profile ({n_sym} symbols x {syn_cfg.n_bars} hourly bars, 24x7,
seed {seed}); null world: `generate_null_bars` on the same config. Real: the `backtesting`
package's GOOG daily and EURUSD hourly samples. Log returns of closes; figures per symbol,
averaged over symbols; annualized with bars per year measured from the timestamps.

### Stylized facts

{_md_table(facts_df)}

Test bands (`tests/data_synthetic/test_data_synthetic_stylized.py`): excess kurtosis 3-30,
ACF of squared returns > 0.02 at every lag 1-20, |ACF of returns| < 0.05 at lags 1-5.

### Per-regime annualized Sharpe ({args.long_bars} bars of SYN1, two seeds)

{_md_table(regimes)}

Design values: TREND_UP +1.9, TREND_DOWN -1.9 (drift and jumps), RANGE 0, PANIC -2.0; the
test band is +-3. The sampling s.d. of one regime's Sharpe here is about 0.3.

### Fixed 1.0x on each strategy arm (demo bars; equal weight across symbols)

{_md_table(arms)}

### Volume alone

A logistic on log-volume level and change (fit on the first 70 % of time, balanced classes)
reaches balanced accuracy **{vol_ba:.3f}** on the last 30 % (chance 0.25; the previous
generator's per-regime volume levels gave 0.89).

### What the features can learn

True regimes; held out: the last 30 %; purge + embargo {cfg.regime.label_horizon} bars each.

{_md_table(learn)}

Per-class recall:
{recall_note}
"""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
