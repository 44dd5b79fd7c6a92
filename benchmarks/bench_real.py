"""Real-data scorecard: every trainer on real bars, its metric next to each baseline, gate verdicts.

Run: ``.venv/bin/python benchmarks/bench_real.py [--config demo] [--seeds 7 8 9] [--data PATH ...]
[--arch sp500 nasdaq] [--models regime bandit sizer] [--budget config|small] [--train-share 0.8]``

"Was it right": each slot trains on the first 80 % of each set and is judged by its own gates
there; the same fit is then scored on the last 20 %, which no training, selection or gate saw
(``benchmarks/forward.py``), and the card puts the gate's bounds and the later truth side by
side.

Datasets: the ``backtesting`` package's GOOG daily and EURUSD hourly samples (offline), the
``arch`` package's S&P 500 and NASDAQ daily 1999-2018 (offline, a dev extra), plus
any ``--data`` file or folder (CSV/Parquet in the bar contract), each loaded and checked the
way the flow does (``check_bars``), featurized with ``featurize``. Every model is trained by
the spec list (``pipelines.models.specs.train_one``, the sizer after the bandit),
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


#: 20-year daily equity indexes that the ``arch`` package ships offline (dev extra).
ARCH_SETS: tuple[str, ...] = ("sp500", "nasdaq")


def read_arch(name: str) -> Any:
    """One of ``arch``'s bundled daily index series as a raw bar table (UTC session dates)."""
    import importlib

    from pipelines.data.sources import RawFrame

    module = importlib.import_module(f"arch.data.{name}")
    frame = module.load()
    ts = pd.DatetimeIndex(frame.index).tz_localize("UTC")
    table = pd.DataFrame(
        {
            "ts": ts,
            "open": frame["Open"].to_numpy(),
            "high": frame["High"].to_numpy(),
            "low": frame["Low"].to_numpy(),
            "close": frame["Close"].to_numpy(),
            "volume": frame["Volume"].to_numpy(),
        }
    )
    return RawFrame(origin=f"arch.data.{name}", frame=table, symbol=name.upper())


def load_datasets(
    sample: Iterable[str], paths: Iterable[str], settings: Settings, arch_sets: Iterable[str] = ()
) -> list[Dataset]:
    """Sample bar sets, ``arch``'s indexes and ``--data`` paths, read and checked as the flow
    does."""
    from pipelines.data.checks import check_bars
    from pipelines.data.sources import read_files, read_sample
    from pipelines.features import featurize

    sources = [(f"{name} (backtesting)", read_sample([name])) for name in sample]
    sources += [(f"{name.upper()} (arch)", [read_arch(name)]) for name in arch_sets]
    sources += [(Path(p).name, read_files(p)) for p in paths]
    out = []
    for name, raws in sources:
        checked = check_bars(raws, settings.data.checks)
        bars = checked.bars
        out.append(Dataset(name, bars, featurize(bars).frame))
    return out


@dataclass
class Truth:
    """One slot on one set and seed: its gate bounds on the first part, the later truth."""

    model: str
    dataset: str
    seed: int
    gate: str = ""
    test: str = "-"
    confirm: str = "-"
    published: bool = False
    later: str = "-"
    right: str = "n/a"
    error: str | None = None
    champion: Any = None  # benchmarks.forward.ChampionTruth of the slot's champion stage


def run_model(
    model: str,
    data: Dataset,
    settings: Settings,
    seed: int,
    root: Path,
    upstream: dict[str, Any] | None = None,
    train_share: float = 0.8,
) -> tuple[ModelResult, Truth]:
    """Train one model of the registry on the first ``train_share`` of the set through its own
    stages (same named random streams, same parity tolerance, its upstream results), judge it
    with its gates, and score the same fit on the rest of the set (``benchmarks/forward.py``)."""
    from benchmarks.forward import champion_truth, cut_inputs, fit_forward, format_gate, verdict
    from pipelines.models.base import TrainInputs
    from pipelines.models.specs import SPECS
    from pipelines.strategies import compute_signals

    spec = SPECS[model]
    out_dir = root / data.name.split()[0] / str(seed) / model
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    upstream = upstream if upstream is not None else {}
    signals = compute_signals(data.bars)
    earlier, _ = cut_inputs(data.bars, data.features, signals, train_share)
    before = {u: upstream[u].result for u in spec.after if u in upstream}
    after = {u: upstream[u].forward_result for u in spec.after if u in upstream}
    earlier = TrainInputs(earlier.bars, earlier.features, earlier.signals, before)
    later = TrainInputs(data.bars, data.features, signals, after)
    cfg = spec.config(settings)
    # held-out rows of the later run: the last (1 - train_share) of the set, a little less
    # so no held-out row precedes the cut; nearly all of it on the "test" key
    later_cfg = cfg.model_copy(
        update={"holdout_fraction": 0.95 * (1.0 - train_share), "confirm_fraction": 0.02}
    )
    try:
        fwd = fit_forward(
            spec,
            earlier,
            later,
            cfg,
            later_cfg,
            seed,
            settings.training.parity_tolerance,
            out_dir,
        )
        upstream[model] = fwd
    except Exception as exc:  # a scorecard records a failure and goes on to the next model
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        err = f"{type(exc).__name__}: {exc} ({where})"
        return (
            ModelResult(model, data.name, seed, time.perf_counter() - t0, error=err),
            Truth(model, data.name, seed, error=err),
        )
    first, twin, later_gate = fwd.primary()
    truth = Truth(
        model,
        data.name,
        seed,
        gate=first.name,
        test=format_gate(first),
        confirm=format_gate(twin) if twin is not first else "-",
        published=fwd.published,
        later=format_gate(later_gate),
        right=verdict(fwd.published, later_gate),
        champion=champion_truth(fwd),
    )
    return (
        ModelResult(
            model,
            data.name,
            seed,
            time.perf_counter() - t0,
            metrics=fwd.metrics,
            gates=[g.as_dict() for g in fwd.gates],
        ),
        truth,
    )


def truth_section(truths: list[Truth]) -> str:
    """The "was it right" table: the gate's bounds next to the later truth, per slot."""
    lines = [
        "### Was it right? (gates on the first part, truth on the rest)",
        "",
        "| set | seed | slot | gate | test | confirmation | shipped | later (no run saw it) "
        "| right? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in truths:
        if t.error is not None:
            lines.append(f"| {t.dataset} | {t.seed} | {t.model} | error: {t.error} |||||| |")
            continue
        lines.append(
            f"| {t.dataset} | {t.seed} | {t.model} | {t.gate} | {t.test} | {t.confirm} | "
            f"{'yes' if t.published else 'no'} | {t.later} | {t.right} |"
        )
    shipped = [t for t in truths if t.error is None and t.published]
    wrong = [t for t in truths if t.right.startswith("WRONG")]
    lines += [
        "",
        f"{len(shipped)} of {sum(t.error is None for t in truths)} slot runs shipped; "
        f"{len(wrong)} decisions were wrong on the later bars. Test and confirmation cells are "
        "the gate's estimate [its one-sided 95 % bound's interval] on the first part; a slot "
        "ships only if every gate passed there. Later: the same estimate of the same fit on "
        "the bars after the cut. Right: shipped and the later estimate is above the gate's "
        "threshold, or blocked and the later lower bound is not.",
        "",
    ]
    return "\n".join(lines)


def champion_section(truths: list[Truth]) -> str:
    """What each slot's champion stage would ship on the first part (against the bot's
    fallback, as a fresh store's first run does), and whether that was right on the rest."""
    rows = [t for t in truths if t.error is None and t.champion is not None]
    if not rows:
        return ""
    lines = [
        "### What shipped, and was it right? (champion stage on the first part, truth on the rest)",
        "",
        "| set | seed | slot | challenger | lift over the fallback, test | confirmation | "
        "ships | later lift (no run saw it) | right? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in rows:
        c = t.champion
        lines.append(
            f"| {t.dataset} | {t.seed} | {t.model} | {c.challenger} | {c.test} | {c.confirm} | "
            f"{c.shipped} | {c.later} | {c.right} |"
        )
    promoted = [t for t in rows if t.champion.shipped != "fallback"]
    wrong = [t for t in rows if t.champion.right.startswith("WRONG")]
    lines += [
        "",
        f"{len(promoted)} of {len(rows)} slot runs replaced the fallback; {len(wrong)} champion "
        "decisions were wrong on the later bars. The challenger is the best eligible candidate "
        "(learned model whose own gates passed, or a rule whose ONNX parity holds) on the test "
        "span; it ships only if its lift's one-sided 95 % lower bound is above zero on the test "
        "and on the confirmation span. Later: the same candidate's lift over the fallback on "
        "the bars after the cut (estimate [interval] where it is also the later challenger). "
        "The sizer rows run on the learned bandit's arm stream (a promoted bandit rule is not "
        "handed on here, as the flow would).",
        "",
    ]
    return "\n".join(lines)


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
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--sample", nargs="*", default=["GOOG", "EURUSD"])
    parser.add_argument("--arch", nargs="*", default=list(ARCH_SETS), choices=list(ARCH_SETS))
    parser.add_argument("--train-share", type=float, default=0.8)
    parser.add_argument("--data", nargs="*", default=[], help="extra CSV/Parquet files or folders")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--budget", choices=["small", "config"], default="config")
    args = parser.parse_args()
    overrides = SMALL_BUDGET if args.budget == "small" else {}
    settings = load_config(args.config, overrides=overrides, environ={})
    t_start = time.perf_counter()
    datasets = load_datasets(args.sample, args.data, settings, args.arch)
    results: dict[str, list[ModelResult]] = {m: [] for m in args.models}
    truths: list[Truth] = []
    with tempfile.TemporaryDirectory() as tmp:
        for data in datasets:
            for seed in args.seeds:
                trained: dict[str, Any] = {}  # upstream results (the sizer reads the bandit's)
                for model in args.models:
                    res, truth = run_model(
                        model, data, settings, seed, Path(tmp), trained, args.train_share
                    )
                    results[model].append(res)
                    truths.append(truth)
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
    text = (
        f"""## Real-data scorecard

Command: `.venv/bin/python benchmarks/bench_real.py --config {args.config} --seeds {seeds}
--budget {args.budget}` · machine: 2-core x86_64 CPU, no GPU ({platform.machine()}, Python
{platform.python_version()}), shared with other jobs · date: {dt.date.today().isoformat()} ·
{elapsed:.0f} s in all.

Data:
{data_lines}

Every model is trained by its own trainer as the training flow calls it (held-out span,
baselines and gates as the trainer defines them today) on the first {args.train_share:.0%} of
each set; the rest is scored afterwards with the same fit (benchmarks/forward.py).
Budgets: {budget}.
Bracketed figures are the trainer's block-bootstrap intervals where it reports them.
"Published" means every gate the trainer returned passed.

"""
        + truth_section(truths)
        + champion_section(truths)
        + "\n".join(model_section(m, rs) for m, rs in results.items())
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
