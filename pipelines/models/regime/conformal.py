"""Conformal prediction sets for the regime classifier on a stream that is not exchangeable.

Split conformal (``pipelines.evaluation.calibration.SplitConformalClassifier``) calibrates one
quantile per class on the calibration part and keeps it: its guarantee needs the held-out rows
to be exchangeable with the calibration rows, which regime drift breaks. Two remedies, and
their combination, run here the way the bot would run them, in time order over the held-out
stream, with the label of bar t revealed ``horizon`` bars later (when its forward window has
closed):

* ``rolling``: the quantile is taken over the most recent ``window`` revealed scores of each
  class (started from the calibration part's latest), at the fixed level ``1 - alpha``;
* ``aci``: adaptive conformal inference (Gibbs & Candes 2021). Each class keeps its own level
  ``alpha_t`` and, when a label of that class is revealed, ``alpha_{t+1} = alpha_t + gamma *
  (alpha - err_t)``, ``err_t = 1`` when the set formed at bar t missed it. The quantile is over
  the calibration part's scores (fixed). Whatever the drift, the long-run miss rate of each
  class tends to ``alpha`` (``|mean err - alpha| <= (max(alpha_1, 1 - alpha_1) + gamma) /
  (gamma T)`` without delay; a delay of ``h`` labels adds a bounded number of steps);
* ``aci_rolling``: the ACI level over the rolling pool;
* ``split``: today's sets (no state changes along the stream), for comparison.

All are class-conditional (Mondrian): one level and one score pool per true class, so a rare
class is covered as often as a common one. Scores are LAC, ``1 - p(true class)``; class k is in
the set when ``1 - p_k <= q_k``, ``q_k`` the ``ceil((n_k + 1)(1 - alpha_k))``-th smallest
score of its pool (``inf`` above ``n_k``: always in; ``-inf`` below 1: never in).

The state after the held-out stream (per class: level shift and pool) is what a consumer that
forms sets starts from; :meth:`OnlineConformal.to_dict` / :meth:`from_dict` carry it as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.evaluation.spans import SPANS, span_key, span_masks

Method = Literal["split", "rolling", "aci", "aci_rolling"]
METHODS: tuple[Method, ...] = ("split", "rolling", "aci", "aci_rolling")


def pool_quantile(sorted_scores: npt.NDArray[np.float64], level: float) -> float:
    """The ``ceil((n + 1) level)``-th smallest score: ``inf`` when that rank is above ``n``
    (or the pool is empty), ``-inf`` when it is below 1 (a level at or below 0)."""
    n = int(sorted_scores.shape[0])
    if n == 0:
        return math.inf
    rank = math.ceil((n + 1) * level)
    if rank > n:
        return math.inf
    if rank < 1:
        return -math.inf
    return float(sorted_scores[rank - 1])


class OnlineConformal:
    """Class-conditional conformal sets whose levels and score pools follow revealed labels.

    Parameters
    ----------
    coverage : float in (0, 1)
        Target coverage ``1 - alpha``.
    n_classes : int
    gamma : float >= 0
        ACI step; 0 keeps every level at ``1 - alpha`` (split or rolling).
    window : int or None
        Scores kept per class (the most recent revealed); ``None`` keeps the calibration
        pool fixed.
    """

    def __init__(
        self, coverage: float, n_classes: int, gamma: float = 0.0, window: int | None = None
    ) -> None:
        if not 0.0 < coverage < 1.0:
            raise ValueError(f"coverage must be in (0, 1), got {coverage}")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 or None, got {window}")
        self.coverage = float(coverage)
        self.alpha = 1.0 - self.coverage
        self.n_classes = int(n_classes)
        self.gamma = float(gamma)
        self.window = window
        # alpha_t - alpha per class; kept as a shift so that gamma = 0 gives the level
        # ``coverage`` exactly (the same float split conformal uses)
        self.shift = np.zeros(self.n_classes)
        self.pools: list[list[float]] = [[] for _ in range(self.n_classes)]
        self._sorted: list[npt.NDArray[np.float64]] = [np.empty(0)] * self.n_classes
        self._q = np.full(self.n_classes, math.inf)

    @classmethod
    def for_method(
        cls, method: Method, coverage: float, n_classes: int, gamma: float, window: int
    ) -> OnlineConformal:
        """The configured variant: ``split`` (fixed pool, fixed level), ``rolling`` (rolling
        pool), ``aci`` (fixed pool, adaptive level), ``aci_rolling`` (both)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        adaptive = method in ("aci", "aci_rolling")
        rolling = method in ("rolling", "aci_rolling")
        return cls(coverage, n_classes, gamma if adaptive else 0.0, window if rolling else None)

    def fit(
        self,
        proba: npt.ArrayLike,
        y: npt.ArrayLike,
        order: npt.ArrayLike | None = None,
    ) -> OnlineConformal:
        """Start the pools from calibration rows (probabilities of rows the model never trained
        on); ``order`` (e.g. their timestamps) puts them in time order, so a rolling pool
        starts from the latest ``window`` of each class."""
        p = np.asarray(proba, dtype=np.float64)
        yy = np.asarray(y, dtype=np.int64)
        if p.ndim != 2 or p.shape[1] != self.n_classes or yy.shape != (p.shape[0],):
            raise ValueError(f"expected proba [N, {self.n_classes}] and y [N], got {p.shape}")
        idx = np.arange(len(yy)) if order is None else np.argsort(np.asarray(order), kind="stable")
        scores = 1.0 - p[np.arange(len(yy)), yy]
        for k in range(self.n_classes):
            pool = scores[idx][yy[idx] == k].tolist()
            self.pools[k] = pool[-self.window :] if self.window is not None else pool
        self.shift[:] = 0.0
        for k in range(self.n_classes):
            self._refresh(k)
        return self

    def _refresh(self, k: int) -> None:
        self._sorted[k] = np.sort(np.asarray(self.pools[k], dtype=np.float64))
        self._q[k] = pool_quantile(self._sorted[k], self.coverage - self.shift[k])

    @property
    def thresholds(self) -> npt.NDArray[np.float64]:
        """``q_k`` per class: class k is in a set when ``1 - p_k <= q_k``."""
        return self._q.copy()

    @property
    def alphas(self) -> npt.NDArray[np.float64]:
        """Each class's current miss level ``alpha_t``."""
        return self.alpha + self.shift

    def sets(self, proba: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Boolean ``[N, K]`` sets under the current state."""
        p = np.asarray(proba, dtype=np.float64)
        return np.asarray((1.0 - p) <= self._q[None, :])

    def update(self, label: int, score: float, missed: bool) -> None:
        """A revealed label: its class's level moves by ``gamma * (alpha - err)`` and its score
        joins the rolling pool (the oldest leaves)."""
        k = int(label)
        changed = False
        if self.gamma > 0.0:
            self.shift[k] += self.gamma * (self.alpha - float(missed))
            changed = True
        if self.window is not None:
            pool = self.pools[k]
            pool.append(float(score))
            if len(pool) > self.window:
                del pool[0]
            changed = True
        if changed:
            self._refresh(k)

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-ready values; thresholds clipped to [-1, 1] (the same sets, as
        ``1 - p`` lies in [0, 1]: 1 keeps a class in every set, -1 out of every set)."""
        return {
            "coverage": self.coverage,
            "gamma": self.gamma,
            "window": self.window,
            "alphas": self.alphas.tolist(),
            "thresholds": np.clip(self._q, -1.0, 1.0).tolist(),
            "pools": [list(p) for p in self.pools],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> OnlineConformal:
        """Rebuild the state written by :meth:`to_dict` (to continue the stream)."""
        pools = [list(map(float, p)) for p in state["pools"]]
        out = cls(float(state["coverage"]), len(pools), float(state["gamma"]), state["window"])
        out.pools = pools
        out.shift = np.asarray(state["alphas"], dtype=np.float64) - out.alpha
        for k in range(out.n_classes):
            out._refresh(k)
        return out


@dataclass(frozen=True)
class StreamResult:
    """The sets one method formed along the held-out stream (rows in the caller's order)."""

    sets: npt.NDArray[np.bool_]
    hit: npt.NDArray[np.bool_]
    state: OnlineConformal


def reveal_times(symbol: npt.ArrayLike, ts: pd.Series, horizon: int) -> npt.NDArray[np.int64]:
    """For each row, the index (into the rows) of the same symbol's row ``horizon`` bars later,
    when its label becomes known; -1 when the stream ends first."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    sym = np.asarray(symbol)
    t = pd.Series(ts).reset_index(drop=True)
    out = np.full(len(sym), -1, dtype=np.int64)
    frame = pd.DataFrame({"sym": sym, "ts": t, "row": np.arange(len(sym))})
    for _, g in frame.sort_values(["sym", "ts"], kind="stable").groupby("sym", sort=False):
        rows = g["row"].to_numpy()
        if len(rows) > horizon:
            out[rows[:-horizon]] = rows[horizon:]
    return out


def run_stream(
    conf: OnlineConformal,
    proba: npt.ArrayLike,
    y: npt.ArrayLike,
    symbol: npt.ArrayLike,
    ts: pd.Series,
    horizon: int,
) -> StreamResult:
    """Form each bar's set from the state at that bar, in time order, revealing each label
    ``horizon`` bars later in its own symbol (before that bar's set is formed). Rows at one
    timestamp share the state; labels revealed at one timestamp update in time order."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 (a label is known after its bar), got {horizon}")
    p = np.asarray(proba, dtype=np.float64)
    yy = np.asarray(y, dtype=np.int64)
    n = len(yy)
    t = pd.Series(ts).reset_index(drop=True)
    when = reveal_times(symbol, t, horizon)
    tv = t.to_numpy()
    sym = np.asarray(symbol).astype(str)
    order = np.lexsort((sym, tv))  # time, then symbol
    sets = np.zeros(p.shape, dtype=bool)
    scores = 1.0 - p[np.arange(n), yy]
    # pending reveals, keyed by the row at which each becomes known
    due: dict[int, list[int]] = {}
    for i in np.flatnonzero(when >= 0):
        due.setdefault(int(when[i]), []).append(int(i))
    start = 0
    while start < n:
        stop = start
        while stop < n and tv[order[stop]] == tv[order[start]]:
            stop += 1
        group = order[start:stop]
        revealed = sorted(
            (j for r in group for j in due.get(int(r), ())),
            key=lambda j: (tv[j], sym[j]),
        )
        for j in revealed:
            conf.update(int(yy[j]), float(scores[j]), not bool(sets[j, yy[j]]))
        sets[group] = conf.sets(p[group])
        start = stop
    hit = sets[np.arange(n), yy]
    return StreamResult(sets, hit, conf)


def span_report(
    sets: npt.NDArray[np.bool_], y: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]
) -> dict[str, float]:
    """Coverage, per-class coverage, mean set size and empty share on the rows of ``mask``."""
    s, yy = sets[mask], y[mask]
    if len(yy) == 0:
        return {"coverage": math.nan, "mean_set_size": math.nan, "empty_fraction": math.nan}
    hit = s[np.arange(len(yy)), yy]
    sizes = s.sum(axis=1)
    out = {
        "coverage": float(hit.mean()),
        "mean_set_size": float(sizes.mean()),
        "empty_fraction": float((sizes == 0).mean()),
        "n": float(len(yy)),
    }
    for k in range(s.shape[1]):
        out[f"class_coverage_{k}"] = float(hit[yy == k].mean()) if np.any(yy == k) else math.nan
    return out


def conformal_stream_metrics(
    calib_proba: npt.ArrayLike,
    calib_y: npt.ArrayLike,
    calib_ts: pd.Series,
    proba: npt.ArrayLike,
    y: npt.ArrayLike,
    symbol: npt.ArrayLike,
    ts: pd.Series,
    *,
    coverage: float,
    gamma: float,
    window: int,
    horizon: int,
    confirm_fraction: float,
    class_names: Sequence[str],
    methods: Sequence[Method] = METHODS,
) -> tuple[dict[str, float], dict[str, OnlineConformal]]:
    """Every method on the same held-out stream: metrics per method and span
    (``conformal/<method>/coverage``, ``.../mean_set_size``, ``.../empty_fraction``,
    ``.../coverage/<CLASS>``; the confirmation span under ``confirm/``) and each method's
    state after the stream."""
    yy = np.asarray(y, dtype=np.int64)
    masks = span_masks(pd.Series(ts).reset_index(drop=True), confirm_fraction)
    k = len(class_names)
    metrics: dict[str, float] = {}
    states: dict[str, OnlineConformal] = {}
    for span in SPANS:
        metrics[span_key("conformal/n_rows", span)] = float(masks[span].sum())
    for method in methods:
        conf = OnlineConformal.for_method(method, coverage, k, gamma, window)
        conf.fit(calib_proba, calib_y, order=pd.Series(calib_ts).to_numpy())
        res = run_stream(conf, proba, yy, symbol, ts, horizon)
        states[method] = res.state
        for span in SPANS:
            rep = span_report(res.sets, yy, masks[span])
            base = f"conformal/{method}"
            for name in ("coverage", "mean_set_size", "empty_fraction"):
                metrics[span_key(f"{base}/{name}", span)] = rep[name]
            for c, cname in enumerate(class_names):
                metrics[span_key(f"{base}/coverage/{cname}", span)] = rep.get(
                    f"class_coverage_{c}", math.nan
                )
    return metrics, states
