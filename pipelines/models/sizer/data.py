"""Join bars, features and strategy signals into the sizer's table, and scale observations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.evaluation.risk import sharpe

SIGNAL_COLUMN = "signal"
NEXT_RETURN_COLUMN = "next_return"


def _signals_with_keys(bars: pd.DataFrame, signals: pd.DataFrame) -> pd.DataFrame:
    """Signals keyed by (symbol, ts): either they carry the keys or share the bars' index."""
    if {"ts", "symbol"} <= set(signals.columns):
        return signals
    if not signals.index.equals(bars.index):
        raise ValueError("signals must have 'ts' and 'symbol' columns or the bars' index")
    return pd.concat([bars[["symbol", "ts"]], signals], axis=1)


def build_table(
    bars: pd.DataFrame,
    features: pd.DataFrame,
    signals: pd.DataFrame,
    feature_names: Sequence[str],
    arm_names: Sequence[str],
) -> pd.DataFrame:
    """One row per (symbol, ts) with features, every arm's signal and the next bar's return.

    The next return uses only the following close of the same symbol; the last bar of each
    symbol has none and is dropped, as are rows the features dropped in warm-up.
    """
    b = bars[["symbol", "ts", "close"]].sort_values(["symbol", "ts"], ignore_index=True)
    b[NEXT_RETURN_COLUMN] = b.groupby("symbol", sort=False)["close"].shift(-1) / b["close"] - 1.0
    sig = _signals_with_keys(bars, signals)[["symbol", "ts", *arm_names]]
    missing = [c for c in feature_names if c not in features.columns]
    if missing:
        raise ValueError(f"features frame lacks {len(missing)} column(s), e.g. {missing[:3]}")
    table = (
        b.merge(sig, on=["symbol", "ts"], how="inner", validate="one_to_one")
        .merge(
            features[["symbol", "ts", *feature_names]],
            on=["symbol", "ts"],
            how="inner",
            validate="one_to_one",
        )
        .dropna(subset=[NEXT_RETURN_COLUMN])
        .sort_values(["symbol", "ts"], ignore_index=True)
    )
    if table.empty:
        raise ValueError("bars, features and signals share no (symbol, ts) rows")
    return table


def arm_pnl(signal: npt.ArrayLike, next_return: npt.ArrayLike, cost: float) -> np.ndarray:
    """Per-bar net P&L of holding ``signal`` over the next bar (costs on changes from the last)."""
    s = np.asarray(signal, dtype=np.float64)
    r = np.asarray(next_return, dtype=np.float64)
    return s * r - cost * np.abs(np.diff(s, prepend=0.0))


def select_arm(
    train: pd.DataFrame, arm_names: Sequence[str], cost: float, ann_factor: float
) -> tuple[str, dict[str, float]]:
    """The arm with the best net Sharpe on the training span (equal-weight across symbols)."""
    scores: dict[str, float] = {}
    for arm in arm_names:
        pnl = pd.Series(0.0, index=train.index)
        for _, grp in train.groupby("symbol", sort=False):
            pnl.loc[grp.index] = arm_pnl(grp[arm], grp[NEXT_RETURN_COLUMN], cost)
        portfolio = pnl.groupby(train["ts"]).mean()
        scores[arm] = sharpe(portfolio.to_numpy(), ann_factor)
    best = max(arm_names, key=lambda a: (scores[a], -list(arm_names).index(a)))
    return best, scores


@dataclass
class ObservationScaler:
    """Standardise observations with train-span mean/std, then clip (baked into the ONNX graph).

    sklearn-style: ``fit`` learns ``mean_``/``scale_`` and returns self; ``transform`` checks
    it is fitted. Everything is float32 so the graph and SB3 see the same numbers.
    """

    clip: float = 10.0

    def fit(self, x: npt.ArrayLike) -> ObservationScaler:
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] < 2:
            raise ValueError(f"need a [N>=2, D] array, got shape {arr.shape}")
        self.mean_ = arr.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = arr.std(axis=0, dtype=np.float64)
        self.scale_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return self

    def transform(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        if not hasattr(self, "mean_"):
            raise RuntimeError("ObservationScaler is not fitted; call fit() first")
        arr = np.asarray(x, dtype=np.float32)
        z = (arr - self.mean_) / self.scale_
        return np.clip(z, np.float32(-self.clip), np.float32(self.clip)).astype(np.float32)
