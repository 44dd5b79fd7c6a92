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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from configs.metalabel import MetaLabelConfig
from pipelines.evaluation.bootstrap import Interval, PairedStat, mean_difference
from pipelines.evaluation.calibration import (
    expected_calibration_error,
    plot_reliability,
    reliability_curve,
)
from pipelines.evaluation.gates import Gate
from pipelines.evaluation.importance import ImportanceInputs, column_groups
from pipelines.evaluation.spans import (
    Span,
    confirm_cut,
    paired_span_cis,
    put_span_intervals,
    span_key,
    span_masks,
)
from pipelines.export.onnx import OnnxExport, make_session, run
from pipelines.features.names import model_feature_columns
from pipelines.interrupt import checkpoint
from pipelines.models.base import Evaluation, NotTrainable, TrainInputs
from pipelines.models.champion import (
    Candidate,
    Champion,
    ChampionDecision,
    challenge,
    eligibility,
)
from pipelines.models.metalabel.candidates import (
    VETO_THRESHOLD,
    onnx_keep,
    per_arm_filter_export,
    per_arm_keep,
    trade_values,
)
from pipelines.models.metalabel.export import INPUT_COLUMNS, export_onnx, input_columns
from pipelines.seeding import Streams
from pipelines.strategies import ARM_NAMES, N_ARMS, arm_rewards
from pipelines.timeconv import from_epoch_ns, to_epoch_ns

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
        features[["ts", "symbol", *model_feature_columns(features.columns)]],
        on=["ts", "symbol"],
        how="inner",
    )
    return joined.sort_values(["ts", "symbol", "arm"], kind="stable", ignore_index=True)


def design(trades: pd.DataFrame, columns: Sequence[str] = INPUT_COLUMNS) -> np.ndarray:
    """[N, F + 12] float32: the features, then the arm one-hot (``columns`` order:
    :func:`input_columns` of the feature set; :data:`INPUT_COLUMNS` for the 43)."""
    names = list(columns[:-N_ARMS])
    x = np.zeros((len(trades), len(columns)), dtype=np.float32)
    x[:, : len(names)] = trades[names].to_numpy(dtype=np.float32)
    x[np.arange(len(trades)), len(names) + trades["arm"].to_numpy()] = 1.0
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
    holdout_bars: pd.DataFrame  # the held-out bar rows (ts, symbol): the bootstrap's rows
    columns: tuple[str, ...] = INPUT_COLUMNS  # the graph's input columns


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
    prior: ArmPrior

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


@dataclass(frozen=True)
class ArmPrior:
    """P(win | arm, volatility bucket) fitted on the fit span: the meta-labeler's comparator.

    Why this baseline: most of what a filter gains by dropping trades is arm mix (the arm with
    the lowest win rate loses its trades); a table of win rates per arm (and per volatility
    bucket) does that without any model. The meta-labeler is worth shipping only if it beats
    filtering by this table. Cells shrink to their arm's rate and arms to the base rate with
    ``prior_strength`` pseudo-trades, so an empty cell reads as its arm.
    """

    edges: np.ndarray  # [n_buckets - 1] inner volatility edges
    rate: np.ndarray  # [N_ARMS, n_buckets]
    feature: str

    @property
    def n_buckets(self) -> int:
        return int(self.rate.shape[1])

    def cells(self, trades: pd.DataFrame) -> np.ndarray:
        """Cell index ``arm * n_buckets + bucket`` of each trade."""
        vol = trades[self.feature].to_numpy(dtype=np.float64)
        bucket = np.searchsorted(self.edges, vol, side="right")
        return np.asarray(trades["arm"].to_numpy() * self.n_buckets + bucket, dtype=np.int64)

    def predict(self, trades: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.rate.reshape(-1)[self.cells(trades)], dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "edges": self.edges.tolist(), "rate": self.rate.tolist()}


def fit_arm_prior(trades: pd.DataFrame, cfg: MetaLabelConfig) -> ArmPrior:
    """The per-arm (x volatility bucket) win-rate table of ``trades`` (see :class:`ArmPrior`)."""
    if cfg.prior_vol_feature not in trades.columns:
        raise ValueError(f"metalabel.prior_vol_feature {cfg.prior_vol_feature!r} is no feature")
    vol = trades[cfg.prior_vol_feature].to_numpy(dtype=np.float64)
    qs = np.linspace(0, 1, cfg.prior_vol_buckets + 1)[1:-1]
    edges = np.unique(np.quantile(vol, qs)) if len(qs) else np.zeros(0)
    n_b = cfg.prior_vol_buckets
    bucket = np.minimum(np.searchsorted(edges, vol, side="right"), n_b - 1)
    arm = trades["arm"].to_numpy()
    win = trades["win"].to_numpy(dtype=np.float64)
    m = cfg.prior_strength
    base = float(win.mean()) if len(win) else 0.5
    n_arm = np.bincount(arm, minlength=N_ARMS).astype(np.float64)
    w_arm = np.bincount(arm, weights=win, minlength=N_ARMS)
    arm_rate = (w_arm + m * base) / np.maximum(n_arm + m, _EPS)
    cell = arm * n_b + bucket
    n_cell = np.bincount(cell, minlength=N_ARMS * n_b).reshape(N_ARMS, n_b)
    w_cell = np.bincount(cell, weights=win, minlength=N_ARMS * n_b).reshape(N_ARMS, n_b)
    rate = (w_cell + m * arm_rate[:, None]) / np.maximum(n_cell + m, _EPS)
    rate = np.where(n_cell + m > 0, rate, arm_rate[:, None])
    return ArmPrior(edges, rate, cfg.prior_vol_feature)


def keep_at_share(q: np.ndarray, share: float) -> np.ndarray:
    """Weights in [0, 1] that keep the trades with the highest prior ``q``, ``share`` of them in
    all: whole cells in order of their prior, the boundary cell kept in part (every trade of it
    at the same weight), so ties never depend on the trades' order."""
    n = len(q)
    w = np.zeros(n)
    if n == 0 or share <= 0:
        return w
    target = min(share, 1.0) * n
    values, counts = np.unique(q, return_counts=True)
    taken = 0.0
    for v, c in zip(values[::-1], counts[::-1], strict=True):
        if taken >= target:
            break
        frac = min(1.0, (target - taken) / c)
        w[q == v] = frac
        taken += frac * c
    return w


def choose_threshold(
    p: np.ndarray, q: np.ndarray, reward: np.ndarray, cfg: MetaLabelConfig
) -> tuple[float, pd.DataFrame]:
    """The candidate threshold whose kept trades beat the per-arm prior's at the same kept
    share by the most net reward (out-of-fold probabilities ``p``, out-of-fold prior ``q``),
    among those keeping at least ``min_trade_share``; ties go to the lower threshold. Without
    a candidate that qualifies (no out-of-fold trades) it is the lowest candidate.

    The table's ``chosen`` column marks the returned threshold, so the report's table, the log
    line and the recommendation name the same one."""
    rows = []
    for t in cfg.thresholds:
        keep = p >= t
        share = float(keep.mean()) if len(p) else 0.0
        mean = float(reward[keep].mean()) if keep.any() else float("nan")
        prior = keep_at_share(q, share)
        lift = float(np.sum(reward * keep) - np.sum(reward * prior)) / max(len(p), 1)
        rows.append(
            {
                "threshold": t,
                "kept_share": share,
                "mean_reward_kept": mean,
                "lift_vs_arm_prior_per_trade": lift if keep.any() else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    ok = table[
        (table["kept_share"] >= cfg.min_trade_share) & table["lift_vs_arm_prior_per_trade"].notna()
    ]
    if ok.empty:
        chosen = float(min(cfg.thresholds))
    else:
        best = ok.sort_values(
            ["lift_vs_arm_prior_per_trade", "threshold"], ascending=[False, True]
        ).iloc[0]
        chosen = float(best["threshold"])
    table["chosen"] = table["threshold"] == chosen
    return chosen, table


@dataclass
class Tallies:
    """Per held-out bar row (sorted by ts, then symbol): what the filters kept, by prior cell.

    ``kept``/``prior``/``all_reward``: net reward summed over the trades the model keeps, the
    per-arm prior keeps at the model's kept share (of the bar's span), and all trades;
    ``kept_win``/``kept_n``/``win``/``n``: [bars, cells] counts for the within-arm precision."""

    ts: pd.Series
    kept: np.ndarray
    prior: np.ndarray
    all_reward: np.ndarray
    kept_win: np.ndarray
    kept_n: np.ndarray
    win: np.ndarray
    n: np.ndarray

    def within_arm(self, a: np.ndarray, _b: np.ndarray) -> float:
        """Precision of the kept trades minus their own cell's win rate on the same bars, in
        points: what the model adds inside each (arm, volatility bucket) cell, where the
        per-arm prior can do no better than the cell's rate. ``a`` holds bar row indices."""
        i = a.astype(np.int64)
        kn = self.kept_n[i].sum(axis=0)
        if kn.sum() == 0:
            return float("nan")
        nn = self.n[i].sum(axis=0)
        rate = np.divide(self.win[i].sum(axis=0), nn, out=np.zeros(nn.shape), where=nn > 0)
        return float(100.0 * (self.kept_win[i].sum(axis=0) - kn * rate).sum() / kn.sum())

    def vs_unfiltered(self, a: np.ndarray, _b: np.ndarray) -> float:
        """Precision of the kept trades minus all trades', in points (arm mix included)."""
        i = a.astype(np.int64)
        kn, nn = self.kept_n[i].sum(), self.n[i].sum()
        if kn == 0 or nn == 0:
            return float("nan")
        return float(100.0 * (self.kept_win[i].sum() / kn - self.win[i].sum() / nn))


def tally(
    bars: pd.DataFrame,
    trades: pd.DataFrame,
    keep: np.ndarray,
    q: np.ndarray,
    cells: np.ndarray,
    n_cells: int,
    span_of_trade: np.ndarray,
) -> Tallies:
    """Per-bar tallies of ``trades`` on ``bars`` (``ts``, ``symbol``, sorted); the prior keeps
    the model's kept share within each span label of ``span_of_trade``."""
    index = pd.Series(np.arange(len(bars)), index=pd.MultiIndex.from_frame(bars[["ts", "symbol"]]))
    row = index.reindex(pd.MultiIndex.from_frame(trades[["ts", "symbol"]])).to_numpy()
    if np.isnan(row.astype(np.float64)).any():
        raise ValueError("every trade must sit on one of the held-out bars")
    row = row.astype(np.int64)
    reward = trades["reward"].to_numpy(dtype=np.float64)
    win = trades["win"].to_numpy(dtype=np.float64)
    weights = np.zeros(len(trades))
    for label in np.unique(span_of_trade):
        m = span_of_trade == label
        weights[m] = keep_at_share(q[m], float(keep[m].mean()))
    nb = len(bars)

    def per_bar(values: np.ndarray) -> np.ndarray:
        return np.bincount(row, weights=values, minlength=nb)

    def per_cell(values: np.ndarray) -> np.ndarray:
        flat = np.bincount(row * n_cells + cells, weights=values, minlength=nb * n_cells)
        return flat.reshape(nb, n_cells)

    k = keep.astype(np.float64)
    return Tallies(
        bars["ts"].reset_index(drop=True),
        per_bar(reward * k),
        per_bar(reward * weights),
        per_bar(reward),
        per_cell(win * k),
        per_cell(k),
        per_cell(win),
        per_cell(np.ones(len(trades))),
    )


def filter_lifts(
    bars: pd.DataFrame,
    trades: pd.DataFrame,
    p: np.ndarray,
    prior: ArmPrior,
    threshold: float,
    cfg: MetaLabelConfig,
    seed: int,
) -> dict[str, float]:
    """The meta-labeler's lifts over the per-arm prior on the test and confirmation spans.

    ``bars``: the held-out bar rows (``ts``, ``symbol``); ``trades`` the held-out trades on
    them, ``p`` the model's P(win). Written under ``lift/...`` (test) and ``confirm/lift/...``
    with paired moving-block bootstrap intervals over bar rows (``paired_span_cis``):

    * ``lift/pnl_per_bar_vs_arm_prior``: net P&L per bar of the kept trades minus the trades
      the prior keeps at the same kept share (fraction; bps in the gate);
    * ``lift/precision_within_arm``: :meth:`Tallies.within_arm`, in points;
    * ``lift/precision_vs_unfiltered``: the old headline (arm mix included), in points, for
      the record only.
    """
    bars = bars[["ts", "symbol"]].sort_values(["ts", "symbol"], ignore_index=True)
    cut = confirm_cut(bars["ts"], cfg.confirm_fraction)
    span = np.where((trades["ts"] >= cut).to_numpy(), 1, 0)
    keep = p >= threshold
    cells = prior.cells(trades)
    t = tally(bars, trades, keep, prior.predict(trades), cells, prior.rate.size, span)
    rows = np.arange(len(bars), dtype=np.float64)

    def cis(a: np.ndarray, b: np.ndarray, stat: PairedStat) -> dict[Span, Interval]:
        return paired_span_cis(
            t.ts,
            a,
            b,
            stat,
            block=cfg.bootstrap_block,
            n=cfg.n_bootstrap,
            level=cfg.ci_level,
            seed=seed,
            confirm_fraction=cfg.confirm_fraction,
        )

    metrics: dict[str, float] = {}
    put_span_intervals(
        metrics, "lift/pnl_per_bar_vs_arm_prior", cis(t.kept, t.prior, mean_difference)
    )
    put_span_intervals(metrics, "lift/precision_within_arm", cis(rows, rows, t.within_arm))
    put_span_intervals(metrics, "lift/precision_vs_unfiltered", cis(rows, rows, t.vs_unfiltered))
    masks = span_masks(bars["ts"], cfg.confirm_fraction)
    y = trades["win"].to_numpy(dtype=np.float64)
    q = prior.predict(trades)
    for name, mask in masks.items():
        tm = span == (1 if name == "confirm" else 0)
        nbars = max(int(mask.sum()), 1)
        kept = keep & tm
        values = {
            "holdout/n_trades": float(tm.sum()),
            "holdout/n_bars": float(mask.sum()),
            "holdout/kept_share": float(kept.sum() / max(tm.sum(), 1)),
            "holdout/precision": float(y[kept].mean()) if kept.any() else float("nan"),
            "holdout/base_rate": float(y[tm].mean()) if tm.any() else float("nan"),
            "holdout/pnl_per_bar": float(t.kept[mask].sum()) / nbars,
            "baseline/arm_prior/pnl_per_bar": float(t.prior[mask].sum()) / nbars,
            "baseline/unfiltered_arm/pnl_per_bar": float(t.all_reward[mask].sum()) / nbars,
            "holdout/brier": float(np.mean((p[tm] - y[tm]) ** 2)) if tm.any() else float("nan"),
            "baseline/arm_prior/brier": float(np.mean((q[tm] - y[tm]) ** 2))
            if tm.any()
            else float("nan"),
        }
        for key, value in values.items():
            metrics[span_key(key, name)] = value
    return metrics


class MetaLabelTrainer:
    """The meta-labeler's stages for the spec list (``pipelines/models/specs.py``)."""

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
        hold_bars = inputs.features.loc[inputs.features["ts"] >= cut, ["ts", "symbol"]]
        logger.info(
            "metalabel: %d trades; fit %d, calibration %d, holdout %d",
            len(trades),
            len(fit),
            len(calib),
            len(holdout),
        )
        columns = input_columns(model_feature_columns(inputs.features.columns))
        return MetaData(trades, fit, calib, holdout, hold_bars.reset_index(drop=True), columns)

    def fit(self, data: MetaData, cfg: MetaLabelConfig, streams: Streams) -> MetaFit:
        seed = streams.seed("lightgbm")
        fit = data.fit
        x, y = design(fit, data.columns), fit["win"].to_numpy()
        # purged walk-forward on the fit part (the validation span): out-of-fold probabilities
        # and an out-of-fold per-arm prior pick the threshold; nothing held out is read here
        oof = np.full(len(fit), np.nan)
        oof_prior = np.full(len(fit), np.nan)
        ts = to_epoch_ns(fit["ts"])
        edges = np.quantile(ts, np.linspace(0, 1, cfg.n_folds + 1))
        gap = cfg.horizon + cfg.embargo
        for k in range(1, cfg.n_folds):
            checkpoint()
            cut = from_epoch_ns(edges[k])
            test = (ts >= edges[k]) & (ts < edges[k + 1] if k + 1 < cfg.n_folds else True)
            train = purged_before(fit, cut, gap)
            if train.sum() < 50 or len(np.unique(y[train])) < 2 or not test.any():
                logger.info("metalabel: fold %d skipped (%d training trades)", k, train.sum())
                continue
            oof[test] = _lgbm(cfg, seed).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
            oof_prior[test] = fit_arm_prior(fit[train], cfg).predict(fit[test])
        seen = np.isfinite(oof)
        model = _lgbm(cfg, seed).fit(x, y)
        a, b = _platt(
            model.predict_proba(design(data.calib, data.columns))[:, 1],
            data.calib["win"].to_numpy(),
        )
        calibrated = 1.0 / (1.0 + np.exp(-(a * _logit(oof[seen]) + b)))
        threshold, table = choose_threshold(
            calibrated, oof_prior[seen], fit["reward"].to_numpy()[seen], cfg
        )
        qualified = table["lift_vs_arm_prior_per_trade"].notna() & (
            table["kept_share"] >= cfg.min_trade_share
        )
        if qualified.any():
            logger.info(
                "metalabel: threshold %.2f from %d out-of-fold trades", threshold, int(seen.sum())
            )
        else:
            logger.warning(
                "metalabel: threshold %.2f, the lowest candidate: none kept at least "
                "min_trade_share=%g of the %d out-of-fold trades, so none was chosen on evidence",
                threshold,
                cfg.min_trade_share,
                int(seen.sum()),
            )
        return MetaFit(model, a, b, threshold, table, fit_arm_prior(fit, cfg))

    def evaluate(
        self, data: MetaData, fitted: MetaFit, cfg: MetaLabelConfig, streams: Streams, out_dir: Path
    ) -> Evaluation:
        hold = data.holdout
        p = fitted.predict(design(hold, data.columns))
        y = hold["win"].to_numpy()
        reward = hold["reward"].to_numpy()
        metrics: dict[str, float] = filter_lifts(
            data.holdout_bars,
            hold,
            p,
            fitted.prior,
            fitted.threshold,
            cfg,
            streams.seed("bootstrap"),
        )
        metrics.update(
            {
                "holdout/log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))),
                "holdout/ece": expected_calibration_error(np.c_[1 - p, p], y),
                "holdout/threshold": fitted.threshold,
                "train/n_trades": float(len(data.fit)),
                "train/n_calibration": float(len(data.calib)),
                "train/base_rate": float(data.fit["win"].mean()),
                "train/platt_a": fitted.a,
                "train/platt_b": fitted.b,
                "train/n_threshold_trades": float(
                    fitted.threshold_table["kept_share"].notna().sum()
                ),
            }
        )
        logger.info(
            "metalabel: P&L vs the per-arm prior %+.3f bps/bar [%+.3f, %+.3f] (test), "
            "%+.3f [%+.3f, %+.3f] (confirmation); within-arm precision %+.2f pts "
            "[%+.2f, %+.2f] (test), %+.2f [%+.2f, %+.2f] (confirmation)",
            *(
                metrics[span_key(f"lift/{k}{s}", sp)] * f
                for k, f in (("pnl_per_bar_vs_arm_prior", 1e4), ("precision_within_arm", 1.0))
                for sp in ("test", "confirm")
                for s in ("", "_ci_low", "_ci_high")
            ),
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
            "arm_prior": fitted.prior.as_dict(),
            "input_columns": list(data.columns),
        }
        (out_dir / "metalabel_export.json").write_text(
            json.dumps(
                {"threshold": fitted.threshold, "input_columns": list(data.columns)}, indent=1
            ),
            encoding="utf-8",
        )
        artifacts["export_meta"] = out_dir / "metalabel_export.json"
        return Evaluation(metrics, artifacts, params)

    def export(
        self, data: MetaData, fitted: MetaFit, cfg: MetaLabelConfig, out_dir: Path
    ) -> OnnxExport:
        path = export_onnx(
            fitted.model,
            fitted.a,
            fitted.b,
            out_dir / "metalabel.onnx",
            cfg.onnx_opset,
            data.columns,
        )
        x = design(data.holdout, data.columns)
        (got,) = run(make_session(path), x)
        return OnnxExport.checked(path, got.reshape(-1), fitted.predict(x))

    def importance_inputs(
        self, data: MetaData, fitted: MetaFit, cfg: MetaLabelConfig
    ) -> ImportanceInputs:
        """Held-out trades in the graph's columns (the arm's one-hot moves as one feature,
        ``arm``); the loss is each trade's Brier score of the calibrated P(win)."""
        hold = data.holdout.reset_index(drop=True)
        win = hold["win"].to_numpy(dtype=np.float64)
        width = len(data.columns)
        return ImportanceInputs(
            x=design(hold, data.columns),
            groups=column_groups(
                data.columns[: width - N_ARMS], {"arm": range(width - N_ARMS, width)}
            ),
            loss=lambda out, rows: (out[0].reshape(-1).astype(np.float64) - win[rows]) ** 2,
            what="Brier score per held-out trade",
            block=cfg.bootstrap_block,
            n_boot=cfg.n_bootstrap,
            level=cfg.ci_level,
        )

    def tree_model(self, fitted: MetaFit) -> Any:
        """The LightGBM classifier, for TreeSHAP on the graph's columns (before Platt)."""
        return fitted.model

    def challenge(
        self,
        data: MetaData,
        fitted: MetaFit,
        cfg: MetaLabelConfig,
        streams: Streams,
        out_dir: Path,
        learned: OnnxExport,
        learned_gates: list[Gate],
        champion: Champion,
        parity_tolerance: float,
    ) -> ChampionDecision:
        """The slot's candidates (the meta-labeler; the per-arm filter fitted on the fit span)
        against the live champion (nothing live: no filter), every one scored by the exact net
        P&L of each held-out trade under the bot's veto (``pipelines/models/metalabel/
        candidates.py``), on the held-out trades in time order."""
        hold = data.holdout.reset_index(drop=True)
        x = design(hold, data.columns)
        reward = hold["reward"].to_numpy(dtype=np.float64)
        keep_arms = per_arm_keep(data.fit)
        rule = per_arm_filter_export(
            keep_arms,
            x,
            out_dir / "candidates" / "per_arm_filter.onnx",
            cfg.onnx_opset,
            data.columns,
        )
        kept = [a for a, k in zip(ARM_NAMES, keep_arms, strict=True) if k]
        candidates = [
            Candidate("lightgbm", "learned", learned, "the calibrated LightGBM meta-labeler"),
            Candidate(
                "per_arm_filter",
                "rule",
                rule,
                f"keeps the {len(kept)} of {N_ARMS} arms with net P&L per trade > 0 on the fit "
                f"span ({', '.join(kept) or 'none'})",
            ),
        ]
        eligible = eligibility(candidates, learned_gates, parity_tolerance)
        values = {c.name: trade_values(reward, onnx_keep(c.export.path, x)) for c in candidates}
        champion, champ_keep = _champion_keep(champion, x)
        decision = challenge(
            hold["ts"],
            values,
            champion,
            trade_values(reward, champ_keep),
            candidates,
            eligible,
            cfg,
            streams.seed("champion"),
            scale=1e4,
            unit="bps",
            parity_tolerance=parity_tolerance,
            measure="exact net P&L per held-out trade under the bot's veto",
        )
        decision.metrics["champion/per_arm_filter/kept_arms"] = float(len(kept))
        if decision.challenger is not None and decision.challenger.kind == "rule":
            # the rule's graph says 1.0 or 0.0: any threshold in (0, 1] reads it alike
            decision.extras = {"threshold": VETO_THRESHOLD}
        return decision

    def extras(self, data: MetaData, fitted: MetaFit) -> dict[str, Any]:
        return {"threshold": fitted.threshold, "arm_prior": fitted.prior}


def _champion_keep(champion: Champion, x: np.ndarray) -> tuple[Champion, np.ndarray]:
    """Which held-out trades the live champion keeps; all of them (the bot's fallback: no
    filter) when nothing is live or the live graph cannot take today's inputs."""
    every = np.ones(len(x), dtype=bool)
    if champion.onnx_path is None:
        return champion, every
    try:
        return champion, onnx_keep(champion.onnx_path, x)
    except Exception as exc:  # an old contract: the bot would run without a filter too
        logger.warning(
            "metalabel: the live %s cannot be scored (%s): fallback", champion.label, exc
        )
        note = f"live {champion.label} does not take today's inputs ({exc})"
        return Champion("fallback", "fallback", note=note), every
