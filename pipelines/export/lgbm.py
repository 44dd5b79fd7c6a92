"""LightGBM split thresholds that decide float32 inputs as the double-precision model does.

LightGBM compares a feature with a float64 threshold; an ONNX tree ensemble stores its
thresholds as float32, rounded to the nearest. Where rounding moves a threshold ``t`` *up*
onto a float32 value ``v`` (``t < v = float32(t)``), an input equal to ``v`` goes right in
LightGBM (``v > t``) and left in ONNX (``v <= v``). LightGBM's thresholds are midpoints of
adjacent values seen in training; on a feature quoted on a grid (a volatility index to two
decimals) the midpoint of 11.79 and 11.81 is a hair below 11.8, rounds onto it, and every
later 11.8 is decided the other way: seen on arch's VIX, a 0.002 probability gap that failed
the regime's ONNX parity gate. On the continuous own-bar features adjacent values lie far
more than a float32 step apart, so a midpoint never rounds onto one.

:func:`float32_exact` lowers such a threshold to the largest float32 not above it, which
decides every float32 input exactly as ``t`` does (no float32 lies in between), on the
columns it is given: the exporters pass the optional cross-asset and exogenous columns, so a
model on the 43 alone converts to the same bytes as before.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np


def float32_exact(model: Any, columns: Iterable[int]) -> tuple[Any, int]:
    """``model`` (an ``LGBMClassifier``) with every threshold on one of ``columns`` that
    float32 rounding would move up lowered as described above, and how many were; the model
    itself when none is (a copy otherwise: the fitted model is not modified)."""
    import lightgbm as lgb

    wanted = set(columns)
    if not wanted:
        return model, 0
    lines = model.booster_.model_to_string().split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("Tree=")]
    changed = 0
    for a, b in zip(starts, [*starts[1:], len(lines)], strict=True):
        at = {
            line.partition("=")[0]: i
            for i, line in enumerate(lines[a:b], a)
            if line.startswith(("split_feature=", "threshold=", "decision_type="))
        }
        if "threshold" not in at:  # a single-leaf tree
            continue
        feats = [int(v) for v in lines[at["split_feature"]].partition("=")[2].split()]
        kinds = [int(v) for v in lines[at["decision_type"]].partition("=")[2].split()]
        thresholds = [float(v) for v in lines[at["threshold"]].partition("=")[2].split()]
        new = list(thresholds)
        for i, (f, kind, t) in enumerate(zip(feats, kinds, thresholds, strict=True)):
            if kind & 1:  # a categorical split: not a comparison
                continue
            v = np.float32(t)
            if f in wanted and float(v) > t:
                new[i] = float(np.nextafter(v, np.float32(-np.inf)))
                changed += 1
        if new != thresholds:
            lines[at["threshold"]] = "threshold=" + " ".join(repr(t) for t in new)
    if not changed:
        return model, 0
    # the header's tree_sizes are byte counts of the old text: without them LightGBM reads
    # the trees one after another
    lines = [line for line in lines if not line.startswith("tree_sizes=")]
    fixed = copy.copy(model)
    fixed._Booster = lgb.Booster(model_str="\n".join(lines))
    return fixed, changed
