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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.evaluation.spans import confirm_key

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

    ``ci_low``/``ci_high`` carry the block-bootstrap interval of the estimate when it has
    one and ``estimate`` its point value (a lower-bound gate's ``value`` is the interval's low
    end, so the report shows ``estimate [ci_low, ci_high]`` beside it); ``span`` says which
    span judged it (``test`` or ``confirm``, docs/models.md); ``description`` says in words what
    the gate asks, for the report's one-line reason.
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
    estimate: float | None = None
    span: str = "test"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "value": float(self.value),
            "threshold": float(self.threshold),
            "passed": bool(self.passed),
            "direction": self.direction,
            "unit": self.unit,
            "description": self.description,
            "span": self.span,
        }
        if self.estimate is not None:
            out["estimate"] = float(self.estimate)
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
            f"{self.name} {verdict}: {_figure(self.value)}{unit} needs {self.direction} "
            f"{_figure(self.threshold)}{unit}{what}"
        )


def _figure(value: float) -> str:
    """4 significant digits; a value that rounds to zero prints ``0``, never ``-0``."""
    text = f"{float(value):.4g}"
    return "0" if re.fullmatch(r"-0(\.0*)?(e[+-]?\d+)?", text) else text


def check(
    name: str,
    value: float,
    threshold: float,
    direction: Direction = ">=",
    *,
    unit: str = "",
    ci: tuple[float, float] | None = None,
    description: str = "",
    estimate: float | None = None,
    span: str = "test",
) -> Gate:
    """Judge ``value direction threshold``; NaN or inf values fail.

    A negated zero (``-tolerance`` with a tolerance of 0) is stored as 0, so the log, Prefect,
    the manifest and the report never print ``-0``.
    """
    value, threshold = float(value) + 0.0, float(threshold) + 0.0
    passed = math.isfinite(value) and _COMPARE[direction](value, threshold)
    low, high = (float(ci[0]) + 0.0, float(ci[1]) + 0.0) if ci is not None else (None, None)
    est = float(estimate) + 0.0 if estimate is not None else None
    return Gate(
        name, value, threshold, bool(passed), direction, unit, low, high, description, est, span
    )


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


def lower_bound_gate(
    name: str,
    metrics: Mapping[str, float],
    key: str,
    threshold: float,
    description: str,
    *,
    scale: float = 1.0,
    unit: str = "",
    span: str = "test",
) -> Gate:
    """``<key>_ci_low > threshold``: the one-sided bound of a lift with its CI, in ``unit``
    (``scale`` converts the metric, e.g. 1e4 for fractions to bps)."""
    ci = _ci(metrics, key)
    return check(
        name,
        _get(metrics, f"{key}_ci_low") * scale,
        threshold * scale,
        ">",
        unit=unit,
        ci=(ci[0] * scale, ci[1] * scale) if ci else None,
        description=description,
        estimate=_get(metrics, key) * scale,
        span=span,
    )


def lower_bound_gates(
    name: str,
    metrics: Mapping[str, float],
    key: str,
    threshold: float,
    description: str,
    *,
    scale: float = 1.0,
    unit: str = "",
) -> list[Gate]:
    """The lower-bound gate on the test span (``key``) and again on the confirmation span
    (``confirm/key``, named ``<name>_confirmation``): a lift that the test span alone shows
    may be the winner's curse; the later span nothing looked at must show it too. A trainer
    that reports no confirmation estimate fails the second gate (NaN never publishes)."""
    return [
        lower_bound_gate(name, metrics, key, threshold, description, scale=scale, unit=unit),
        lower_bound_gate(
            f"{name}_confirmation",
            metrics,
            confirm_key(key),
            threshold,
            f"{description}; on the confirmation span, which nothing saw before this decision",
            scale=scale,
            unit=unit,
            span="confirm",
        ),
    ]


# --------------------------------------------------------------------------- regime
def regime_gates(metrics: Mapping[str, float], cfg: Any) -> list[Gate]:
    """Held-out log loss better than the strongest baseline (majority, two-input logistic,
    persistence; the strongest on the training span's folds) with a one-sided 95% paired
    block-bootstrap lower bound above ``min_log_loss_lift`` on the test span and again on the
    confirmation span; the conformal sets of the configured method (``cfg.conformal_method``,
    run in time order over the held-out stream) at their target coverage within
    ``coverage_tolerance`` on the test span and again on the confirmation span.

    No absolute accuracy floor: only synthetic truth can reach one, and a floor says nothing
    about whether the model adds anything to what a simple rule already knows.
    """
    key = "lift/log_loss_vs_best_baseline"
    best = metrics.get("baseline/best/index", math.nan)
    names = ("majority", "two_input_logistic", "persistence")
    best_name = names[int(best)] if math.isfinite(best) and 0 <= best < len(names) else "best"
    method = str(cfg.conformal_method)
    target = _get(metrics, "conformal/target_coverage")
    cov_key = f"conformal/{method}/coverage"
    coverage = [
        check(
            "conformal_coverage_error" + ("" if span == "test" else "_confirmation"),
            abs(_get(metrics, k) - target),
            cfg.coverage_tolerance,
            "<=",
            description=f"|held-out coverage of the {method} conformal sets - target|"
            + ("" if span == "test" else ", on the confirmation span"),
            span=span,
        )
        for span, k in (("test", cov_key), ("confirm", confirm_key(cov_key)))
    ]
    return [
        *lower_bound_gates(
            "log_loss_lift_lower_bound",
            metrics,
            key,
            cfg.min_log_loss_lift,
            f"lower bound of (log loss of the strongest baseline, {best_name}, chosen on the "
            "training span - the model's) per held-out row",
            unit="nats",
        ),
        *coverage,
    ]


# --------------------------------------------------------------------------- bandit
def bandit_gates(metrics: Mapping[str, float], cfg: Any) -> list[Gate]:
    """On bars, the bandit's exact lift over the best single arm (chosen on the training
    span), per decision in bps, with its one-sided 95% paired block-bootstrap lower bound above
    ``min_lift`` on the test span and again on the confirmation span; and a positive exact lift
    over the best arm per predicted regime on both spans. Every arm's net reward is known from
    the bars, so no off-policy estimate (and its variance) enters these gates. When the bandit
    learned from the bot's own logs, where only the traded arm's reward is known, the
    doubly-robust lift over the bot's logging policy is judged on the held-out logs with their
    real propensities (test and confirmation spans), unless the learned candidate's effective
    sample on those logs is below ``logged.min_ess``: then one gate says so and nothing is
    scored (an estimate on a dozen effective decisions is noise, however it comes out)."""
    if metrics.get("train/feedback", 0.0) == 1.0:
        if metrics.get("logs/ess_sufficient", 1.0) == 0.0:
            ess = min(
                metrics.get("logs/ess/bandit", 0.0), metrics.get("confirm/logs/ess/bandit", 0.0)
            )
            minimum = metrics.get("logs/min_ess", 0.0)
            return [
                check(
                    "logged_effective_sample",
                    ess,
                    minimum,
                    ">=",
                    description=f"effective sample {ess:.1f} < {minimum:.0f} on the bot's logs "
                    "(the logging policy rarely played the candidate's arms): not scored",
                )
            ]
        return [
            *lower_bound_gates(
                "logged_dr_lift_lower_bound",
                metrics,
                "logs/lift/candidate_vs_logging/dr",
                cfg.min_lift,
                "lower bound of the doubly-robust lift of the candidate over the bot's own "
                "policy, on the bot's logs with their propensities",
                scale=1e4,
                unit="bps",
            ),
            *(
                check(
                    "logged_estimate_reliable" + ("" if span == "test" else "_confirmation"),
                    metrics.get(key, 0.0),
                    1.0,
                    ">=",
                    description="effective sample size and largest importance weight within "
                    "limits" + ("" if span == "test" else ", on the confirmation span"),
                    span=span,
                )
                for span, key in (("test", "logs/reliable"), ("confirm", "confirm/logs/reliable"))
            ),
        ]
    regime_key = "lift/bandit_vs_regime_arm/exact"
    regime_gates = [
        check(
            "bandit_lift_vs_regime_arm" + ("" if span == "test" else "_confirmation"),
            _get(metrics, key) * 1e4,
            0.0,
            ">",
            unit="bps",
            ci=(ci[0] * 1e4, ci[1] * 1e4) if (ci := _ci(metrics, key)) else None,
            description="exact net reward of the bandit minus the best arm per predicted "
            "regime's (a contextual rule chosen on the training span), per decision"
            + ("" if span == "test" else ", on the confirmation span"),
            estimate=_get(metrics, key) * 1e4,
            span=span,
        )
        for span, key in (("test", regime_key), ("confirm", confirm_key(regime_key)))
    ]
    return [
        *lower_bound_gates(
            "bandit_lift_lower_bound",
            metrics,
            "lift/bandit_vs_best_arm/exact",
            cfg.min_lift,
            "lower bound of the exact net reward of the bandit minus the best single arm's "
            "(chosen on the training span), per decision, paired per bar",
            scale=1e4,
            unit="bps",
        ),
        *regime_gates,
    ]


# --------------------------------------------------------------------------- sizer
def sizer_gates(metrics: Mapping[str, float], cfg: Any) -> list[Gate]:
    """Lower per-bar CVaR(5%) than a constant multiplier AND a volatility-targeting rule at
    the same mean leverage (one-sided 95% block-bootstrap lower bounds above zero, on the test
    span and again on the confirmation span), no Sharpe loss against the constant, and a
    positive Sharpe (test span: point estimates, docs/sizer.md says why). De-levering cannot
    pass: a constant multiplier at the model's own leverage is the baseline."""
    gates = [
        gate
        for base in ("constant", "vol_target")
        for gate in lower_bound_gates(
            f"cvar_cut_vs_{base}_lower_bound",
            metrics,
            f"lift/cvar_cut_vs_{base}",
            0.0,
            f"lower bound of (per-bar CVaR(5%) of the {base.replace('_', '-')} sizer at the "
            "same mean leverage - the model's)",
            scale=1e4,
            unit="bps",
        )
    ]
    gates.append(
        check(
            "sharpe_vs_constant",
            _get(metrics, "holdout/sharpe") - _get(metrics, "baseline/constant/sharpe"),
            -cfg.gate_sharpe_tolerance,
            ">=",
            description="annualized Sharpe minus the constant-multiplier baseline's",
        )
    )
    gates.append(
        check(
            "sharpe_positive",
            _get(metrics, "holdout/sharpe"),
            0.0,
            ">",
            description="annualized Sharpe of the sized arm stream on the held-out span",
        )
    )
    return gates


# --------------------------------------------------------------------------- meta-labeler
def metalabel_gates(metrics: Mapping[str, float], cfg: Any) -> list[Gate]:
    """The meta-labeler against filtering by the per-arm prior P(win | arm, volatility bucket),
    P&L first: net P&L per bar above the prior's at the same kept share, and precision within
    the prior's cells (arm mix, which the prior already captures, earns nothing), each with its
    block-bootstrap lower bound above zero on the test AND the confirmation span; a filter
    that keeps almost nothing, or probabilities worse than the prior's, also fail."""
    return [
        *lower_bound_gates(
            "pnl_lift_vs_arm_prior_lower_bound",
            metrics,
            "lift/pnl_per_bar_vs_arm_prior",
            0.0,
            "lower bound of (net P&L per bar of the kept trades - of the trades the per-arm "
            "prior keeps at the same kept share)",
            scale=1e4,
            unit="bps",
        ),
        *lower_bound_gates(
            "precision_within_arm_lower_bound",
            metrics,
            "lift/precision_within_arm",
            0.0,
            "lower bound of (precision of the kept trades - their own arm x volatility "
            "bucket's win rate on the same bars)",
            unit="pts",
        ),
        check(
            "kept_trade_share",
            _get(metrics, "holdout/kept_share"),
            cfg.min_trade_share,
            ">=",
            description="share of test-span trades the filter keeps at its P(win) threshold "
            f"{_figure(_get(metrics, 'holdout/threshold'))} (the threshold table's chosen row)",
        ),
        check(
            "brier_vs_arm_prior",
            _get(metrics, "holdout/brier") - _get(metrics, "baseline/arm_prior/brier"),
            cfg.max_brier_excess,
            "<=",
            description="test-span Brier score minus the per-arm prior's",
        ),
    ]


#: model name -> its gate rule; the registry's specs point here.
GateRule = Callable[[Mapping[str, float], Any], list[Gate]]


def evaluate(
    rule: GateRule, metrics: Mapping[str, float], cfg: Any, parity: float, tolerance: float
) -> list[Gate]:
    """A model's gates: its own rule, then the shared parity gate."""
    return [*rule(metrics, cfg), parity_gate(parity, tolerance)]
