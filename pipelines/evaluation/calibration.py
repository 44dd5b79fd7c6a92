"""Split-conformal prediction sets and probability calibration checks for classifiers.

Our own split-conformal implementation (the LAC / "score" method): neither MAPIE nor crepes is
installed, and the method is a dozen lines we can test against its finite-sample guarantee.
The nonconformity score of a calibration row is ``1 - p(true class)``; ``qhat`` is the
``ceil((n + 1)(1 - alpha)) / n`` empirical quantile of those scores; a prediction set holds
every class with ``p >= 1 - qhat``. Under exchangeability the sets cover the true class with
probability >= ``1 - alpha``. Market data is not exchangeable (regimes persist, volatility
clusters), so on it the coverage is marginal at best and must be monitored, not assumed.

Probability quality is reported separately: a reliability curve of top-label confidence against
accuracy and its expected calibration error (ECE).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def _check_proba(proba: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"proba must be a non-empty [N, K] array, got shape {p.shape}")
    if y is not None:
        yy = np.asarray(y)
        if yy.shape != (p.shape[0],):
            raise ValueError(f"y must have shape ({p.shape[0]},), got {yy.shape}")
        if yy.min() < 0 or yy.max() >= p.shape[1]:
            raise ValueError(f"y must be class indices in 0..{p.shape[1] - 1}")
    return p


def conformal_quantile(proba: np.ndarray, y: np.ndarray, coverage: float) -> float:
    """``qhat`` from a calibration set: the finite-sample-corrected quantile of ``1 - p_y``.

    Returns ``inf`` (every set is the full label set) when ``n`` is too small for the target.
    """
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    p = _check_proba(proba, y)
    yy = np.asarray(y, dtype=np.int64)
    scores = 1.0 - p[np.arange(p.shape[0]), yy]
    n = scores.shape[0]
    rank = math.ceil((n + 1) * coverage)
    if rank > n:
        return math.inf
    return float(np.sort(scores)[rank - 1])


def prediction_sets(proba: np.ndarray, qhat: float) -> np.ndarray:
    """Boolean ``[N, K]``: class ``k`` is in row ``i``'s set when ``1 - p_ik <= qhat``."""
    p = _check_proba(proba)
    return (1.0 - p) <= qhat


@dataclass(frozen=True)
class ConformalReport:
    """Held-out behaviour of conformal sets."""

    target: float
    qhat: float
    coverage: float
    mean_set_size: float
    empty_fraction: float
    size_counts: dict[int, int]
    n: int


class SplitConformalClassifier:
    """Split-conformal sets on top of any classifier's probabilities.

    Parameters
    ----------
    coverage : float in (0, 1)
        Target marginal coverage (0.9 means 90% of sets hold the true class).
    """

    def __init__(self, coverage: float = 0.9, mondrian: bool = False) -> None:
        self.coverage = coverage
        self.mondrian = mondrian

    def fit(self, proba: np.ndarray, y: np.ndarray) -> SplitConformalClassifier:
        """Calibrate on probabilities ``[N, K]`` of rows the model never trained on.

        ``mondrian``: one quantile per true class (class-conditional coverage, Vovk's
        Mondrian conformal), so a rare class is covered as often as a common one; a class
        with too few calibration rows gets ``inf`` (always in the set).
        """
        p = _check_proba(proba, y)
        yy = np.asarray(y, dtype=np.int64)
        self.qhat_ = conformal_quantile(p, yy, self.coverage)
        self.n_calibration_ = int(yy.shape[0])
        self.n_classes_ = int(p.shape[1])
        if self.mondrian:
            self.class_qhat_ = np.array(
                [
                    conformal_quantile(p[yy == k], yy[yy == k], self.coverage)
                    if np.any(yy == k)
                    else math.inf
                    for k in range(self.n_classes_)
                ]
            )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "qhat_"):
            raise RuntimeError("SplitConformalClassifier is not fitted; call fit first")

    def predict_sets(self, proba: np.ndarray) -> np.ndarray:
        """Boolean ``[N, K]`` prediction sets."""
        self._check_fitted()
        p = _check_proba(proba)
        if p.shape[1] != self.n_classes_:
            raise ValueError(f"expected {self.n_classes_} classes, got {p.shape[1]}")
        if self.mondrian:
            return (1.0 - p) <= self.class_qhat_[None, :]
        return prediction_sets(p, self.qhat_)

    def class_coverage(self, proba: np.ndarray, y: np.ndarray) -> dict[int, float]:
        """Held-out coverage among the rows of each true class (NaN for an absent class)."""
        sets = self.predict_sets(proba)
        yy = np.asarray(y, dtype=np.int64)
        hit = sets[np.arange(yy.shape[0]), yy]
        return {
            k: float(hit[yy == k].mean()) if np.any(yy == k) else math.nan
            for k in range(self.n_classes_)
        }

    def evaluate(self, proba: np.ndarray, y: np.ndarray) -> ConformalReport:
        """Empirical coverage and set sizes on held-out rows."""
        sets = self.predict_sets(proba)
        yy = np.asarray(y, dtype=np.int64)
        _check_proba(proba, yy)
        sizes = sets.sum(axis=1)
        values, counts = np.unique(sizes, return_counts=True)
        return ConformalReport(
            target=self.coverage,
            qhat=self.qhat_,
            coverage=float(sets[np.arange(yy.shape[0]), yy].mean()),
            mean_set_size=float(sizes.mean()),
            empty_fraction=float((sizes == 0).mean()),
            size_counts={int(v): int(c) for v, c in zip(values, counts, strict=True)},
            n=int(yy.shape[0]),
        )


def reliability_curve(proba: np.ndarray, y: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Top-label reliability: per confidence bin, mean confidence, accuracy and count.

    Bins are equal-width on [0, 1]; empty bins are omitted.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p = _check_proba(proba, y)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(y)).astype(np.float64)
    idx = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = idx == b
        if mask.any():
            rows.append(
                {
                    "bin": b,
                    "lower": b / n_bins,
                    "upper": (b + 1) / n_bins,
                    "confidence": float(conf[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return pd.DataFrame(rows, columns=["bin", "lower", "upper", "confidence", "accuracy", "count"])


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE: count-weighted mean |accuracy - confidence| over the reliability bins."""
    curve = reliability_curve(proba, y, n_bins)
    weights = curve["count"] / curve["count"].sum()
    return float((weights * (curve["accuracy"] - curve["confidence"]).abs()).sum())


def plot_reliability(
    curve: pd.DataFrame, ece: float, path: Path, title: str = "Reliability diagram"
) -> Path:
    """Reliability diagram (bars: accuracy per confidence bin; diagonal: perfect) as PNG."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot global state

    fig = Figure(figsize=(6, 6.5))
    ax, axc = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = (curve["upper"] - curve["lower"]).to_numpy()
    ax.bar(
        curve["lower"],
        curve["accuracy"],
        width=width,
        align="edge",
        alpha=0.7,
        edgecolor="black",
        label="accuracy",
    )
    ax.plot(
        curve["confidence"], curve["accuracy"], "o", color="C3", label="(mean confidence, accuracy)"
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{title} (ECE = {ece:.3f})")
    ax.legend(loc="upper left")
    axc.bar(curve["lower"], curve["count"], width=width, align="edge", color="C1", alpha=0.7)
    axc.set_xlabel("top-label confidence")
    axc.set_ylabel("rows")
    axc.set_xlim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
