"""Permutation importance of each input feature on the held-out span, with a block-bootstrap CI.

Which features carry a model's value is measured on the graph that ships (the exported ONNX,
run by onnxruntime) and on the model's own loss: for feature (or group of columns) ``j``, its
held-out rows are shuffled, every row is scored again, and the importance is the mean
increase of the per-row loss over the unshuffled one, ``mean(loss_perm_j - loss)``. A feature
the model ignores scores 0 exactly; one it relies on scores above 0; below 0 means the
shuffled value did better (noise, or a feature the model misuses out of sample).

The interval is the moving-block bootstrap of that mean difference (the same paired resamples
for every feature, ``block`` consecutive rows at a time, as the gates'
:mod:`pipelines.evaluation.bootstrap` uses), so serially correlated losses do not make it too
narrow. It says how sure the held-out span is about the importance, given the one shuffle;
the shuffle's own noise is small next to it for spans of a few thousand rows.

Cost: one scoring of the held-out rows per feature (at most :data:`MAX_ROWS` of them, the
latest), plus the bootstrap, computed from block sums of all features at once
(:func:`pipelines.evaluation.ope.resample_means`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.evaluation.ope import block_bootstrap_starts, resample_means

#: Held-out rows scored at most (the latest ones): bounds the added time per training.
MAX_ROWS = 5000

#: ``x -> [n]`` per-row loss of the model on inputs ``x`` (lower is better).
RowLoss = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ImportanceInputs:
    """What a trainer hands the importance step: the held-out inputs in the exported graph's
    column order, the per-row loss of a graph's outputs, and the bootstrap settings.

    ``groups`` names the features and the input columns each one is (a one-hot is one
    feature); columns in no group are never shuffled. ``loss`` takes the graph's outputs (in
    the graph's order) and the row indices scored, and returns one loss per row. ``what``
    says in words what the loss is (the report's axis label)."""

    x: np.ndarray
    groups: Mapping[str, Sequence[int]]
    loss: Callable[[list[np.ndarray], np.ndarray], np.ndarray]
    what: str
    block: int
    n_boot: int
    level: float


@dataclass(frozen=True)
class Importance:
    """One row per feature: ``importance`` (mean loss increase), ``low``/``high`` (the
    two-sided ``level`` bootstrap interval), in the groups' order; ``rows`` scored, the
    loss's meaning and the seconds it took."""

    table: pd.DataFrame
    rows: int
    what: str
    level: float
    seconds: float

    def metrics(self, prefix: str = "importance") -> dict[str, float]:
        """``<prefix>/<feature>`` and its ``/low`` and ``/high`` bounds (MLflow)."""
        out: dict[str, float] = {}
        for row in self.table.itertuples(index=False):
            out[f"{prefix}/{row.feature}"] = float(row.importance)
            out[f"{prefix}/{row.feature}/low"] = float(row.low)
            out[f"{prefix}/{row.feature}/high"] = float(row.high)
        return out

    def write(self, path: Path) -> Path:
        self.table.to_csv(path, index=False, float_format="%.6g")
        return path


def permutation_importance(
    predict: Callable[[np.ndarray], list[np.ndarray]],
    inputs: ImportanceInputs,
    seed: int,
    max_rows: int = MAX_ROWS,
) -> Importance:
    """Permutation importance of every group of ``inputs`` under ``predict`` (the graph).

    The rows scored are the latest ``max_rows`` held-out rows; each group's rows are shuffled
    by one permutation drawn from ``seed`` (a one-hot moves as a whole); the bootstrap shares
    its block starts across groups, drawn from the same seed after the permutations.
    """
    start = time.perf_counter()
    x = np.asarray(inputs.x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"importance needs a non-empty [n, width] input, got {x.shape}")
    rows = np.arange(max(0, len(x) - max_rows), len(x))
    x = x[rows]
    n = len(x)
    base = np.asarray(inputs.loss(predict(x), rows), dtype=np.float64).reshape(-1)
    if base.shape != (n,) or not np.isfinite(base).all():
        raise ValueError(f"the loss must give {n} finite values, got {base.shape}")
    rng = np.random.default_rng(seed)
    names = list(inputs.groups)
    diffs = np.empty((n, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        cols = np.asarray(inputs.groups[name], dtype=np.int64)
        shuffled = x.copy()
        shuffled[:, cols] = x[rng.permutation(n)][:, cols]
        loss = np.asarray(inputs.loss(predict(shuffled), rows), dtype=np.float64).reshape(-1)
        diffs[:, j] = loss - base
    starts = block_bootstrap_starts(n, inputs.block, inputs.n_boot, rng)
    reps = resample_means(diffs, starts, inputs.block)
    q = 100.0 * np.array([(1.0 - inputs.level) / 2.0, (1.0 + inputs.level) / 2.0])
    low, high = np.percentile(reps, q, axis=0)
    table = pd.DataFrame(
        {
            "feature": names,
            "importance": diffs.mean(axis=0),
            "low": low,
            "high": high,
        }
    )
    return Importance(table, n, inputs.what, inputs.level, time.perf_counter() - start)


def tree_shap(
    model: Any, inputs: ImportanceInputs, seed: int, max_rows: int = MAX_ROWS
) -> Importance:
    """Mean |SHAP value| per feature of a LightGBM model on the same held-out rows as
    :func:`permutation_importance`, with the same kind of block-bootstrap interval.

    Why both: permutation importance says how much the shipped graph's loss needs a feature;
    TreeSHAP says how much the trees' output moves with it, row by row, including features
    whose effect another correlated feature could stand in for (a shuffle hides those). The
    values are LightGBM's own exact TreeSHAP (``predict(pred_contrib=True)``, in the raw
    score: log-odds, before any calibration the graph adds), so no extra package is needed;
    per row they add up, with the bias, to the raw score (tested). A group's value is the sum
    of its columns' absolute contributions, summed over classes for a multiclass model.
    """
    start = time.perf_counter()
    x = np.asarray(inputs.x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"SHAP needs a non-empty [n, width] input, got {x.shape}")
    rows = np.arange(max(0, len(x) - max_rows), len(x))
    x = x[rows]
    n, width = x.shape
    contrib = np.asarray(model.predict(x, pred_contrib=True), dtype=np.float64)
    if contrib.shape[1] % (width + 1) != 0:
        raise ValueError(f"pred_contrib gave {contrib.shape[1]} columns for {width} features")
    per_class = contrib.reshape(n, contrib.shape[1] // (width + 1), width + 1)[:, :, :width]
    magnitude = np.abs(per_class).sum(axis=1)  # [n, width]
    names = list(inputs.groups)
    values = np.stack(
        [magnitude[:, np.asarray(inputs.groups[g], dtype=np.int64)].sum(axis=1) for g in names],
        axis=1,
    )
    rng = np.random.default_rng(seed)
    starts = block_bootstrap_starts(n, inputs.block, inputs.n_boot, rng)
    reps = resample_means(values, starts, inputs.block)
    q = 100.0 * np.array([(1.0 - inputs.level) / 2.0, (1.0 + inputs.level) / 2.0])
    low, high = np.percentile(reps, q, axis=0)
    table = pd.DataFrame(
        {"feature": names, "importance": values.mean(axis=0), "low": low, "high": high}
    )
    what = "mean |SHAP value| of the trees' raw score"
    return Importance(table, n, what, inputs.level, time.perf_counter() - start)


def onnx_predict(path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    """The exported graph as a function of its one input (onnxruntime, one session)."""
    from pipelines.export.onnx import make_session, run

    session = make_session(path)
    return lambda x: [np.asarray(o) for o in run(session, x)]


def column_groups(
    columns: Sequence[str], one_hot: Mapping[str, Sequence[int]] | None = None
) -> dict[str, list[int]]:
    """One group per column, except the columns of each ``one_hot`` group, which move
    together under their group's name (placed where its first column is)."""
    taken = {c for cols in (one_hot or {}).values() for c in cols}
    out: dict[str, list[int]] = {}
    for i, name in enumerate(columns):
        if i not in taken:
            out[name] = [i]
            continue
        for group, cols in (one_hot or {}).items():
            if i == min(cols):
                out[group] = list(cols)
    return out
