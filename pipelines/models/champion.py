"""Champion and challenger: which policy a slot ships, on evidence.

A slot (bandit, ...) has candidates: the learned model and the simple policies it is judged
against, each exported as ONNX with the slot's contract, so the bot cannot tell them apart.
The champion is what is live for the slot (the verified latest version in the store) or,
when nothing is live, the bot's documented fallback. Every run scores the champion with the
same estimator on the same spans as the candidates; the best eligible candidate on the test
span is the challenger, and it replaces the champion only when the one-sided 95% paired
block-bootstrap lower bound of its lift over the champion is above ``min_lift`` on the test
span and again on the confirmation span (a later span nothing looked at before this
decision; the test span chose the challenger, so its bound alone is the winner's curse).
A tie keeps the champion: no churn.

Why the learned candidate must also pass its own gates to be eligible: those gates say it
beats the simple policies on both spans; a learned model that does not is not worth its
complexity even where it edges past the champion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.evaluation.bootstrap import PairedStat, mean_difference
from pipelines.evaluation.gates import Gate, blocked_reason, check, lower_bound_gates
from pipelines.evaluation.spans import (
    SPANS,
    paired_span_cis,
    put_span_intervals,
    span_key,
    span_masks,
)
from pipelines.export.onnx import OnnxExport

Kind = Literal["learned", "rule"]
ChampionKind = Literal["learned", "rule", "fallback"]
#: The metric prefix of everything the champion stage measures.
PREFIX = "champion"
LIFT_KEY = f"{PREFIX}/lift/challenger_vs_champion"
GATE = "lift_vs_champion_lower_bound"


@dataclass(frozen=True)
class Candidate:
    """One policy a slot could ship: its ONNX (the slot's contract) and what it is."""

    name: str
    kind: Kind
    export: OnnxExport
    description: str


@dataclass(frozen=True)
class Champion:
    """What is live for a slot: a verified published version, or the bot's fallback.

    ``onnx_path`` is the live model's verified ONNX (None for the fallback); ``candidate``
    and ``kind`` come from its signed manifest (``lineage.candidate``), ``learned`` for a
    version published before candidates existed.
    """

    name: str
    kind: ChampionKind
    version: str | None = None
    onnx_path: Path | None = None
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.version})" if self.version else self.name


FALLBACK = Champion("fallback", "fallback", note="nothing is live: the bot's fallback")


@dataclass
class ChampionDecision:
    """The champion stage's verdict for one slot, with its evidence."""

    champion: Champion
    challenger: Candidate | None
    gates: list[Gate]
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    # what downstream models read instead of the trained model's extras when the challenger
    # ships (e.g. the bandit slot's arm stream for the sizer)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def promote(self) -> bool:
        return (
            self.challenger is not None and bool(self.gates) and all(g.passed for g in self.gates)
        )

    def lineage(self) -> dict[str, str]:
        """What the signed manifest says about the shipped candidate and what it replaced."""
        assert self.challenger is not None
        return {
            "candidate": self.challenger.name,
            "kind": self.challenger.kind,
            "replaced": self.champion.label,
        }


def eligibility(
    candidates: list[Candidate], learned_gates: list[Gate], parity_tolerance: float
) -> dict[str, str | None]:
    """Why each candidate cannot ship (None: it can): a learned model only when its own gates
    all passed, a rule only when its ONNX matches its own rule within ``parity_tolerance``."""
    out: dict[str, str | None] = {}
    for cand in candidates:
        if cand.kind == "learned":
            ok = all(g.passed for g in learned_gates)
            out[cand.name] = (
                None if ok else f"its own gates failed: {blocked_reason(learned_gates)}"
            )
        else:
            diff = cand.export.max_abs_diff
            ok = diff <= parity_tolerance
            out[cand.name] = None if ok else f"ONNX parity {diff:.3g} > {parity_tolerance:g}"
    return out


def challenge(
    ts: pd.Series,
    values: Mapping[str, np.ndarray],
    champion: Champion,
    champion_values: np.ndarray,
    candidates: list[Candidate],
    eligible: Mapping[str, str | None],
    cfg: Any,
    seed: int,
    *,
    scale: float,
    unit: str,
    parity_tolerance: float,
    min_lift: float = 0.0,
    stat: PairedStat = mean_difference,
    measure: str = "exact value per decision",
    value_scale: float | None = None,
    value_unit: str | None = None,
) -> ChampionDecision:
    """Pick the challenger among ``candidates`` and judge it against the champion.

    ``values`` holds each candidate's per-decision value on the held-out rows (row-aligned
    with ``ts``, time-ordered within each symbol; the slot's exact reward, higher is better),
    ``champion_values`` the champion's on the same rows; ``eligible`` maps a candidate to
    why it cannot ship (None when it can). ``cfg`` gives ``n_bootstrap``, ``bootstrap_block``,
    ``ci_level`` and ``confirm_fraction``. ``stat(candidate, champion)`` is the paired lift
    (the mean difference by default; the sizer slot's is a Sharpe difference), ``scale`` and
    ``unit`` say how a person reads it, ``measure`` what it measures; ``value_scale`` and
    ``value_unit`` the same for each candidate's mean value (default: ``scale`` and ``unit``;
    the sizer's lift is a Sharpe difference but its values are returns per bar). The table's
    numeric headers name their unit, so nothing downstream rescales them.
    """
    vscale = scale if value_scale is None else value_scale
    vunit = unit if value_unit is None else value_unit
    cols = {
        "test": f"mean_test ({vunit})",
        "confirm": f"mean_confirm ({vunit})",
        "lift_test": f"lift_test ({unit})",
        "lift_confirm": f"lift_confirm ({unit})",
    }
    masks = span_masks(ts, cfg.confirm_fraction)
    metrics: dict[str, float] = {}
    rows = []
    lifts: dict[str, float] = {}
    for cand in candidates:
        v = values[cand.name]
        means = {s: float(np.mean(v[masks[s]])) for s in SPANS}
        lift = {s: stat(v[masks[s]], champion_values[masks[s]]) * scale for s in SPANS}
        lifts[cand.name] = lift["test"]
        for s in SPANS:
            metrics[span_key(f"{PREFIX}/value/{cand.name}", s)] = means[s]
        rows.append(
            {
                "candidate": cand.name,
                "kind": cand.kind,
                cols["test"]: means["test"] * vscale,
                cols["confirm"]: means["confirm"] * vscale,
                cols["lift_test"]: lift["test"],
                cols["lift_confirm"]: lift["confirm"],
                "eligible": eligible.get(cand.name) is None,
                "why_not": eligible.get(cand.name) or "-",
            }
        )
    champ = {s: float(np.mean(champion_values[masks[s]])) for s in SPANS}
    for s in SPANS:
        metrics[span_key(f"{PREFIX}/value/champion", s)] = champ[s]
    rows.append(
        {
            "candidate": f"champion: {champion.label}",
            "kind": champion.kind,
            cols["test"]: champ["test"] * vscale,
            cols["confirm"]: champ["confirm"] * vscale,
            cols["lift_test"]: 0.0,
            cols["lift_confirm"]: 0.0,
            "eligible": True,
            "why_not": "-",
        }
    )
    table = pd.DataFrame(rows)
    pool = [c for c in candidates if eligible.get(c.name) is None]
    if not pool:
        why = "; ".join(f"{c.name}: {eligible[c.name]}" for c in candidates)
        reason = f"champion {champion.label} stays: no candidate can ship ({why})"
        return ChampionDecision(champion, None, [], reason, metrics, table)
    # the test span chooses the challenger (its bound there is biased up by that choice);
    # the confirmation span, which no choice saw, must confirm it
    best = max(pool, key=lambda c: (lifts[c.name], -pool.index(c)))
    cis = paired_span_cis(
        ts,
        values[best.name],
        champion_values,
        stat,
        block=cfg.bootstrap_block,
        n=cfg.n_bootstrap,
        level=cfg.ci_level,
        seed=seed,
        confirm_fraction=cfg.confirm_fraction,
    )
    put_span_intervals(metrics, LIFT_KEY, cis)
    metrics[f"{PREFIX}/challenger_is_learned"] = 1.0 if best.kind == "learned" else 0.0
    same = bool(np.array_equal(values[best.name], champion_values))
    metrics[f"{PREFIX}/challenger_equals_champion"] = 1.0 if same else 0.0
    gates = [
        *lower_bound_gates(
            GATE,
            metrics,
            LIFT_KEY,
            min_lift,
            f"lower bound of the challenger {best.name}'s lift over the champion "
            f"{champion.label} in {measure}, paired",
            scale=scale,
            unit=unit,
        ),
        check(
            "challenger_parity",
            best.export.max_abs_diff,
            parity_tolerance,
            "<=",
            description="the challenger's ONNX against its own framework's output",
        ),
    ]
    if all(g.passed for g in gates):
        lo = cis["confirm"].low * scale
        reason = (
            f"challenger {best.name} ({best.kind}) replaces champion {champion.label}: lift "
            f"lower bound {cis['test'].low * scale:+.3g} {unit} on the test span, "
            f"{lo:+.3g} {unit} on the confirmation span"
        )
    elif same:
        reason = (
            f"champion {champion.label} stays: the challenger {best.name} decides exactly as it "
            "does (a tie keeps the champion)"
        )
    else:
        bad = next(g for g in gates if not g.passed)
        if bad.name == "challenger_parity":
            why = blocked_reason([bad])
        else:
            span = "confirmation" if bad.span == "confirm" else "test"
            est = bad.estimate if bad.estimate is not None else math.nan
            why = (
                f"lift {est:+.3g} {unit}, lower bound {bad.value:+.3g} {unit} <= "
                f"{bad.threshold:g} on the {span} span"
            )
        reason = f"champion {champion.label} stays: challenger {best.name} ({best.kind}) {why}"
    return ChampionDecision(champion, best, gates, reason, metrics, table)
