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
from functools import partial
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from pipelines.data.schema import REGIMES
from pipelines.exit_policy import ExitChoice

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

    regime_label: np.ndarray | None
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


#: The fields the exit choice sets.
EXIT_FIELDS: Final = ("stop_loss_multiplier", "take_profit_multiplier")
#: The key of a family's own (all-regime) exit choice in :func:`exit_choices`' result.
FAMILY_CELL: Final = "*"


def _exit_fields(choice: ExitChoice) -> dict[str, Any]:
    return {
        "stop_loss_multiplier": round(_clamp("stop_loss_multiplier", choice.stop), 4),
        "take_profit_multiplier": round(_clamp("take_profit_multiplier", choice.take), 4),
        "exits": choice.as_dict(),
    }


def _live_pair(live: Mapping[str, Any] | None, family: str, cell: str) -> tuple[float, float]:
    """The live document's stop / target of a family's cell (``*``: its family-level entry),
    else the neutral defaults, the bot's fallback."""
    doc = (live or {}).get("family_exits" if cell == FAMILY_CELL else "recommendations", {})
    entry = doc.get(family, {}) if cell == FAMILY_CELL else doc.get(family, {}).get(cell, {})
    try:
        pair = (float(entry["stop_loss_multiplier"]), float(entry["take_profit_multiplier"]))
    except (KeyError, TypeError, ValueError):
        return NEUTRAL["stop_loss_multiplier"], NEUTRAL["take_profit_multiplier"]
    return (
        pair
        if all(np.isfinite(pair))
        else (NEUTRAL["stop_loss_multiplier"], NEUTRAL["take_profit_multiplier"])
    )


def _choose_cell(
    w: Any,
    entry_ts: np.ndarray,
    fit: np.ndarray,
    held: np.ndarray,
    cfg: Any,
    cost_bps: float,
    slippage_bps: float,
    streams: Any,
    sel: np.ndarray,
    live_pair: tuple[float, float],
    name: str,
    exit_slippage: Mapping[str, float] | None = None,
) -> ExitChoice:
    from pipelines.exit_policy import QLearn, choose_exits

    return choose_exits(
        w,
        entry_ts,
        fit & sel,
        held & sel,
        live_pair,
        SAFE_BOUNDS,
        cost_bps=cost_bps,
        slippage_bps=slippage_bps,
        exit_slippage=exit_slippage,
        confirm_fraction=cfg.confirm_fraction,
        block=cfg.bootstrap_block,
        n_boot=cfg.n_bootstrap,
        level=cfg.ci_level,
        seed=streams.seed(name),
        q=QLearn.from_config(cfg),
        q_seed=streams.child(name).seed("qlearn"),
    )


def exit_choices(
    bars: pd.DataFrame,
    fam_signals: pd.DataFrame,
    regime_label: np.ndarray | None,
    live: Mapping[str, Any] | None,
    cfg: Any,
    *,
    cost_bps: float,
    slippage_bps: float,
    seed: int,
    exit_slippage: Mapping[str, float] | None = None,
) -> dict[str, dict[str, ExitChoice]]:
    """Per family (``*``) and, with a regime champion, per regime cell: the exit settings the
    evidence supports (``pipelines.exit_policy.choose_exits``; ``cfg`` is the
    ``recommendation`` config section). A cell is judged against its live settings; a cell
    with no live entry of its own starts from its family's choice. ``exit_slippage``: the
    fill slippage per exit type calibrated from the bot's outcomes
    (``pipelines.exit_outcomes``), if any."""
    from pipelines.exit_policy import split_trades
    from pipelines.seeding import Streams
    from pipelines.strategies.exits import entry_rows, trade_windows

    atr = atr_fraction(bars)
    streams = Streams(seed).child("recommendation")
    out: dict[str, dict[str, ExitChoice]] = {}
    for family in fam_signals.columns:
        sig = fam_signals[family].to_numpy()
        rows = entry_rows(sig, bars["symbol"].to_numpy())
        w = trade_windows(bars, rows, sig[rows], atr[rows], cfg.max_hold)
        entry_ts = bars["ts"].to_numpy()[w.row]
        fit, held = split_trades(entry_ts, cfg.holdout_fraction)

        choose = partial(
            _choose_cell,
            w,
            entry_ts,
            fit,
            held,
            cfg,
            cost_bps,
            slippage_bps,
            streams.child(family),
            exit_slippage=exit_slippage,
        )

        everything = np.ones(w.n, dtype=bool)
        cells = {FAMILY_CELL: choose(everything, _live_pair(live, family, FAMILY_CELL), "all")}
        if regime_label is not None:
            labels = np.asarray(regime_label)[w.row]
            fam_pair = (cells[FAMILY_CELL].stop, cells[FAMILY_CELL].take)
            for k, regime in enumerate(REGIMES):
                live_doc = (live or {}).get("recommendations", {}).get(family, {})
                own = regime in live_doc and "exits" in live_doc[regime]
                pair = _live_pair(live, family, regime) if own else fam_pair
                cells[regime] = choose(labels == k, pair, regime)
        out[family] = cells
    return out


def _clamp(name: str, value: float) -> float:
    lo, hi = SAFE_BOUNDS[name]
    return float(min(max(value, lo), hi))


def _confidence(
    views: ModelViews, in_regime: np.ndarray, family: str, n_families: int, regime_known: bool
) -> tuple[float, str]:
    """A cell's confidence threshold and where it came from (module docstring's rule)."""
    if views.meta_threshold is not None:
        return float(views.meta_threshold), "metalabel: the meta-labeler's P(win) threshold"
    if regime_known:
        conf = float(np.quantile(views.regime_confidence[in_regime], 0.2))
        why = (
            "heuristic: 20th percentile of the regime classifier's top probability on "
            f"{int(in_regime.sum())} held-out bars"
        )
    else:
        conf, why = NEUTRAL["confidence_threshold"], "default: no regime champion (family-level)"
    if views.bandit_family is not None:
        share = float(np.mean(views.bandit_family[in_regime] == family))
        if share < 1.0 / (2 * n_families):
            conf += 0.1
            why += f", +0.1 (the bandit picks the family on {share:.1%} of them)"
    return conf, why


def derive_recommendations(
    bars: pd.DataFrame,
    fam_signals: pd.DataFrame,
    views: ModelViews,
    horizon: int,
    sources: dict[str, str],
    mask: np.ndarray | None = None,
    exits: Mapping[str, Mapping[str, ExitChoice]] | None = None,
) -> dict[str, Any]:
    """The recommendation document (without the timestamp the caller adds).

    ``exits`` (from :func:`exit_choices`): the stop-loss / take-profit each family and cell
    ships, with its evidence; without it the excursion percentiles are used (the heuristic
    candidate). ``views.regime_label`` None means no regime champion: every regime cell of a
    family gets the family-level values, so the document is never blocked whole.

    All inputs are row-aligned (bars sorted by symbol, ts); ``mask`` picks the rows whose
    statistics count (the held-out span), while excursions and ATR use every row.
    """
    regime_known = views.regime_label is not None
    labels = np.asarray(views.regime_label) if regime_known else np.zeros(len(bars), dtype=int)
    if not len(bars) == len(fam_signals) == len(labels):
        raise ValueError("bars, family signals and model views must be row-aligned")
    use = np.ones(len(bars), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    atr = atr_fraction(bars)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for family in fam_signals.columns:
        side = fam_signals[family].to_numpy()
        mae, mfe = excursions(bars, side, horizon)
        table[family] = {}
        for k, regime in enumerate(REGIMES):
            in_regime = ((labels == k) if regime_known else np.ones(len(bars), bool)) & use
            active = in_regime & (side != 0) & np.isfinite(mae) & np.isfinite(atr) & (atr > 0)
            n = int(active.sum())
            choice, exit_from = None, ""
            if exits is not None:
                own = regime in exits[family]
                choice = exits[family][regime if own else FAMILY_CELL]
                exit_from = f"{choice.candidate}{'' if own else ' (family-level)'}: " + (
                    choice.reason or "chosen on the fit span, confirmed forward"
                )
            if n < MIN_SAMPLES:
                cell = {**NEUTRAL, "samples": n, "basis": "neutral (few samples)"}
                few = f"default: {n} samples in this cell (< {MIN_SAMPLES})"
                prov = dict.fromkeys(NEUTRAL, few)
                if choice is not None:
                    cell.update(_exit_fields(choice))
                    prov.update(dict.fromkeys(EXIT_FIELDS, exit_from))
                table[family][regime] = {**cell, "provenance": prov}
                continue
            mult = 1.0
            if views.sizer_multiplier is not None:
                mult = float(np.mean(views.sizer_multiplier[family][active]))
            conf, conf_from = _confidence(
                views, in_regime, family, len(fam_signals.columns), regime_known
            )
            size = _clamp("position_size_multiplier", mult)
            stop = _clamp(
                "stop_loss_multiplier", float(np.quantile(mae[active] / atr[active], 0.8))
            )
            take = _clamp(
                "take_profit_multiplier", float(np.quantile(mfe[active] / atr[active], 0.6))
            )
            cell = {
                "position_size_multiplier": round(size, 4),
                "confidence_threshold": round(_clamp("confidence_threshold", conf), 4),
                "risk_per_trade": round(_clamp("risk_per_trade", BASE_RISK * size), 5),
                "stop_loss_multiplier": round(stop, 4),
                "take_profit_multiplier": round(take, 4),
                "samples": n,
                "basis": "models" if regime_known else "family-level (no regime champion)",
            }
            prov = {
                "position_size_multiplier": (
                    f"sizer: the CVaR-PPO sizer's mean multiplier on {n} bars"
                    if views.sizer_multiplier is not None
                    else "default: no sizer passed its gates"
                ),
                "confidence_threshold": conf_from,
                "risk_per_trade": f"heuristic: {BASE_RISK:.0%} of equity x the size multiplier",
                "stop_loss_multiplier": "heuristic: 80th percentile of the adverse excursion "
                f"in ATR on {n} bars",
                "take_profit_multiplier": "heuristic: 60th percentile of the favourable "
                f"excursion in ATR on {n} bars",
            }
            if choice is not None:
                cell.update(_exit_fields(choice))
                prov.update(dict.fromkeys(EXIT_FIELDS, exit_from))
            table[family][regime] = {**cell, "provenance": prov}
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
    *,
    exits_cfg: Any = None,
    live: Mapping[str, Any] | None = None,
    cost_bps: float = 1.0,
    slippage_bps: float = 0.5,
    seed: int = 0,
    events: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The recommendation document from this run's exported graphs, as the bot runs them.

    ``onnx_paths`` holds the exported graph of each trained model; a model contributes only
    where ``passed`` says it passed its gates. Without a regime classifier that passed, every
    regime cell gets its family's values (never blocked whole). ``signals`` is
    ``compute_signals(bars)`` (row-aligned with ``bars``). Statistics use the featurized rows
    of the later ``holdout_fraction`` span. With ``exits_cfg`` (the ``recommendation``
    section) the stop and target come from :func:`exit_choices`, judged against ``live`` (the
    published document, or None for the neutral defaults). ``events``: the bot's joined
    decisions and outcomes; where they exist, they calibrate the simulation's fill slippage
    per exit type and the document's ``outcomes`` says simulated vs realized per cell
    (``pipelines.exit_outcomes``).
    """
    from pipelines.export.onnx import make_session, run
    from pipelines.features.names import model_feature_columns
    from pipelines.strategies import ARM_FAMILIES, ARM_NAMES

    full = pd.concat([bars.reset_index(drop=True), signals.reset_index(drop=True)], axis=1)
    keys = features[["ts", "symbol"]]
    aligned = full.merge(keys, on=["ts", "symbol"], how="inner", validate="one_to_one")
    aligned = aligned.sort_values(["symbol", "ts"], ignore_index=True)
    feats = features.sort_values(["symbol", "ts"], ignore_index=True)
    # the columns the models of this run trained on: the 43 and any configured extras
    x = feats[list(model_feature_columns(feats.columns))].to_numpy(dtype=np.float32)
    fams = family_signals(aligned[list(ARM_NAMES)], ARM_FAMILIES)

    regime_ok = bool(passed.get("regime")) and "regime" in onnx_paths
    if regime_ok:
        label, probs = run(make_session(onnx_paths["regime"]), x)
        regime_label: np.ndarray | None = np.asarray(label).reshape(-1).astype(int)
        confidence = probs.max(axis=1)
        sources = {"regime": "regime classifier (passed)"}
    else:
        regime_label, confidence = None, np.ones(len(x))
        sources = {"regime": "not used (no regime classifier passed): family-level values"}
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
        regime_label=regime_label,
        regime_confidence=confidence,
        bandit_family=bandit_family,
        sizer_multiplier=sizer,
        meta_threshold=meta_threshold if use_meta else None,
    )
    exits = None
    calibration = None
    if exits_cfg is not None and events is not None and len(events):
        from pipelines.exit_outcomes import calibrate

        calibration = calibrate(
            aligned,
            events,
            {f: _live_pair(live, f, FAMILY_CELL) for f in fams.columns},
            ARM_FAMILIES,
            cost_bps=cost_bps,
            slippage_bps=slippage_bps,
        )
        sources["outcomes"] = (
            f"{len(calibration.trades)} of the bot's {len(events)} joined trades replayed in the "
            "exit simulation: fill slippage per exit type "
            + ", ".join(f"{k} {v * 1e4:.2f} bps" for k, v in calibration.slippage.items())
        )
    if exits_cfg is not None:
        exits = exit_choices(
            aligned,
            fams,
            regime_label,
            live,
            exits_cfg,
            cost_bps=cost_bps,
            slippage_bps=slippage_bps,
            seed=seed,
            exit_slippage=calibration.slippage if calibration is not None else None,
        )
        sources["exits"] = (
            "stop / target per family (and regime cell): the live settings unless a candidate "
            "beat them on the test and confirmation spans"
        )
    cut = aligned["ts"].quantile(1 - holdout_fraction)
    doc = derive_recommendations(
        aligned, fams, views, horizon, sources, mask=(aligned["ts"] >= cut).to_numpy(), exits=exits
    )
    if exits is not None:
        doc["family_exits"] = {
            family: _exit_fields(cells[FAMILY_CELL]) for family, cells in exits.items()
        }
    if calibration is not None:
        doc["outcomes"] = calibration.as_dict()
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
