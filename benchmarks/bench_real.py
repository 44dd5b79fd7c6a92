"""Real-data scorecard: every trainer on real bars, its metric next to each baseline, gate verdicts.

Run: ``.venv/bin/python benchmarks/bench_real.py [--config demo] [--seeds 7 8] [--data PATH ...]
[--models regime bandit sizer] [--budget small|config]``

Datasets: the ``backtesting`` package's GOOG daily and EURUSD hourly samples (offline), plus
any ``--data`` file or folder (CSV/Parquet in the bar contract), each loaded and checked the
way the flow does (``check_bars``), featurized with ``featurize``. Every model is trained by
the model registry (``pipelines.models.registry.train_one``, the sizer after the bandit),
as the flow calls it; ``--budget small`` (the default) overrides the training budgets so the
whole card runs in minutes on 2 cores (the overrides are listed in the output). The model
loop is :func:`run_model` only, so pointing the card at another entry point (a registry of
model specs) is a change there. Writes ``benchmarks/results/real.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "real.md"
sys.path.insert(0, str(ROOT))

from configs.settings import Settings, load_config  # noqa: E402

#: the models of the registry, in training order (imported lazily: torch, SB3, LightGBM)
MODELS: tuple[str, ...] = ("regime", "bandit", "sizer", "metalabel")

#: Small training budgets (dotted config overrides) for ``--budget small``.
SMALL_BUDGET: dict[str, Any] = {
    "regime.n_folds": 2,
    "regime.lightgbm.n_estimators": 100,
    "regime.random_forest.n_estimators": 30,
    "regime.random_forest.max_depth": 8,
    "bandit.epochs": 10,
    "bandit.n_bootstrap": 200,
    "sizer.total_timesteps": 4096,
    "sizer.n_envs": 4,
    "sizer.n_steps": 128,
    "sizer.n_epochs": 2,
}

#: Per model: (metric, direction) pairs to tabulate, and how to find the model's and the
#: baselines' figures among the trainer's flat metric keys.
HEADLINES: dict[str, list[tuple[str, str]]] = {
    "regime": [("log_loss", "lower"), ("balanced_accuracy", "higher")],
    "bandit": [("dr", "higher")],
    "sizer": [("cvar_bar", "lower"), ("sharpe", "higher")],
    "metalabel": [("brier", "lower"), ("precision", "higher"), ("pnl_per_bar", "higher")],
}


@dataclass
class Dataset:
    """Checked bars and their features, ready for the trainers."""

    name: str
    bars: pd.DataFrame
    features: pd.DataFrame


@dataclass
class ModelResult:
    """One model on one dataset and seed: the trainer's metrics and gates, or its error."""

    model: str
    dataset: str
    seed: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def published(self) -> bool:
        return self.error is None and all(g["passed"] for g in self.gates)


def load_datasets(sample: Iterable[str], paths: Iterable[str], settings: Settings) -> list[Dataset]:
    """Sample bar sets and ``--data`` paths, read and checked as the flow does."""
    from pipelines.data.checks import check_bars
    from pipelines.data.sources import read_files, read_sample
    from pipelines.features import featurize

    sources = [(f"{name} (backtesting)", read_sample([name])) for name in sample]
    sources += [(Path(p).name, read_files(p)) for p in paths]
    out = []
    for name, raws in sources:
        checked = check_bars(raws, settings.data.checks)
        bars = checked.bars
        out.append(Dataset(name, bars, featurize(bars).frame))
    return out


def run_model(
    model: str,
    data: Dataset,
    settings: Settings,
    seed: int,
    root: Path,
    upstream: dict[str, Any] | None = None,
) -> ModelResult:
    """Train one model of the registry exactly as the flow's training task does (same named
    random streams, same parity tolerance, its upstream results); keep metrics and gates."""
    from pipelines.models.registry import SPECS, train_one

    spec = SPECS[model]
    out_dir = root / data.name.split()[0] / str(seed) / model
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        outcome = train_one(
            spec,
            data.bars,
            data.features,
            spec.config(settings),
            seed,
            out_dir,
            parity_tolerance=settings.training.parity_tolerance,
            upstream={u: upstream[u] for u in spec.after if upstream and u in upstream},
        )
        if upstream is not None:
            upstream[model] = outcome
    except Exception as exc:  # a scorecard records a failure and goes on to the next model
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        return ModelResult(
            model, data.name, seed, time.perf_counter() - t0, error=f"{exc} ({where})"
        )
    return ModelResult(
        model,
        data.name,
        seed,
        time.perf_counter() - t0,
        metrics=dict(outcome.metrics),
        gates=[g.as_dict() for g in outcome.gates],
    )


def _contenders(model: str, metric: str, metrics: dict[str, float]) -> dict[str, str]:
    """Column label -> metric key of the model and of each baseline for one headline metric."""
    if model == "bandit":
        keys = {
            k.split("/")[1]: k for k in metrics if k.startswith("ope/") and k.endswith(f"/{metric}")
        }
        keys.update(
            {
                k.split("/")[1]: k
                for k in metrics
                if k.startswith("lift/") and k.endswith(f"/{metric}")
            }
        )
        return dict(sorted(keys.items(), key=lambda kv: (kv[0] != "bandit", kv[0])))
    keys = {"model": f"holdout/{metric}"} if f"holdout/{metric}" in metrics else {}
    for k in sorted(metrics):
        parts = k.split("/")
        if len(parts) == 3 and parts[0] == "baseline" and parts[2] == metric:
            keys[parts[1]] = k
    return keys


def _cell(metrics: dict[str, float], key: str) -> str:
    value = metrics[key]
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    if low is not None and high is not None:
        return f"{value:.5g} [{low:.4g}, {high:.4g}]"
    return f"{value:.4g}"


def model_section(model: str, results: list[ModelResult]) -> str:
    """One markdown section per model: headline metrics vs baselines, gates, verdict."""
    lines = [f"### {model}", ""]
    ok = [r for r in results if r.error is None]
    for metric, direction in HEADLINES[model]:
        cols: list[str] = []
        for r in ok:
            for c in _contenders(model, metric, r.metrics):
                if c not in cols:
                    cols.append(c)
        if not cols:
            continue
        lines += [f"{metric} ({direction} is better):", ""]
        lines.append("| dataset | seed | " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * (len(cols) + 2))
        for r in ok:
            keys = _contenders(model, metric, r.metrics)
            cells = [_cell(r.metrics, keys[c]) if c in keys else "-" for c in cols]
            lines.append(f"| {r.dataset} | {r.seed} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Gates:", "", "| dataset | seed | gates (value vs threshold) | published | s |"]
    lines.append("|---|---|---|---|---|")
    for r in results:
        if r.error is not None:
            lines.append(f"| {r.dataset} | {r.seed} | error: {r.error} | no | {r.seconds:.0f} |")
            continue
        gates = "; ".join(
            f"{g['name']} {g['value']:.4g} vs {g['threshold']:.4g} "
            f"{'pass' if g['passed'] else 'FAIL'}"
            for g in r.gates
        )
        verdict = "yes" if r.published else "no"
        lines.append(f"| {r.dataset} | {r.seed} | {gates} | {verdict} | {r.seconds:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    parser.add_argument("--sample", nargs="*", default=["GOOG", "EURUSD"])
    parser.add_argument("--data", nargs="*", default=[], help="extra CSV/Parquet files or folders")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--budget", choices=["small", "config"], default="small")
    args = parser.parse_args()
    overrides = SMALL_BUDGET if args.budget == "small" else {}
    settings = load_config(args.config, overrides=overrides, environ={})
    t_start = time.perf_counter()
    datasets = load_datasets(args.sample, args.data, settings)
    results: dict[str, list[ModelResult]] = {m: [] for m in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        for data in datasets:
            for seed in args.seeds:
                trained: dict[str, Any] = {}  # upstream results (the sizer reads the bandit's)
                for model in args.models:
                    res = run_model(model, data, settings, seed, Path(tmp), trained)
                    results[model].append(res)
                    status = "error" if res.error else ("published" if res.published else "blocked")
                    print(f"{data.name} seed {seed} {model}: {status} ({res.seconds:.0f} s)")
    elapsed = time.perf_counter() - t_start
    data_lines = "\n".join(
        f"- {d.name}: {d.bars['symbol'].nunique()} symbol(s), {len(d.bars)} bars, "
        f"{d.bars['ts'].min():%Y-%m-%d} to {d.bars['ts'].max():%Y-%m-%d}"
        for d in datasets
    )
    budget = (
        ", ".join(f"`{k}={v}`" for k, v in overrides.items())
        if overrides
        else "the config's own budgets"
    )
    seeds = " ".join(str(s) for s in args.seeds)
    text = f"""## Real-data scorecard

Command: `.venv/bin/python benchmarks/bench_real.py --config {args.config} --seeds {seeds}
--budget {args.budget}` · machine: 2-core x86_64 CPU, no GPU ({platform.machine()}, Python
{platform.python_version()}), shared with other jobs · date: {dt.date.today().isoformat()} ·
{elapsed:.0f} s in all.

Data:
{data_lines}

Every model is trained by its own trainer as the training flow calls it (held-out span,
baselines and gates as the trainer defines them today). Budgets: {budget}.
Bracketed figures are the trainer's block-bootstrap intervals where it reports them.
"Published" means every gate the trainer returned passed.

""" + "\n".join(model_section(m, rs) for m, rs in results.items())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
