"""Derive the recommendation file from this run's exported models (ONNX, as the bot runs them)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.features import FEATURE_NAMES
from pipelines.models.common import TrainOutcome
from pipelines.recommendations import (
    ModelViews,
    check_bounds,
    derive_recommendations,
    family_signals,
)
from pipelines.strategies import ARM_FAMILIES, ARM_NAMES, compute_signals


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _run(sess: ort.InferenceSession, x: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(o) for o in sess.run(None, {sess.get_inputs()[0].name: x})]


@task(name="derive_recommendation", cache_policy=NO_CACHE)
def derive_recommendation(
    bars: pd.DataFrame,
    features: pd.DataFrame,
    outcomes: Mapping[str, TrainOutcome],
    passed: Mapping[str, bool],
    horizon: int,
    holdout_fraction: float,
) -> dict[str, Any]:
    """Per family and regime parameters; a model contributes only if it passed its gates."""
    if "regime" not in outcomes:
        raise ValueError("the recommendation needs a trained regime classifier")
    # Signals need every bar (warm-up included); statistics use the featurized rows.
    signals = compute_signals(bars)
    full = pd.concat([bars.reset_index(drop=True), signals.reset_index(drop=True)], axis=1)
    keys = features[["ts", "symbol"]]
    aligned = full.merge(keys, on=["ts", "symbol"], how="inner", validate="one_to_one")
    aligned = aligned.sort_values(["symbol", "ts"], ignore_index=True)
    feats = features.sort_values(["symbol", "ts"], ignore_index=True)
    x = feats[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    fams = family_signals(aligned[list(ARM_NAMES)], ARM_FAMILIES)

    label, probs = _run(_session(outcomes["regime"].onnx_path), x)
    sources = {"regime": f"regime classifier ({'passed' if passed['regime'] else 'not published'})"}
    bandit_family = None
    if passed.get("bandit") and "bandit" in outcomes:
        (values,) = _run(_session(outcomes["bandit"].onnx_path), x)
        bandit_family = np.array([ARM_FAMILIES[ARM_NAMES[i]] for i in values.argmax(axis=1)])
        sources["bandit"] = "strategy bandit (passed)"
    else:
        sources["bandit"] = "not used (bandit did not pass its gates)"
    sizer = None
    if passed.get("sizer") and "sizer" in outcomes:
        sizer = {}
        sizer_session = _session(outcomes["sizer"].onnx_path)
        for fam in fams.columns:
            obs = np.concatenate([x, fams[[fam]].to_numpy(np.float32)], axis=1)
            (mult,) = _run(sizer_session, obs)
            sizer[fam] = mult.reshape(-1)
        sources["sizer"] = "CVaR-PPO sizer (passed)"
    else:
        sources["sizer"] = "not used (sizer did not pass its gates): multiplier 1.0"
    views = ModelViews(
        regime_label=np.asarray(label).reshape(-1).astype(int),
        regime_confidence=probs.max(axis=1),
        bandit_family=bandit_family,
        sizer_multiplier=sizer,
    )
    cut = aligned["ts"].quantile(1 - holdout_fraction)
    doc = derive_recommendations(
        aligned, fams, views, horizon, sources, mask=(aligned["ts"] >= cut).to_numpy()
    )
    check_bounds(doc)
    get_run_logger().info("recommendation derived from %s", sources)
    return doc
