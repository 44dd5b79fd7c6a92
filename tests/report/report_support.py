"""A small synthetic run: real plots on small data, written by the real report writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.data.schema import REGIMES
from pipelines.evaluation.gates import Gate, check, parity_gate
from pipelines.evaluation.ope import ESTIMATORS, Estimate
from pipelines.models.bandit.plots import plot_arm_choices, plot_ope
from pipelines.models.regime.plots import plot_regime_timeline
from pipelines.models.sizer.evaluate import SizerRun
from pipelines.models.sizer.plots import plot_equity_curves, plot_lambda_trajectory
from pipelines.plots import plot_bars_overview
from pipelines.report import ModelSection, write_report

N_BARS = 240
WIDE_COLUMNS = 28
REC_DETAIL = {
    "version": "20261201T095000Z-0003",
    "sources": {"regime": "published 20261201T095000Z-0001", "bandit": "blocked"},
}
#: The regime's log-loss gate as the demo's gate rule made it: a lower bound with its estimate.
LOG_LOSS_GATE = check(
    "log_loss_lift_lower_bound",
    -0.1411,
    0.0,
    ">",
    unit="nats",
    ci=(-0.1411, -0.007684),
    estimate=-0.07,
    description="lower bound of (log loss of the strongest baseline - the model's)",
)
PRECISION_GATE = check("precision_lift_lower_bound", 0.004645, 0.0, ">", ci=(0.004645, 0.0117))
SHARPE_GATE = check("sharpe_vs_constant", 0.097, -0.0, ">=")


def _regimes(n: int) -> np.ndarray:
    return np.repeat(np.arange(len(REGIMES)), n // len(REGIMES) + 1)[:n]


def _bars(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC")
    frames = []
    for k, symbol in enumerate(("SYN1", "SYN2")):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
        frames.append(
            pd.DataFrame(
                {"ts": ts, "symbol": symbol, "close": close, "regime": np.roll(_regimes(n), k)}
            )
        )
    return pd.concat(frames, ignore_index=True)


def _ope_table() -> tuple[dict[str, dict[str, Estimate]], dict[str, float]]:
    values = {"bandit": 1.2e-4, "best_arm": 2.0e-4, "uniform": -0.5e-4}
    table = {
        name: {est: Estimate(v, v - 0.8e-4, v + 0.8e-4) for est in ESTIMATORS}
        for name, v in values.items()
    }
    for name in ("bandit", "uniform"):
        d = values[name] - values["best_arm"]
        table[f"lift/{name}"] = {est: Estimate(d, d - 0.5e-4, d + 0.5e-4) for est in ESTIMATORS}
    return table, dict(values)


def _write_ope_csv(
    table: dict[str, dict[str, Estimate]], truth: dict[str, float], path: Path
) -> Path:
    rows = []
    for name, per in table.items():
        row: dict[str, object] = {"policy": name, "true_value": truth.get(name, np.nan)}
        for est in ESTIMATORS:
            row[est] = per[est].value
            row[f"{est}_ci_low"] = per[est].low
            row[f"{est}_ci_high"] = per[est].high
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False, float_format="%.8g")
    return path


def build_sections(root: Path) -> tuple[list[ModelSection], list[Path]]:
    """Regime (published), bandit (blocked, duplicate parity gate), sizer, recommendation."""
    rng = np.random.default_rng(1)
    bars = _bars(N_BARS)
    one = bars[bars["symbol"] == "SYN1"]
    y = one["regime"].to_numpy()
    proba = rng.dirichlet(np.ones(len(REGIMES)), N_BARS)
    proba[np.arange(N_BARS), y] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    regime_dir = root / "regime"
    timeline = plot_regime_timeline(
        one["ts"],
        one["close"].to_numpy(),
        y,
        proba,
        rng.uniform(0, 0.3, N_BARS),
        REGIMES,
        regime_dir / "regime_timeline.png",
        reduce_threshold=0.5,
        exit_threshold=0.8,
    )
    wide = pd.DataFrame(
        {f"fold_{i}_balanced_accuracy": rng.uniform(0.3, 0.7, 5) for i in range(WIDE_COLUMNS)}
    )
    wide.insert(0, "model", [f"candidate_model_{i}" for i in range(5)])
    wide_csv = regime_dir / "regime_walk_forward.csv"
    wide.to_csv(wide_csv, index=False)
    regime = ModelSection(
        model="regime",
        status="blocked",
        detail="blocked: gate(s) log_loss_lift_lower_bound failed",
        gates=[LOG_LOSS_GATE, parity_gate(3e-7, 1e-5)],
        metrics={"holdout/balanced_accuracy": 0.61, "train/fit_seconds": 1.5},
        images=[timeline],
        tables=[wide_csv, _reliability_csv(regime_dir / "regime_reliability.csv")],
    )

    bandit_dir = root / "bandit"
    decisions = one[["ts", "symbol"]].assign(chosen=rng.integers(0, 12, N_BARS), true_regime=y)
    arms = [f"S{i}" for i in range(1, 13)]
    table, truth = _ope_table()
    bandit = ModelSection(
        model="bandit",
        status="blocked",
        detail="blocked by gate(s) bandit_dr_lift_vs_best_arm",
        gates=[
            Gate("bandit_dr_lift_vs_best_arm", -0.8, 0.0, False, ">", "bps", span="confirm"),
            Gate("bandit_dr_lift_vs_uniform", 1.7, 0.0, True, ">", "bps"),
            {
                "name": "bandit_onnx_parity",
                "value": 2e-7,
                "threshold": 1e-5,
                "passed": True,
                "direction": "<=",
            },
            parity_gate(2e-7, 1e-5),
        ],
        metrics={"lift/bandit_vs_best_arm/dr": -0.8e-4, "holdout/top_arm_share": 0.4},
        images=[
            plot_arm_choices(decisions, arms, bandit_dir / "arm_choices.png"),
            plot_ope(table, truth, bandit_dir / "ope_estimates.png"),
        ],
        tables=[_write_ope_csv(table, truth, bandit_dir / "ope_table.csv")],
    )

    ts = one["ts"].reset_index(drop=True)
    grow = np.full(N_BARS, np.log(175.0) / N_BARS)
    runs = {
        "cvar_ppo": SizerRun(ts, np.expm1(grow), pd.DataFrame(), np.ones(N_BARS)),
        "fixed_1x": SizerRun(ts, rng.normal(0.0, 1e-3, N_BARS), pd.DataFrame(), np.ones(N_BARS)),
    }
    sizer_dir = root / "sizer"
    sizer_dir.mkdir(parents=True, exist_ok=True)
    history = pd.DataFrame(
        {
            "update": np.arange(1, 11),
            "lambda": np.linspace(0, 1, 10),
            "var": np.linspace(0.02, 0.01, 10),
            "cvar": np.linspace(0.03, 0.015, 10),
            "bound": np.full(10, 0.02),
        }
    )
    metrics_csv = sizer_dir / "holdout_metrics.csv"
    pd.DataFrame(
        {
            "sizer": ["cvar_ppo", "fixed_1x"],
            "ann_return": [174.0, 0.02],
            "sharpe": [3.1, 0.2],
            "max_drawdown": [0.05, 0.2],
            "cvar_bar": [0.0012, 0.0021],
        }
    ).to_csv(metrics_csv, index=False)
    sizer = ModelSection(
        model="sizer",
        status="published",
        detail="version 20261201T095000Z-0002 (sequence 1)",
        gates=[
            SHARPE_GATE,
            {
                "name": "cvar_bar_improvement_vs_fixed_1x",
                "value": 43.0,
                "threshold": 20.0,
                "passed": True,
                "direction": ">=",
                "unit": "%",
                "ci_low": 31.0,
                "ci_high": 52.0,
                "description": "CVaR(5%) per bar, reduction against fixed 1.0x",
            },
        ],
        images=[
            plot_equity_curves(runs, sizer_dir / "equity_curves.png"),
            plot_lambda_trajectory(history, sizer_dir / "lambda_trajectory.png"),
        ],
        tables=[metrics_csv],
    )

    rec_csv = root / "recommendation" / "recommendation.csv"
    rec_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "family": ["ema_cross", "breakout"],
            "regime": ["TREND_UP", "PANIC"],
            "position_size_multiplier": [1.2, 0.5],
            "risk_per_trade": [0.012, 0.005],
            "samples": [120, 31],
            "basis": ["models", "models"],
        }
    ).to_csv(rec_csv, index=False)
    recommendation = ModelSection(
        model="recommendation", status="published", detail=REC_DETAIL, tables=[rec_csv]
    )
    meta_dir = root / "metalabel"
    meta_dir.mkdir(parents=True, exist_ok=True)
    thresholds = meta_dir / "metalabel_thresholds.csv"
    pd.DataFrame(
        {"threshold": [0.45, 0.5, 0.52], "kept_share": 0.0, "mean_reward_kept": np.nan}
    ).to_csv(thresholds, index=False)
    metalabel = ModelSection(
        model="metalabel",
        status="blocked",
        detail="blocked: gate(s) precision_lift_lower_bound failed",
        gates=[PRECISION_GATE, check("kept_trade_share", 0.0, 0.1, ">=")],
        tables=[thresholds],
    )
    overview = plot_bars_overview(bars, root / "report" / "bars_overview.png")
    return [regime, bandit, sizer, recommendation, metalabel], [overview]


def _reliability_csv(path: Path) -> Path:
    """The demo's over-confident regime bins (ECE about 0.2)."""
    pd.DataFrame(
        {
            "bin": [3, 5, 9],
            "confidence": [0.37, 0.55, 0.93],
            "accuracy": [0.27, 0.30, 0.067],
            "count": [1541, 1100, 60],
        }
    ).to_csv(path, index=False)
    return path


#: What ``CheckReport.to_dict()`` gives for two clean symbols.
DATA_CHECKS = {
    "rows_in": 2 * N_BARS,
    "rows_out": 2 * N_BARS,
    "quarantined": {},
    "unsorted": 0,
    "gap_count": 0,
    "quarantine_path": None,
    "files": [
        {"origin": f"synthetic:{s}", "rows": N_BARS, "kept": N_BARS, "quarantined": {}}
        for s in ("SYN1", "SYN2")
    ],
    "symbols": [
        {"symbol": s, "rows": N_BARS, "interval": "1h", "sessions": "24x7 (inferred)"}
        for s in ("SYN1", "SYN2")
    ],
    "gaps": [],
}


def build_report(root: Path) -> Path:
    """The synthetic run's ``index.html``."""
    sections, data_images = build_sections(root)
    summary = {
        "status": "published",
        "run_id": "20261201T095000Z",
        "store": "file://" + "/very/long/path" * 30,
        "data_hash": "f" * 64,
    }
    checks = DATA_CHECKS
    return write_report(
        root / "report", "edgeflow run 20261201T095000Z", summary, sections, checks, data_images
    )
