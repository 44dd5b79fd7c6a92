"""The candidate models and the baselines they must beat.

Every model is a plain scikit-learn-compatible estimator built fresh by a factory, so walk-forward
folds never share state. Candidates see the 43 features; the baselines see nothing (majority
class), two inputs a user would try first (recent return and realized volatility), or the
last label already known (persistence: regimes last, so "same as h bars ago" is hard to beat).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from configs.regime import RegimeConfig
from pipelines.data.schema import REGIMES

logger = logging.getLogger(__name__)

#: Names of the baselines, in report order.
BASELINES: tuple[str, ...] = ("majority", "two_input_logistic")
#: The persistence baseline (built by ``make_baseline``; its input is ``persistence_inputs``).
PERSISTENCE = "persistence"
#: Columns of the two-input baseline.
BASELINE_INPUTS: tuple[str, ...] = ("recent_return", "realized_vol")


def make_candidate(name: str, cfg: RegimeConfig, seed: int) -> Any:
    """A fresh, unfitted candidate estimator (``predict_proba`` over the classes it saw)."""
    if name == "lightgbm":
        p = cfg.lightgbm
        # No explicit objective: LightGBM picks binary or multiclass from the classes it sees,
        # so a walk-forward fold with only two regimes (short real histories) still trains.
        return LGBMClassifier(
            n_estimators=p.n_estimators,
            learning_rate=p.learning_rate,
            num_leaves=p.num_leaves,
            min_child_samples=p.min_child_samples,
            subsample=p.subsample,
            subsample_freq=1,
            colsample_bytree=p.colsample_bytree,
            reg_lambda=p.reg_lambda,
            random_state=seed,
            n_jobs=cfg.n_jobs,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
    if name == "random_forest":
        q = cfg.random_forest
        return RandomForestClassifier(
            n_estimators=q.n_estimators,
            max_depth=q.max_depth,
            min_samples_leaf=q.min_samples_leaf,
            max_features=q.max_features,
            max_samples=q.max_samples,
            random_state=seed,
            n_jobs=cfg.n_jobs,
        )
    if name == "logistic":
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("clf", LogisticRegression(C=cfg.logistic.C, max_iter=cfg.logistic.max_iter)),
            ]
        )
    raise ValueError(f"unknown candidate {name!r}; expected lightgbm, random_forest or logistic")


def make_baseline(name: str, cfg: RegimeConfig) -> Any:
    """A fresh, unfitted baseline: ``majority`` or ``two_input_logistic``."""
    if name == "majority":
        # "prior" predicts the most frequent class and the class frequencies as probabilities.
        return DummyClassifier(strategy="prior")
    if name == "two_input_logistic":
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("clf", LogisticRegression(max_iter=cfg.logistic.max_iter)),
            ]
        )
    if name == PERSISTENCE:
        return PersistenceClassifier(n_classes=len(REGIMES))
    raise ValueError(f"unknown baseline {name!r}; expected one of {(*BASELINES, PERSISTENCE)}")


class PersistenceClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the regime from the last label already known: the one of bar ``t - h``.

    A label at bar ``s`` looks ``h`` bars ahead, so at bar ``t`` the newest label whose window
    has closed is that of ``t - h`` (``persistence_inputs``). ``fit`` counts, on the training
    rows, how often class ``j`` follows known class ``k`` ``h`` bars later, so
    ``predict_proba`` is a smoothed row of that ``h``-step transition matrix (a calibrated
    probability, not a one-hot with infinite log-loss when the regime changed). Rows whose
    known label is missing (``-1``: the first ``h`` bars, unlabelled bars) get the class prior.

    ``X`` is [N, 1] (or [N]) integer lagged labels; ``alpha`` is the Laplace pseudo-count.
    """

    def __init__(self, n_classes: int = len(REGIMES), alpha: float = 1.0) -> None:
        self.n_classes = n_classes
        self.alpha = alpha

    def _lagged(self, X: Any) -> np.ndarray:
        lag = np.asarray(X, dtype=np.float64)
        lag = lag[:, 0] if lag.ndim == 2 else lag.reshape(-1)
        known = np.isfinite(lag) & (lag >= 0)
        if np.any(lag[known] >= self.n_classes) or np.any(lag[known] != np.round(lag[known])):
            raise ValueError(f"lagged labels must be integers in [0, {self.n_classes}) or -1")
        return np.where(known, lag, -1).astype(np.int64)

    def fit(self, X: Any, y: Any) -> PersistenceClassifier:
        """Estimate the ``h``-step transition matrix and the prior from (lagged, current)."""
        if self.n_classes < 2 or self.alpha < 0:
            raise ValueError("n_classes must be >= 2 and alpha >= 0")
        lag = self._lagged(X)
        target = np.asarray(y, dtype=np.int64).reshape(-1)
        if target.size != lag.size or target.size == 0:
            raise ValueError(f"X has {lag.size} rows but y has {target.size}")
        if np.any(target < 0) or np.any(target >= self.n_classes):
            raise ValueError(f"y must be class indices in [0, {self.n_classes})")
        k = self.n_classes
        prior = np.bincount(target, minlength=k) + self.alpha
        self.prior_ = prior / prior.sum()
        counts = np.zeros((k, k))
        known = lag >= 0
        np.add.at(counts, (lag[known], target[known]), 1.0)
        counts += self.alpha * self.prior_ * k  # shrink sparse rows towards the prior
        totals = counts.sum(axis=1, keepdims=True)
        # a known class never seen in training (alpha 0) falls back to the prior
        self.transition_ = np.where(
            totals > 0, counts / np.where(totals > 0, totals, 1.0), self.prior_
        )
        self.classes_ = np.arange(k)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """[N, n_classes]: the transition row of the known label, or the prior."""
        if not hasattr(self, "transition_"):
            raise RuntimeError("PersistenceClassifier is not fitted; call fit() first")
        lag = self._lagged(X)
        out = np.tile(self.prior_, (lag.size, 1))
        known = lag >= 0
        out[known] = self.transition_[lag[known]]
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The most likely class per row."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


def persistence_inputs(frame: pd.DataFrame, labels: Any, horizon: int) -> np.ndarray:
    """The persistence baseline's input: each row's label from ``horizon`` bars earlier.

    ``frame`` gives ``symbol`` and ``ts`` per row, ``labels`` the row's label (``-1`` when
    none). Shifted within each symbol in time order, so a row gets the label of the same
    symbol's bar ``t - horizon`` (``-1`` for its first ``horizon`` bars); returned in
    ``frame``'s row order as an [N, 1] float array.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    y = pd.Series(np.asarray(labels, dtype=np.float64).reshape(-1), index=frame.index)
    if len(y) != len(frame):
        raise ValueError(f"{len(y)} labels for {len(frame)} rows")
    order = frame.sort_values(["symbol", "ts"], kind="stable").index
    shifted = y.loc[order].groupby(frame.loc[order, "symbol"].to_numpy(), sort=False).shift(horizon)
    return shifted.reindex(frame.index).fillna(-1.0).to_numpy().reshape(-1, 1)


def baseline_inputs(bars: pd.DataFrame, window: int) -> pd.DataFrame:
    """The two-input baseline's inputs per bar: ``ts``, ``symbol``, return and vol over ``window``.

    ``recent_return = log(c_t / c_{t-w})`` and ``realized_vol`` = std of the last ``w`` 1-bar
    log returns; both causal. Rows without a full window are NaN (the caller drops them).
    """
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    frames = []
    for symbol, g in bars.sort_values(["symbol", "ts"]).groupby("symbol", sort=True):
        logc = np.log(g["close"].to_numpy(dtype=np.float64))
        r = pd.Series(np.concatenate([[np.nan], np.diff(logc)]))
        ret = pd.Series(logc).diff(window).to_numpy()
        vol = r.rolling(window, min_periods=window).std(ddof=1).to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "ts": g["ts"].reset_index(drop=True),
                    "symbol": symbol,
                    BASELINE_INPUTS[0]: ret,
                    BASELINE_INPUTS[1]: vol,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def predict_proba_full(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` placed into ``n_classes`` columns by ``model.classes_``.

    An early walk-forward fold may not contain every class; its model then scores fewer
    columns, and the missing classes get probability 0.
    """
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    classes = np.asarray(model.classes_, dtype=np.int64)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, classes] = proba
    return out
