"""Walk-forward validation with purge and embargo, and the pick of the best candidate.

Folds cut on time, one cut for all symbols, so no fold trains on one symbol's future while
validating on another's past. The window expands: fold ``k`` trains on everything before its
validation block minus a gap of ``purge + embargo`` bars. The purge removes rows whose label
window (``label_horizon`` bars ahead) would reach into validation; the embargo adds more room
because features and regimes are serially correlated.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from pipelines.interrupt import checkpoint
from pipelines.models.base import NotTrainable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    """Row positions of one walk-forward fold."""

    index: int
    train: np.ndarray
    val: np.ndarray


def bar_interval(ts: pd.Series, symbols: pd.Series | None = None) -> pd.Timedelta:
    """Median spacing of consecutive bars (within each symbol when ``symbols`` is given)."""
    groups = np.zeros(len(ts), dtype=np.int64) if symbols is None else np.asarray(symbols)
    frame = pd.DataFrame({"ts": pd.to_datetime(pd.Series(ts)).to_numpy(), "s": groups})
    diffs = frame.sort_values(["s", "ts"]).groupby("s")["ts"].diff().dropna()
    diffs = diffs[diffs > pd.Timedelta(0)]
    if diffs.empty:
        raise ValueError("need at least two distinct timestamps per symbol to infer the interval")
    return pd.Timedelta(diffs.median())


def walk_forward_folds(
    ts: pd.Series | np.ndarray,
    n_folds: int,
    gap: pd.Timedelta,
) -> list[Fold]:
    """Expanding-window folds over the distinct timestamps of ``ts``.

    The distinct timestamps are cut into ``n_folds + 1`` equal blocks; fold ``k`` validates on
    block ``k`` (1-based) and trains on rows at least ``gap`` before that block starts
    (``train_ts <= val_start - gap``). Folds left with no training row are skipped.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    t = pd.to_datetime(pd.Series(ts)).to_numpy()
    uniq = np.unique(t)
    if uniq.shape[0] < n_folds + 1:
        raise ValueError(f"{uniq.shape[0]} distinct timestamps cannot make {n_folds} folds")
    edges = np.linspace(0, uniq.shape[0], n_folds + 2).round().astype(int)
    folds = []
    for k in range(1, n_folds + 1):
        start, stop = uniq[edges[k]], uniq[edges[k + 1] - 1]
        val = np.flatnonzero((t >= start) & (t <= stop))
        train = np.flatnonzero(t <= start - gap.to_timedelta64())
        if train.size == 0 or val.size == 0:
            logger.warning("fold %d skipped: %d train, %d val rows", k, train.size, val.size)
            continue
        folds.append(Fold(index=k, train=train, val=val))
    if not folds:
        raise NotTrainable("no walk-forward fold has both training and validation rows")
    return folds


def log_loss(y: np.ndarray, proba: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log probability of the true class (clipped at ``eps``)."""
    p = np.clip(proba[np.arange(y.shape[0]), y.astype(np.int64)], eps, 1.0)
    return float(-np.mean(np.log(p)))


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """log loss, balanced accuracy (mean recall over the classes present) and accuracy."""
    pred = proba.argmax(axis=1)
    with warnings.catch_warnings():
        # a short validation span may lack a class the model predicts; that is expected
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(y, pred))
    return {
        "log_loss": log_loss(y, proba),
        "balanced_accuracy": balanced,
        "accuracy": float(np.mean(pred == y)),
    }


@dataclass(frozen=True)
class Contender:
    """One model in the comparison: how to build it and which input matrix it reads."""

    name: str
    kind: str  # "candidate" or "baseline"
    factory: Callable[[], Any]
    inputs: str  # key into the matrices passed to ``walk_forward_compare``


def walk_forward_compare(
    contenders: list[Contender],
    matrices: Mapping[str, np.ndarray],
    y: np.ndarray,
    folds: list[Fold],
    n_classes: int,
    proba_fn: Callable[[Any, np.ndarray, int], np.ndarray],
) -> pd.DataFrame:
    """Fit every contender on every fold; one row per (contender, fold) with its metrics."""
    rows: list[dict[str, Any]] = []
    usable = []
    for fold in folds:
        if np.unique(y[fold.train]).size >= 2:
            usable.append(fold)
        else:
            logger.warning(
                "walk-forward fold %d skipped: one class only in its training part", fold.index
            )
    if not usable:
        raise NotTrainable(
            "no walk-forward fold has two or more regimes in its training part; "
            "use more history or fewer folds (regime.n_folds)"
        )
    for c in contenders:
        X = matrices[c.inputs]
        for fold in usable:
            checkpoint()
            model = c.factory()
            t0 = time.perf_counter()
            model.fit(X[fold.train], y[fold.train])
            fit_s = time.perf_counter() - t0
            proba = proba_fn(model, X[fold.val], n_classes)
            m = classification_metrics(y[fold.val], proba)
            rows.append(
                {
                    "model": c.name,
                    "kind": c.kind,
                    "fold": fold.index,
                    "n_train": int(fold.train.size),
                    "n_val": int(fold.val.size),
                    **m,
                    "fit_seconds": fit_s,
                }
            )
            logger.info(
                "walk-forward %s fold %d: log_loss=%.4f balanced_accuracy=%.4f (%.1fs)",
                c.name,
                fold.index,
                m["log_loss"],
                m["balanced_accuracy"],
                fit_s,
            )
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over folds per model (one row each, in first-seen order)."""
    order = list(dict.fromkeys(table["model"]))
    agg = table.groupby("model", sort=False).agg(
        kind=("kind", "first"),
        folds=("fold", "count"),
        log_loss_mean=("log_loss", "mean"),
        log_loss_std=("log_loss", "std"),
        balanced_accuracy_mean=("balanced_accuracy", "mean"),
        balanced_accuracy_std=("balanced_accuracy", "std"),
        accuracy_mean=("accuracy", "mean"),
        fit_seconds_mean=("fit_seconds", "mean"),
    )
    return agg.loc[order].reset_index()


def select_best(summary: pd.DataFrame, metric: str) -> str:
    """The candidate (never a baseline) with the best mean ``metric``; ties keep list order."""
    cands = summary[summary["kind"] == "candidate"]
    if cands.empty:
        raise ValueError("no candidate in the comparison")
    col = f"{metric}_mean"
    if metric == "log_loss":
        best = cands[col].idxmin()
    elif metric == "balanced_accuracy":
        best = cands[col].idxmax()
    else:
        raise ValueError(f"unknown selection metric {metric!r}")
    return str(cands.loc[best, "model"])
