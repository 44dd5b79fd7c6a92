"""Score a fitted model on bars no run saw: the "was it right" half of the scorecards.

A gate's bound is a forecast: "this model's lift over its comparator is above zero". Whether
that forecast was right can only be read on bars that no training, selection or gate touched.
:func:`fit_forward` trains one model of the registry through its own four stages on the
*earlier* bars, judges it with its own gates, and then scores **the same fitted model** on
the *later* bars by running the trainer's ``prepare`` on the later inputs (comparators such as
the best arm are re-derived there from that prepare's training rows, exactly as a gate run
would derive them) and its ``evaluate`` with the original fit. The forward figures are the
gate rule applied to those metrics, so "test bound" and "later truth" are the same quantity on
different bars.

Two uses:

* real data (``bench_real.py``): earlier = the first 80 % of each set; later = the whole set
  with ``holdout_fraction`` set so the held-out rows are the last 20 %;
* null worlds (``bench_null.py``): earlier = one null world; later = a fresh null world.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.evaluation import gates as gate_rules
from pipelines.evaluation.gates import Gate
from pipelines.models.base import ModelResult, ModelSpec, TrainInputs
from pipelines.models.champion import FALLBACK, ChampionDecision
from pipelines.seeding import Streams


@dataclass
class Forward:
    """One model: its gates on the earlier bars and the same gates' figures on the later bars."""

    model: str
    gates: list[Gate]
    forward_gates: list[Gate]
    metrics: dict[str, float] = field(default_factory=dict)
    forward_metrics: dict[str, float] = field(default_factory=dict)
    result: ModelResult | None = None  # the earlier run, as the flow would hand it on
    forward_result: ModelResult | None = None  # extras on the later bars, for downstream models
    # the slot's champion stage against the bot's fallback, on the earlier bars (what the
    # flow would ship) and the same candidates scored on the later bars
    decision: ChampionDecision | None = None
    forward_decision: ChampionDecision | None = None

    @property
    def published(self) -> bool:
        return all(g.passed for g in self.gates)

    def primary(self) -> tuple[Gate, Gate, Gate | None]:
        """The first lower-bound gate (test span), its confirmation twin, its forward reading."""
        lb = [g for g in self.gates if g.ci_low is not None and g.span == "test"]
        first = lb[0] if lb else self.gates[0]
        twin = next((g for g in self.gates if g.name == f"{first.name}_confirmation"), first)
        later = next((g for g in self.forward_gates if g.name == first.name), None)
        return first, twin, later


def verdict(published: bool, later: Gate | None) -> str:
    """Was the ship/block decision right, read on the later bars?

    Shipped and the later point estimate above the gate's threshold: right. Shipped and not:
    wrong (a loser shipped). Blocked and the later lower bound above the threshold: wrong (a
    winner missed). Blocked otherwise: right (nothing on the later bars says it would have
    paid)."""
    if later is None or later.estimate is None:
        return "n/a"
    if published:
        return "right" if later.estimate > later.threshold else "WRONG: shipped a loser"
    return "WRONG: missed a winner" if later.passed else "right"


@dataclass(frozen=True)
class ChampionTruth:
    """What the slot's champion stage shipped on the earlier bars, and whether it was right."""

    challenger: str  # "name (kind)", or "-" when no candidate could ship
    test: str
    confirm: str
    shipped: str  # the candidate that would be live after the run
    later: str  # the earlier challenger's lift over the fallback on the later bars
    right: str


def champion_truth(fwd: Forward) -> ChampionTruth | None:
    """Read a :class:`Forward`'s two champion decisions as a scorecard row.

    The challenger chosen on the earlier bars is looked up among the later decision's
    candidates (its lift over the fallback there, same statistic and unit). Right: promoted
    and its later lift above zero, or kept and the later bars give no lower bound above zero
    for it (only when it is also the later decision's challenger does a bound exist; a kept
    challenger whose later point lift is positive without a bound is "n/a")."""
    early, late = fwd.decision, fwd.forward_decision
    if early is None or late is None:
        return None
    if early.challenger is None:
        return ChampionTruth("-", "-", "-", early.champion.label, "-", "n/a")
    name = early.challenger.name
    bound = {g.span: g for g in early.gates if g.ci_low is not None}
    row = late.table[late.table["candidate"] == name]
    unit = bound["test"].unit if "test" in bound else ""
    lift_col = next(c for c in late.table.columns if str(c).startswith("lift_test"))
    lift = float(row[lift_col].iloc[0]) if len(row) else math.nan
    later_gate = None
    if late.challenger is not None and late.challenger.name == name:
        tested = [g for g in late.gates if g.span == "test" and g.ci_low is not None]
        later_gate = tested[0] if tested else None
    later = format_gate(later_gate) if later_gate is not None else f"{lift:+.3g} {unit}".strip()
    if early.promote:
        right = "right" if lift > 0 else "WRONG: shipped a loser"
    elif later_gate is not None:
        right = "WRONG: missed a winner" if later_gate.passed else "right"
    else:
        right = "right" if not lift > 0 else "n/a (no later bound)"
    return ChampionTruth(
        f"{name} ({early.challenger.kind})",
        format_gate(bound.get("test")),
        format_gate(bound.get("confirm")),
        name if early.promote else early.champion.label,
        later,
        right,
    )


def _stages(
    spec: ModelSpec, inputs: TrainInputs, cfg: Any, streams: Streams, out: Path
) -> tuple[Any, Any, Any, dict[str, float]]:
    trainer = spec.make_trainer()
    data = trainer.prepare(inputs, cfg, streams)
    fitted = trainer.fit(data, cfg, streams)
    metrics = dict(trainer.evaluate(data, fitted, cfg, streams, out).metrics)
    return trainer, data, fitted, metrics


def fit_forward(
    spec: ModelSpec,
    earlier: TrainInputs,
    later: TrainInputs,
    cfg: Any,
    later_cfg: Any,
    seed: int,
    parity_tolerance: float,
    out_dir: Path | None = None,
) -> Forward:
    """Fit ``spec`` on ``earlier`` and judge it; score that fit on ``later`` (see module doc).

    The export and its parity are measured once, on the earlier run; the forward gates reuse
    that parity value, since the graph is the same."""
    streams = Streams(seed).child(spec.name)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out_dir) if out_dir is not None else Path(tmp)
        (root / "earlier").mkdir(parents=True, exist_ok=True)
        (root / "later").mkdir(parents=True, exist_ok=True)
        trainer, data, fitted, metrics = _stages(spec, earlier, cfg, streams, root / "earlier")
        export = trainer.export(data, fitted, cfg, root / "earlier")
        parity = export.max_abs_diff
        gates = gate_rules.evaluate(spec.gate_rule, metrics, cfg, parity, parity_tolerance)
        result = ModelResult(spec.name, export, metrics, gates, extras=trainer.extras(data, fitted))
        fwd_streams = Streams(seed).child(spec.name).child("forward")
        fwd_data = trainer.prepare(later, later_cfg, fwd_streams)
        fwd = trainer.evaluate(fwd_data, fitted, later_cfg, fwd_streams, root / "later")
        fwd_metrics = dict(fwd.metrics)
        fwd_gates = gate_rules.evaluate(
            spec.gate_rule, fwd_metrics, later_cfg, parity, parity_tolerance
        )
        fwd_result = ModelResult(
            spec.name, export, fwd_metrics, fwd_gates, extras=trainer.extras(fwd_data, fitted)
        )
        decision = fwd_decision = None
        stage = getattr(trainer, "challenge", None)
        if stage is not None:  # against the bot's fallback, as a fresh store's first run
            decision = stage(
                data,
                fitted,
                cfg,
                streams,
                root / "earlier",
                export,
                gates,
                FALLBACK,
                parity_tolerance,
            )
            fwd_decision = stage(
                fwd_data,
                fitted,
                later_cfg,
                fwd_streams,
                root / "later",
                export,
                gates,
                FALLBACK,
                parity_tolerance,
            )
    return Forward(
        spec.name,
        gates,
        fwd_gates,
        metrics,
        fwd_metrics,
        result,
        fwd_result,
        decision,
        fwd_decision,
    )


def cut_inputs(
    bars: pd.DataFrame, features: pd.DataFrame, signals: pd.DataFrame, train_share: float
) -> tuple[TrainInputs, pd.Timestamp]:
    """The earlier ``train_share`` of the timeline (one cut time across symbols)."""
    cut = pd.Timestamp(bars["ts"].quantile(train_share))
    keep = (bars["ts"] < cut).to_numpy()
    sub_bars = bars[keep].reset_index(drop=True)
    sub_signals = signals[keep].reset_index(drop=True)
    sub_feats = features[features["ts"] < cut].reset_index(drop=True)
    return TrainInputs(sub_bars, sub_feats, sub_signals), cut


def format_gate(g: Gate | None) -> str:
    """``estimate [low, high] unit``: the figure a scorecard cell shows."""
    if g is None:
        return "-"
    unit = f" {g.unit}" if g.unit else ""
    est = g.estimate if g.estimate is not None else g.value
    if g.ci_low is not None and g.ci_high is not None:
        return f"{est:+.3g} [{g.ci_low:+.3g}, {g.ci_high:+.3g}]{unit}"
    return f"{est:+.3g}{unit}"
