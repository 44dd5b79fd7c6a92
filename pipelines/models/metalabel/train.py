"""The meta-labeler: P(an arm's trade is profitable net of costs | the 43 features, the arm).

Meta-labeling (Lopez de Prado, *Advances in Financial Machine Learning*, ch. 3): the rule
strategies say *which side*; a second model says *whether to take the trade*. A trade is an
arm's entry (its signal turns on or flips) followed for ``horizon`` bars with costs, exactly
the P&L the bandit's rewards use. Trades are split in time; every purge and embargo is
counted in bars per symbol. LightGBM learns on the fit part, Platt scaling on a later,
disjoint calibration part maps its scores to probabilities, and a purged walk-forward on the
fit part picks the filter threshold. The gates (``pipelines.evaluation.gates``) ask that
filtering at that threshold raises precision and net P&L per bar over the unfiltered trades
on the held-out span, each with a block-bootstrap lower bound above zero.

Platt rather than isotonic calibration: the exported graph must reproduce the framework's
probabilities within the shared parity tolerance, and a smooth map keeps the tree
ensemble's float32 differences small, while an isotonic step function amplifies them
wherever two blocks meet.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from configs.metalabel import MetaLabelConfig
from pipelines.evaluation.calibration import (
    expected_calibration_error,
    plot_reliability,
    reliability_curve,
)
from pipelines.evaluation.ope import block_bootstrap_starts, resample_indices
from pipelines.export.onnx import OnnxExport, make_session, run
from pipelines.features import FEATURE_NAMES
from pipelines.interrupt import checkpoint
from pipelines.models.base import Evaluation, ModelResult, NotTrainable, TrainInputs
from pipelines.models.metalabel.export import INPUT_COLUMNS, export_onnx
from pipelines.seeding import Streams
from pipelines.strategies import ARM_NAMES, N_ARMS, arm_rewards

logger = logging.getLogger(__name__)

MODEL_NAME = "metalabel"
_EPS = 1e-6


def entry_trades(
    bars: pd.DataFrame,
    signals: pd.DataFrame,
    features: pd.DataFrame,
    cfg: MetaLabelConfig,
) -> pd.DataFrame:
    """One row per arm entry with a complete forward window, joined to its bar's features.

    An entry is a bar where an arm's signal is non-zero and differs from its previous bar's
    (turns on or flips side). Columns: ``ts``, ``symbol``, ``bar`` (position in its symbol),
    ``arm`` (index), ``side``, the 43 features, ``reward`` (net forward P&L over ``horizon``
    bars, costs included) and ``win`` (reward > 0). Sorted by (ts, symbol, arm).
    """
    rewards = arm_rewards(bars, signals, cfg.horizon, cfg.cost_bps, cfg.slippage_bps)
    sym = bars["symbol"].to_numpy()
    order = np.lexsort((bars["ts"].to_numpy(), sym))
    s = signals.to_numpy(dtype=np.float64)[order]
    r = rewards.to_numpy(dtype=np.float64)[order]
    sym_sorted = sym[order]
    first = np.r_[True, sym_sorted[1:] != sym_sorted[:-1]]
    prev = np.vstack([np.zeros((1, N_ARMS)), s[:-1]])
    prev[first] = 0.0
    entry = (s != 0) & (s != prev) & np.isfinite(r)
    rows, arms = np.nonzero(entry)
    block = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    keys = bars.iloc[order[rows]][["ts", "symbol"]].reset_index(drop=True)
    trades = keys.assign(
        bar=rows - starts[block[rows]],
        arm=arms.astype(np.int64),
        side=np.sign(s[rows, arms]).astype(np.int8),
        reward=r[rows, arms],
    )
    trades["win"] = (trades["reward"] > 0).astype(np.int64)
    joined = trades.merge(
        features[["ts", "symbol", *FEATURE_NAMES]], on=["ts", "symbol"], how="inner"
    )
    return joined.sort_values(["ts", "symbol", "arm"], kind="stable", ignore_index=True)


def design(trades: pd.DataFrame) -> np.ndarray:
    """[N, 43 + 12] float32: the features, then the arm one-hot (``INPUT_COLUMNS`` order)."""
    x = np.zeros((len(trades), len(INPUT_COLUMNS)), dtype=np.float32)
    x[:, : len(FEATURE_NAMES)] = trades[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    x[np.arange(len(trades)), len(FEATURE_NAMES) + trades["arm"].to_numpy()] = 1.0
    return x


def purged_before(trades: pd.DataFrame, cut: pd.Timestamp, gap: int) -> np.ndarray:
    """Mask of trades before ``cut`` whose label window (plus ``gap`` bars) ends before the
    first bar at or after ``cut`` of the same symbol: the purge counted in bars per symbol."""
    first_after = trades[trades["ts"] >= cut].groupby("symbol")["bar"].min()
    limit = trades["symbol"].map(first_after).fillna(np.inf).to_numpy()
    return ((trades["ts"] < cut) & (trades["bar"].to_numpy() + gap < limit)).to_numpy()


@dataclass
class MetaData:
    """Trades and their three time-ordered, purged, disjoint parts."""

    trades: pd.DataFrame
    fit: pd.DataFrame
    calib: pd.DataFrame
    holdout: pd.DataFrame
    holdout_bars: int


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q))


@dataclass
class MetaFit:
    """LightGBM on the fit part, Platt scaling ``sigmoid(a * logit(p) + b)``, the threshold."""

    model: Any
    a: float
    b: float
    threshold: float
    threshold_table: pd.DataFrame

    def predict(self, x: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.model.predict_proba(x)[:, 1], dtype=np.float64)
        return np.asarray(1.0 / (1.0 + np.exp(-(self.a * _logit(raw) + self.b))))


def _lgbm(cfg: MetaLabelConfig, seed: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=cfg.n_estimators,
        learning_rate=cfg.learning_rate,
        num_leaves=cfg.num_leaves,
        min_child_samples=cfg.min_child_samples,
        subsample=1.0,
        colsample_bytree=1.0,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )


def _platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        return 1.0, 0.0
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw)[:, None], y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def choose_threshold(
    p: np.ndarray, reward: np.ndarray, cfg: MetaLabelConfig
) -> tuple[float, pd.DataFrame]:
    """The candidate threshold with the best mean net reward per kept trade, among those that
    keep at least ``min_trade_share`` of the trades (out-of-fold probabilities)."""
    rows = []
    for t in cfg.thresholds:
        keep = p >= t
        share = float(keep.mean()) if len(p) else 0.0
        mean = float(reward[keep].mean()) if keep.any() else float("nan")
        rows.append({"threshold": t, "kept_share": share, "mean_reward_kept": mean})
    table = pd.DataFrame(rows)
    ok = table[(table["kept_share"] >= cfg.min_trade_share) & table["mean_reward_kept"].notna()]
    if ok.empty:
        return float(min(cfg.thresholds)), table
    best = ok.sort_values(["mean_reward_kept", "threshold"], ascending=[False, True]).iloc[0]
    return float(best["threshold"]), table


def _filter_lifts(
    p: np.ndarray, y: np.ndarray, reward: np.ndarray, threshold: float, per_bar: float
) -> tuple[float, float]:
    keep = p >= threshold
    precision = float(y[keep].mean()) if keep.any() else float("nan")
    prec_lift = precision - float(y.mean())
    pnl_lift = float(np.sum(np.where(keep, 0.0, -reward))) / len(reward) * per_bar
    return prec_lift, pnl_lift


def bootstrap_lifts(
    p: np.ndarray,
    y: np.ndarray,
    reward: np.ndarray,
    threshold: float,
    per_bar: float,
    cfg: MetaLabelConfig,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Precision lift and net P&L per bar lift of filtering, with moving-block bootstrap CIs
    over the time-ordered trades (blocks keep overlapping trades' dependence)."""
    prec, pnl = _filter_lifts(p, y, reward, threshold, per_bar)
    starts = block_bootstrap_starts(len(p), cfg.bootstrap_block, cfg.n_bootstrap, rng)
    idx = resample_indices(starts, cfg.bootstrap_block, len(p))
    draws = np.array([_filter_lifts(p[i], y[i], reward[i], threshold, per_bar) for i in idx])
    lo, hi = (1 - cfg.ci_level) / 2, (1 + cfg.ci_level) / 2
    out: dict[str, float] = {}
    for j, (key, value) in enumerate((("precision", prec), ("pnl_per_bar", pnl))):
        col = draws[:, j][np.isfinite(draws[:, j])]
        out[f"lift/{key}"] = value
        out[f"lift/{key}_ci_low"] = float(np.quantile(col, lo)) if len(col) else float("nan")
        out[f"lift/{key}_ci_high"] = float(np.quantile(col, hi)) if len(col) else float("nan")
    return out


class MetaLabelTrainer:
    """The meta-labeler's stages for the model registry."""

    def prepare(self, inputs: TrainInputs, cfg: MetaLabelConfig, streams: Streams) -> MetaData:
        trades = entry_trades(inputs.bars, inputs.signals, inputs.features, cfg)
        if len(trades) < 200:
            raise NotTrainable(f"too few arm entries to train the meta-labeler: {len(trades)}")
        gap = cfg.horizon + cfg.embargo
        cut = trades["ts"].quantile(1 - cfg.holdout_fraction)
        holdout = trades[trades["ts"] >= cut]
        train = trades[purged_before(trades, cut, gap)]
        cal_cut = train["ts"].quantile(1 - cfg.calibration_fraction)
        calib = train[train["ts"] >= cal_cut]
        fit = train[purged_before(train, cal_cut, gap)]
        if min(len(fit), len(calib), len(holdout)) < 50:
            raise NotTrainable(
                f"meta-labeler split too small: fit {len(fit)}, calibration {len(calib)}, "
                f"holdout {len(holdout)} trades"
            )
        hold_bars = inputs.features[inputs.features["ts"] >= cut]
        logger.info(
            "metalabel: %d trades; fit %d, calibration %d, holdout %d",
            len(trades),
            len(fit),
            len(calib),
            len(holdout),
        )
        return MetaData(trades, fit, calib, holdout, max(len(hold_bars), 1))

    def fit(self, data: MetaData, cfg: MetaLabelConfig, streams: Streams) -> MetaFit:
        seed = streams.seed("lightgbm")
        fit = data.fit
        x, y = design(fit), fit["win"].to_numpy()
        # purged walk-forward on the fit part: out-of-fold probabilities pick the threshold
        oof = np.full(len(fit), np.nan)
        edges = np.quantile(fit["ts"].astype("int64"), np.linspace(0, 1, cfg.n_folds + 1))
        ts = fit["ts"].astype("int64").to_numpy()
        gap = cfg.horizon + cfg.embargo
        for k in range(1, cfg.n_folds):
            checkpoint()
            cut = pd.Timestamp(int(edges[k]), tz="UTC")
            test = (ts >= edges[k]) & (ts < edges[k + 1] if k + 1 < cfg.n_folds else True)
            train = purged_before(fit, cut, gap)
            if train.sum() < 50 or len(np.unique(y[train])) < 2 or not test.any():
                continue
            oof[test] = _lgbm(cfg, seed).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
        seen = np.isfinite(oof)
        model = _lgbm(cfg, seed).fit(x, y)
        a, b = _platt(model.predict_proba(design(data.calib))[:, 1], data.calib["win"].to_numpy())
        calibrated = 1.0 / (1.0 + np.exp(-(a * _logit(oof[seen]) + b)))
        threshold, table = choose_threshold(calibrated, fit["reward"].to_numpy()[seen], cfg)
        return MetaFit(model, a, b, threshold, table)

    def evaluate(
        self, data: MetaData, fitted: MetaFit, cfg: MetaLabelConfig, streams: Streams, out_dir: Path
    ) -> Evaluation:
        hold = data.holdout
        p = fitted.predict(design(hold))
        y = hold["win"].to_numpy()
        reward = hold["reward"].to_numpy()
        base = float(data.fit["win"].mean())
        per_bar = len(hold) / data.holdout_bars  # trades per held-out bar
        metrics: dict[str, float] = {
            "holdout/n_trades": float(len(hold)),
            "holdout/n_bars": float(data.holdout_bars),
            "holdout/base_rate": float(y.mean()),
            "holdout/brier": float(np.mean((p - y) ** 2)),
            "holdout/log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))),
            "baseline/base_rate/brier": float(np.mean((base - y) ** 2)),
            "holdout/ece": expected_calibration_error(np.c_[1 - p, p], y),
            "holdout/threshold": fitted.threshold,
            "holdout/kept_share": float(np.mean(p >= fitted.threshold)),
            "holdout/precision": float(y[p >= fitted.threshold].mean())
            if np.any(p >= fitted.threshold)
            else float("nan"),
            "baseline/unfiltered_arm/precision": float(y.mean()),
            "holdout/pnl_per_bar": float(np.sum(reward[p >= fitted.threshold])) / data.holdout_bars,
            "baseline/unfiltered_arm/pnl_per_bar": float(np.sum(reward)) / data.holdout_bars,
            "train/n_trades": float(len(data.fit)),
            "train/n_calibration": float(len(data.calib)),
            "train/base_rate": base,
            "train/platt_a": fitted.a,
            "train/platt_b": fitted.b,
        }
        metrics.update(
            bootstrap_lifts(
                p, y, reward, fitted.threshold, per_bar, cfg, streams.numpy("bootstrap")
            )
        )
        curve = reliability_curve(np.c_[1 - p, p], y)
        artifacts = {
            "calibration": plot_reliability(
                curve,
                metrics["holdout/ece"],
                out_dir / "metalabel_calibration.png",
                title="Meta-labeler reliability (held-out trades)",
            ),
            "reliability": out_dir / "metalabel_reliability.csv",
            "thresholds": out_dir / "metalabel_thresholds.csv",
            "per_arm": out_dir / "metalabel_per_arm.csv",
        }
        curve.to_csv(artifacts["reliability"], index=False, float_format="%.6f")
        fitted.threshold_table.to_csv(artifacts["thresholds"], index=False, float_format="%.6f")
        keep = p >= fitted.threshold
        per_arm = (
            pd.DataFrame({"arm": hold["arm"].to_numpy(), "win": y, "reward": reward, "keep": keep})
            .groupby("arm")
            .apply(
                lambda g: pd.Series(
                    {
                        "trades": len(g),
                        "base_rate": g["win"].mean(),
                        "kept_share": g["keep"].mean(),
                        "precision_kept": g.loc[g["keep"], "win"].mean(),
                        "mean_reward_bps": g["reward"].mean() * 1e4,
                        "mean_reward_kept_bps": g.loc[g["keep"], "reward"].mean() * 1e4,
                    }
                ),
                include_groups=False,
            )
        )
        per_arm.index = [ARM_NAMES[int(i)] for i in per_arm.index]
        per_arm.to_csv(artifacts["per_arm"], index_label="arm", float_format="%.6f")
        params = {
            **cfg.model_dump(mode="json"),
            "threshold": fitted.threshold,
            "platt": {"a": fitted.a, "b": fitted.b},
            "input_columns": list(INPUT_COLUMNS),
        }
        (out_dir / "metalabel_export.json").write_text(
            json.dumps(
                {"threshold": fitted.threshold, "input_columns": list(INPUT_COLUMNS)}, indent=1
            ),
            encoding="utf-8",
        )
        artifacts["export_meta"] = out_dir / "metalabel_export.json"
        return Evaluation(metrics, artifacts, params)

    def export(
        self, data: MetaData, fitted: MetaFit, cfg: MetaLabelConfig, out_dir: Path
    ) -> OnnxExport:
        path = export_onnx(
            fitted.model, fitted.a, fitted.b, out_dir / "metalabel.onnx", cfg.onnx_opset
        )
        x = design(data.holdout)
        (got,) = run(make_session(path), x)
        return OnnxExport.checked(path, got.reshape(-1), fitted.predict(x))

    def extras(self, data: MetaData, fitted: MetaFit) -> dict[str, Any]:
        return {"threshold": fitted.threshold}


def train_metalabel(
    bars: pd.DataFrame,
    features: pd.DataFrame,
    cfg: MetaLabelConfig,
    seed: int,
    out_dir: Path,
    signals: pd.DataFrame | None = None,
    parity_tolerance: float = 1e-5,
) -> ModelResult:
    """Train, calibrate, evaluate, export and gate the meta-labeler outside a flow."""
    from pipelines.models.registry import SPECS, train_one

    return train_one(
        SPECS["metalabel"], bars, features, cfg, seed, out_dir, signals, parity_tolerance
    )
