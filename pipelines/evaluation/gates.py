"""Every publish gate, in one module: what a model must show on held-out data to ship.

Trainers measure (metrics with flat, prefixed keys); this module judges. A gate reads the
metrics a trainer reported and the model's config section, so tightening a gate or adding
one never touches a trainer. The ONNX parity gate is the same for every model and uses one
configured tolerance (``training.parity_tolerance``).

A gate whose value is NaN (a metric that could not be computed) fails: absence of evidence
never publishes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal[">=", "<=", ">", "<"]
PARITY_GATE = "onnx_max_abs_diff"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    "<": lambda v, t: v < t,
}


@dataclass(frozen=True)
class Gate:
    """One publish gate's verdict: ``value direction threshold`` decides ``passed``.

    ``ci_low``/``ci_high`` carry the block-bootstrap interval of ``value`` when it has one;
    ``description`` says in words what the gate asks, for the report's one-line reason.
    """

    name: str
    value: float
    threshold: float
    passed: bool
    direction: Direction = ">="
    unit: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "value": float(self.value),
            "threshold": float(self.threshold),
            "passed": bool(self.passed),
            "direction": self.direction,
            "unit": self.unit,
            "description": self.description,
        }
        if self.ci_low is not None and self.ci_high is not None:
            out["ci_low"], out["ci_high"] = float(self.ci_low), float(self.ci_high)
        return out

    @property
    def reason(self) -> str:
        """One line: why this gate failed (or that it passed)."""
        unit = f" {self.unit}" if self.unit else ""
        verdict = "passed" if self.passed else "failed"
        what = f" ({self.description})" if self.description else ""
        return (
            f"{self.name} {verdict}: {self.value:.4g}{unit} needs {self.direction} "
            f"{self.threshold:.4g}{unit}{what}"
        )


def check(
    name: str,
    value: float,
    threshold: float,
    direction: Direction = ">=",
    *,
    unit: str = "",
    ci: tuple[float, float] | None = None,
    description: str = "",
) -> Gate:
    """Judge ``value direction threshold``; NaN or inf values fail."""
    value, threshold = float(value), float(threshold)
    passed = math.isfinite(value) and _COMPARE[direction](value, threshold)
    low, high = (float(ci[0]), float(ci[1])) if ci is not None else (None, None)
    return Gate(name, value, threshold, bool(passed), direction, unit, low, high, description)


def parity_gate(max_abs_diff: float, tolerance: float) -> Gate:
    """ONNX must reproduce the framework's own output before anything is published."""
    return check(
        PARITY_GATE,
        max_abs_diff,
        tolerance,
        "<=",
        description="ONNX output vs the framework's own output, max abs diff",
    )


def failed(gates: Sequence[Gate]) -> list[Gate]:
    return [g for g in gates if not g.passed]


def blocked_reason(gates: Sequence[Gate]) -> str:
    """The report's one line for a blocked model: its first failing gate, in words."""
    bad = failed(gates)
    if not bad:
        return ""
    return f"gate(s) {', '.join(g.name for g in bad)} failed; first: {bad[0].reason}"


def _ci(metrics: Mapping[str, float], key: str) -> tuple[float, float] | None:
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    if low is None or high is None:
        return None
    return float(low), float(high)


def _get(metrics: Mapping[str, float], key: str) -> float:
    return float(metrics.get(key, math.nan))


# --------------------------------------------------------------------------- regime
def regime_gates(metrics: Mapping[str, float], cfg: Any) -> list[Gate]:
    """Accuracy floor (true regimes or rule labels), margins over both baselines, coverage."""
    ba = _get(metrics, "holdout/balanced_accuracy")
    on_truth = metrics.get("label/true_regime", 0.0) == 1.0
    floor = cfg.min_balanced_accuracy if on_truth else cfg.min_balanced_accuracy_rule
    gates = [
        check(
            "balanced_accuracy",
            ba,
            floor,
            description="held-out balanced accuracy against "
            + ("the generator's true regimes" if on_truth else "the forward-looking rule labels"),
        )
    ]
    for name in ("majority", "two_input_logistic"):
        margin = ba - _get(metrics, f"baseline/{name}/balanced_accuracy")
        gates.append(
            check(
                f"margin_over_{name}",
                margin,
                cfg.min_margin_over_baselines,
                description=f"balanced accuracy minus the {name.replace('_', ' ')} baseline's",
            )
        )
    cov_err = abs(_get(metrics, "conformal/coverage") - _get(metrics, "conformal/target_coverage"))
    gates.append(
        check(
            "conformal_coverage_error",
            cov_err,
            cfg.coverage_tolerance,
            "<=",
            description="|held-out coverage of the conformal sets - target|",
        )
    )
    return gates


# --------------------------------------------------------------------------- bandit
def bandit_gates(metrics: Mapping[str, float], cfg: Any) -> list[Gate]:
    """The doubly-robust lift over the best single arm and over uniform, in bps per decision."""
    lift_key = "lift/bandit_vs_best_arm/dr"
    lift = _get(metrics, lift_key) * 1e4
    ci = _ci(metrics, lift_key)
    vs_uniform = (_get(metrics, "ope/bandit/dr") - _get(metrics, "ope/uniform/dr")) * 1e4
    return [
        check(
            "bandit_dr_lift_vs_best_arm",
            lift,
            cfg.min_dr_lift * 1e4,
            ">",
            unit="bps",
            ci=(ci[0] * 1e4, ci[1] * 1e4) if ci else None,
            description="doubly-robust value of the bandit minus the best single arm's "
            "(chosen on the training span), per decision",
        ),
        check(
            "bandit_dr_lift_vs_uniform",
            vs_uniform,
            0.0,
            ">",
            unit="bps",
            description="doubly-robust value of the bandit minus the uniform policy's",
        ),
    ]


# --------------------------------------------------------------------------- sizer
def sizer_gates(metrics: Mapping[str, float], cfg: Any) -> list[Gate]:
    """CVaR(5%) per bar at least ``gate_cvar_improvement`` below fixed 1.0x, Sharpe kept."""
    mine, fixed = _get(metrics, "holdout/cvar_bar"), _get(metrics, "baseline/fixed_1x/cvar_bar")
    improvement = 1.0 - mine / fixed if fixed > 0 else 0.0
    s_fixed = _get(metrics, "baseline/fixed_1x/sharpe")
    # "90 % of" a negative Sharpe would be a higher bar than the baseline; allow 10 % of |S|.
    s_threshold = s_fixed - (1.0 - cfg.gate_sharpe_ratio) * abs(s_fixed)
    return [
        check(
            "cvar_bar_improvement_vs_fixed_1x",
            improvement,
            cfg.gate_cvar_improvement,
            description="relative cut of per-bar CVaR(5%) against fixed 1.0x sizing",
        ),
        check(
            "sharpe_vs_fixed_1x",
            _get(metrics, "holdout/sharpe"),
            s_threshold,
            description=f"annualized Sharpe at least {cfg.gate_sharpe_ratio:.0%} of fixed 1.0x's",
        ),
    ]


# --------------------------------------------------------------------------- meta-labeler
def metalabel_gates(metrics: Mapping[str, float], cfg: Any) -> list[Gate]:
    """Filtering the arm's trades must raise held-out precision and net P&L per bar, with a
    block-bootstrap lower bound above zero, and the probabilities must beat the base rate."""
    prec_key, pnl_key = "lift/precision", "lift/pnl_per_bar"
    prec_ci, pnl_ci = _ci(metrics, prec_key), _ci(metrics, pnl_key)
    pnl_bps_ci = (pnl_ci[0] * 1e4, pnl_ci[1] * 1e4) if pnl_ci else None
    return [
        check(
            "precision_lift_lower_bound",
            prec_ci[0] if prec_ci else math.nan,
            0.0,
            ">",
            ci=prec_ci,
            description="lower bound of (precision of the filtered trades - the arm's base rate)",
        ),
        check(
            "pnl_per_bar_lift_lower_bound",
            pnl_bps_ci[0] if pnl_bps_ci else math.nan,
            0.0,
            ">",
            unit="bps",
            ci=pnl_bps_ci,
            description="lower bound of (net P&L per bar filtered - unfiltered)",
        ),
        check(
            "brier_vs_base_rate",
            _get(metrics, "holdout/brier") - _get(metrics, "baseline/base_rate/brier"),
            cfg.max_brier_excess,
            "<=",
            description="held-out Brier score minus the base-rate forecast's",
        ),
    ]


#: model name -> its gate rule; the registry's specs point here.
GateRule = Callable[[Mapping[str, float], Any], list[Gate]]


def evaluate(
    rule: GateRule, metrics: Mapping[str, float], cfg: Any, parity: float, tolerance: float
) -> list[Gate]:
    """A model's gates: its own rule, then the shared parity gate."""
    return [*rule(metrics, cfg), parity_gate(parity, tolerance)]
