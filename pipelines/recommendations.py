"""``latest_recommendation.json``: per strategy family and regime, the bot's risk parameters.

Derived from this run's models on the held-out span (see ``docs/recommendations.md``):

* the regime is the regime classifier's predicted label (what the live bot will look up);
* ``position_size_multiplier`` is the CVaR-PPO sizer's mean multiplier on the bars where the
  family has a position, in that regime (1.0 when no sizer passed its gates);
* ``confidence_threshold`` is the 20th percentile of the classifier's top probability among
  bars it labels with that regime, raised by 0.1 when the bandit seldom picks the family there;
* ``risk_per_trade`` is 1% of equity scaled by the multiplier;
* ``stop_loss_multiplier`` / ``take_profit_multiplier`` (in ATR(14) units) are the 80th
  percentile of adverse and the 60th percentile of favourable excursion over the reward
  horizon when following the family's signal.

Every value is clamped into the documented ``SAFE_BOUNDS``; cells with too few samples get the
neutral defaults and say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from pipelines.data.schema import REGIMES

SCHEMA: Final = "edgeflow.recommendation/1"
SAFE_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "position_size_multiplier": (0.1, 2.0),
    "confidence_threshold": (0.5, 0.95),
    "risk_per_trade": (0.0025, 0.02),
    "stop_loss_multiplier": (0.5, 4.0),
    "take_profit_multiplier": (1.0, 6.0),
}
NEUTRAL: Final[dict[str, float]] = {
    "position_size_multiplier": 1.0,
    "confidence_threshold": 0.7,
    "risk_per_trade": 0.01,
    "stop_loss_multiplier": 2.0,
    "take_profit_multiplier": 3.0,
}
BASE_RISK: Final = 0.01
MIN_SAMPLES: Final = 30


@dataclass(frozen=True)
class ModelViews:
    """What the models said about each held-out row (aligned with the rows given).

    ``regime_label`` [N] int, ``regime_confidence`` [N] (top class probability),
    ``bandit_family`` [N] family name of the bandit's chosen arm or None,
    ``sizer_multiplier`` {family: [N]} the sizer's multiplier on that family's signal, or None.
    """

    regime_label: np.ndarray
    regime_confidence: np.ndarray
    bandit_family: np.ndarray | None
    sizer_multiplier: dict[str, np.ndarray] | None
    meta_threshold: float | None = None


def family_signals(signals: pd.DataFrame, arm_families: dict[str, str]) -> pd.DataFrame:
    """One {-1, 0, +1} signal per family: the sign of its arms' summed signals."""
    out = {}
    for family in dict.fromkeys(arm_families.values()):
        arms = [a for a, f in arm_families.items() if f == family]
        out[family] = np.sign(signals[arms].sum(axis=1)).astype(np.int8)
    return pd.DataFrame(out, index=signals.index)


def atr_fraction(bars: pd.DataFrame, window: int = 14) -> np.ndarray:
    """ATR(window) as a fraction of close (simple mean of true range), per symbol, causal."""
    prev = bars.groupby("symbol", sort=False)["close"].shift(1)
    tr = pd.concat(
        [bars["high"] - bars["low"], (bars["high"] - prev).abs(), (bars["low"] - prev).abs()],
        axis=1,
    ).max(axis=1)
    atr = tr.groupby(bars["symbol"], sort=False).transform(
        lambda s: s.rolling(window, min_periods=window).mean()
    )
    return np.asarray(atr / bars["close"], dtype=np.float64)


def excursions(bars: pd.DataFrame, side: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Max adverse and favourable excursion (fractions of entry close) over the next bars.

    A long (``side`` +1) entered at close t sees ``close[t+k]/close[t]-1`` for k = 1..horizon;
    a short sees its negative. NaN where the horizon runs past a symbol's data or side is 0.
    """
    mae = np.full(len(bars), np.nan)
    mfe = np.full(len(bars), np.nan)
    pos = 0
    for _, group in bars.groupby("symbol", sort=False):
        close = group["close"].to_numpy(dtype=np.float64)
        n = len(close)
        if n > horizon:
            future = sliding_window_view(close[1:], horizon)[: n - horizon]
            move = future / close[: n - horizon, None] - 1.0
            s = side[pos : pos + n - horizon, None].astype(np.float64)
            pnl = move * s
            mfe[pos : pos + n - horizon] = np.max(pnl, axis=1)
            mae[pos : pos + n - horizon] = np.max(-pnl, axis=1)
        pos += n
    flat = side == 0
    mae[flat] = np.nan
    mfe[flat] = np.nan
    return np.maximum(mae, 0.0), np.maximum(mfe, 0.0)


def _clamp(name: str, value: float) -> float:
    lo, hi = SAFE_BOUNDS[name]
    return float(min(max(value, lo), hi))


def derive_recommendations(
    bars: pd.DataFrame,
    fam_signals: pd.DataFrame,
    views: ModelViews,
    horizon: int,
    sources: dict[str, str],
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """The recommendation document (without the timestamp the caller adds).

    All inputs are row-aligned (bars sorted by symbol, ts); ``mask`` picks the rows whose
    statistics count (the held-out span), while excursions and ATR use every row.
    """
    if not len(bars) == len(fam_signals) == len(views.regime_label):
        raise ValueError("bars, family signals and model views must be row-aligned")
    use = np.ones(len(bars), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    atr = atr_fraction(bars)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for family in fam_signals.columns:
        side = fam_signals[family].to_numpy()
        mae, mfe = excursions(bars, side, horizon)
        table[family] = {}
        for k, regime in enumerate(REGIMES):
            in_regime = (views.regime_label == k) & use
            active = in_regime & (side != 0) & np.isfinite(mae) & np.isfinite(atr) & (atr > 0)
            n = int(active.sum())
            if n < MIN_SAMPLES:
                table[family][regime] = {**NEUTRAL, "samples": n, "basis": "neutral (few samples)"}
                continue
            mult = 1.0
            if views.sizer_multiplier is not None:
                mult = float(np.mean(views.sizer_multiplier[family][active]))
            conf = float(np.quantile(views.regime_confidence[in_regime], 0.2))
            if views.meta_threshold is not None:
                conf = float(views.meta_threshold)
            elif views.bandit_family is not None:
                share = float(np.mean(views.bandit_family[in_regime] == family))
                if share < 1.0 / (2 * len(fam_signals.columns)):
                    conf += 0.1
            size = _clamp("position_size_multiplier", mult)
            stop = _clamp(
                "stop_loss_multiplier", float(np.quantile(mae[active] / atr[active], 0.8))
            )
            take = _clamp(
                "take_profit_multiplier", float(np.quantile(mfe[active] / atr[active], 0.6))
            )
            table[family][regime] = {
                "position_size_multiplier": round(size, 4),
                "confidence_threshold": round(_clamp("confidence_threshold", conf), 4),
                "risk_per_trade": round(_clamp("risk_per_trade", BASE_RISK * size), 5),
                "stop_loss_multiplier": round(stop, 4),
                "take_profit_multiplier": round(take, 4),
                "samples": n,
                "basis": "models",
            }
    return {
        "schema": SCHEMA,
        "horizon_bars": horizon,
        "bounds": {k: list(v) for k, v in SAFE_BOUNDS.items()},
        "sources": dict(sources),
        "recommendations": table,
    }


def derive_from_models(
    bars: pd.DataFrame,
    features: pd.DataFrame,
    signals: pd.DataFrame,
    onnx_paths: Mapping[str, Path],
    passed: Mapping[str, bool],
    horizon: int,
    holdout_fraction: float,
    meta_threshold: float | None = None,
) -> dict[str, Any]:
    """The recommendation document from this run's exported graphs, as the bot runs them.

    ``onnx_paths`` holds the exported graph of each trained model; a model contributes only
    where ``passed`` says it passed its gates (the regime classifier is always needed).
    ``signals`` is ``compute_signals(bars)`` (row-aligned with ``bars``). Statistics use the
    featurized rows of the later ``holdout_fraction`` span.
    """
    from pipelines.export.onnx import make_session, run
    from pipelines.features import FEATURE_NAMES
    from pipelines.strategies import ARM_FAMILIES, ARM_NAMES

    if "regime" not in onnx_paths:
        raise ValueError("the recommendation needs a trained regime classifier")
    full = pd.concat([bars.reset_index(drop=True), signals.reset_index(drop=True)], axis=1)
    keys = features[["ts", "symbol"]]
    aligned = full.merge(keys, on=["ts", "symbol"], how="inner", validate="one_to_one")
    aligned = aligned.sort_values(["symbol", "ts"], ignore_index=True)
    feats = features.sort_values(["symbol", "ts"], ignore_index=True)
    x = feats[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    fams = family_signals(aligned[list(ARM_NAMES)], ARM_FAMILIES)

    label, probs = run(make_session(onnx_paths["regime"]), x)
    state = "passed" if passed.get("regime") else "not published"
    sources = {"regime": f"regime classifier ({state})"}
    bandit_family = None
    if passed.get("bandit") and "bandit" in onnx_paths:
        (values,) = run(make_session(onnx_paths["bandit"]), x)
        bandit_family = np.array([ARM_FAMILIES[ARM_NAMES[i]] for i in values.argmax(axis=1)])
        sources["bandit"] = "strategy bandit (passed)"
    else:
        sources["bandit"] = "not used (bandit did not pass its gates)"
    sizer = None
    if passed.get("sizer") and "sizer" in onnx_paths:
        session = make_session(onnx_paths["sizer"])
        sizer = {
            fam: run(session, np.concatenate([x, fams[[fam]].to_numpy(np.float32)], axis=1))[
                0
            ].reshape(-1)
            for fam in fams.columns
        }
        sources["sizer"] = "CVaR-PPO sizer (passed)"
    else:
        sources["sizer"] = "not used (sizer did not pass its gates): multiplier 1.0"
    use_meta = bool(passed.get("metalabel")) and meta_threshold is not None
    sources["metalabel"] = (
        f"meta-labeler (passed): confidence_threshold is its P(win) threshold {meta_threshold}"
        if use_meta
        else "not used (meta-labeler did not pass its gates): regime-confidence rule"
    )
    views = ModelViews(
        regime_label=np.asarray(label).reshape(-1).astype(int),
        regime_confidence=probs.max(axis=1),
        bandit_family=bandit_family,
        sizer_multiplier=sizer,
        meta_threshold=meta_threshold if use_meta else None,
    )
    cut = aligned["ts"].quantile(1 - holdout_fraction)
    doc = derive_recommendations(
        aligned, fams, views, horizon, sources, mask=(aligned["ts"] >= cut).to_numpy()
    )
    check_bounds(doc)
    return doc


def check_bounds(document: dict[str, Any]) -> None:
    """Refuse a document with any value outside ``SAFE_BOUNDS`` (run before publishing)."""
    for family, cells in document["recommendations"].items():
        for regime, cell in cells.items():
            for name, (lo, hi) in SAFE_BOUNDS.items():
                value = cell[name]
                if not lo <= value <= hi:
                    raise ValueError(f"{family}/{regime}: {name}={value} outside [{lo}, {hi}]")
