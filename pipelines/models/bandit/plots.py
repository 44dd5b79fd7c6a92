"""Figures and the person-facing OPE table of the bandit run.

Rewards are stored as fractions of capital per decision and shown in basis points (the unit
``pipelines.plots.BPS``) in the plot and the table alike; a paired lift is named
``<policy> − <reference>`` wherever a person reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipelines.data.schema import REGIMES
from pipelines.evaluation.ope import ESTIMATORS, Estimate
from pipelines.plots import BPS, regime_legend_handles, shade_regimes

LIFT_PREFIX = "lift/"


def lift_label(policy: str, reference: str) -> str:
    """The name of a paired difference as a person reads it: ``policy − reference``."""
    return f"{policy} − {reference}"


def plot_arm_choices(decisions: pd.DataFrame, arm_names: Sequence[str], path: Path) -> Path:
    """Chosen arm over time per symbol; true regimes shaded behind it when known.

    ``decisions`` has columns ``ts``, ``symbol``, ``chosen`` (arm index) and optionally
    ``true_regime`` (index into ``REGIMES``).
    """
    symbols = sorted(decisions["symbol"].unique())
    # A bare Figure renders with the Agg canvas and touches no pyplot global state.
    fig = Figure(figsize=(11, 2.8 * len(symbols)))
    axes = fig.subplots(len(symbols), 1, squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        d = decisions[decisions["symbol"] == symbol].sort_values("ts")
        if "true_regime" in d:
            shade_regimes(ax, d["ts"].to_numpy(), d["true_regime"].to_numpy())
        ax.scatter(d["ts"], d["chosen"], s=4, c="k")
        ax.set_yticks(range(len(arm_names)))
        ax.set_yticklabels(arm_names, fontsize=7)
        ax.set_title(f"{symbol}: arm chosen by the bandit (held-out span)", fontsize=9)
    if "true_regime" in decisions:
        axes[0, 0].legend(regime_legend_handles(), REGIMES, fontsize=7, loc="upper right", ncol=4)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_ope(
    table: Mapping[str, Mapping[str, Estimate]],
    truth: Mapping[str, float],
    path: Path,
) -> Path:
    """Point estimates with CIs per policy and estimator in bps, the true value as a cross."""
    names = [n for n in table if not n.startswith(LIFT_PREFIX)]
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    width = 0.8 / len(ESTIMATORS)
    # estimators in greys and marker shapes, so no series borrows a regime's palette colour
    styles = (("#1d2430", "o"), ("#6b7280", "s"), ("#9ca3af", "D"))
    for j, est in enumerate(ESTIMATORS):
        x = np.arange(len(names)) + (j - 1) * width
        v = np.array([table[n][est].value for n in names]) * BPS.scale
        lo = np.array([table[n][est].low for n in names]) * BPS.scale
        hi = np.array([table[n][est].high for n in names]) * BPS.scale
        color, marker = styles[j % len(styles)]
        ax.errorbar(
            x, v, yerr=[v - lo, hi - v], fmt=marker, color=color, capsize=3, label=est.upper()
        )
    tx = [i for i, n in enumerate(names) if n in truth]
    if tx:
        ax.hlines(
            [truth[names[i]] * BPS.scale for i in tx],
            [i - 0.45 for i in tx],
            [i + 0.45 for i in tx],
            colors="k",
            linestyles=":",
            lw=1.2,
            label="true value",
        )
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel(f"reward per decision ({BPS.label})")
    ax.set_title("Off-policy estimates on the held-out span (bootstrap CIs)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _reference(policies: Sequence[str]) -> str:
    """The policy every lift is taken against: the one plain policy with no lift row."""
    plain = [p for p in policies if not p.startswith(LIFT_PREFIX)]
    lifted = {p[len(LIFT_PREFIX) :] for p in policies if p.startswith(LIFT_PREFIX)}
    candidates = [p for p in plain if p not in lifted]
    return candidates[0] if len(candidates) == 1 else "reference"


def ope_display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The OPE table (``ope_table.csv``) as a person reads it: bps, lifts as ``a − b``.

    ``frame`` has ``policy``, ``true_value`` and, per estimator, ``<est>``, ``<est>_ci_low``,
    ``<est>_ci_high`` in fractions of capital per decision. The result has one column per
    estimator holding ``value [low, high]`` in bps, with the unit in the header.
    """
    missing = {"policy"} - set(frame.columns)
    if missing:
        raise ValueError(f"OPE table: missing column(s) {sorted(missing)}")
    policies = [str(p) for p in frame["policy"]]
    reference = _reference(policies)

    def name(policy: str) -> str:
        if policy.startswith(LIFT_PREFIX):
            return lift_label(policy[len(LIFT_PREFIX) :], reference)
        return policy

    def bps(x: float) -> str:
        return "" if not np.isfinite(x) else f"{x * BPS.scale:.{BPS.digits}f}"

    out = pd.DataFrame({"policy": [name(p) for p in policies]})
    if "true_value" in frame:
        out[f"true value ({BPS.label})"] = [bps(float(v)) for v in frame["true_value"]]
    for est in ESTIMATORS:
        if est not in frame:
            continue
        cells = []
        for _, row in frame.iterrows():
            cell = bps(float(row[est]))
            if {f"{est}_ci_low", f"{est}_ci_high"} <= set(frame.columns):
                cell += (
                    f" [{bps(float(row[f'{est}_ci_low']))}, {bps(float(row[f'{est}_ci_high']))}]"
                )
            cells.append(cell)
        out[f"{est.upper()} ({BPS.label}) [CI]"] = cells
    return out
