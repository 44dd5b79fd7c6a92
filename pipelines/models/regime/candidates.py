"""The candidate models and the two baselines they must beat.

Every model is a plain scikit-learn-compatible estimator built fresh by a factory, so walk-forward
folds never share state. Candidates see the 43 features; the baselines see nothing (majority
class) or two inputs a user would try first (recent return and realized volatility).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from configs.regime import RegimeConfig

logger = logging.getLogger(__name__)

#: Names of the baselines, in report order.
BASELINES: tuple[str, ...] = ("majority", "two_input_logistic")
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
    raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")


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
