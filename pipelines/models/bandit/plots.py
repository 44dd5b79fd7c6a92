"""Figures of the bandit run: arm choices on the held-out span, OPE estimates vs baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipelines.data.schema import REGIMES
from pipelines.evaluation.ope import ESTIMATORS, Estimate

_REGIME_COLORS = ("#d9f0d3", "#f4cccc", "#e0e0e0", "#f9cb9c")


def plot_arm_choices(decisions: pd.DataFrame, arm_names: Sequence[str], path: Path) -> Path:
    """Chosen arm over time per symbol; true regimes shaded behind it when known.

    ``decisions`` has columns ``ts``, ``symbol``, ``chosen`` (arm index) and optionally
    ``true_regime``.
    """
    symbols = sorted(decisions["symbol"].unique())
    # A bare Figure renders with the Agg canvas and touches no pyplot global state.
    fig = Figure(figsize=(11, 2.8 * len(symbols)))
    axes = fig.subplots(len(symbols), 1, squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        d = decisions[decisions["symbol"] == symbol].sort_values("ts")
        if "true_regime" in d:
            regime = d["true_regime"].to_numpy()
            ts = d["ts"].to_numpy()
            change = np.flatnonzero(np.diff(regime)) + 1
            starts = np.r_[0, change]
            ends = np.r_[change, len(d) - 1]
            for s, e in zip(starts, ends, strict=True):
                ax.axvspan(ts[s], ts[e], color=_REGIME_COLORS[int(regime[s])], lw=0)
        ax.scatter(d["ts"], d["chosen"], s=4, c="k")
        ax.set_yticks(range(len(arm_names)))
        ax.set_yticklabels(arm_names, fontsize=7)
        ax.set_title(f"{symbol}: arm chosen by the bandit (held-out span)", fontsize=9)
    if "true_regime" in decisions:
        handles = [Rectangle((0, 0), 1, 1, color=c) for c in _REGIME_COLORS]
        axes[0, 0].legend(handles, REGIMES, fontsize=7, loc="upper right", ncol=4)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_ope(
    table: Mapping[str, Mapping[str, Estimate]],
    truth: Mapping[str, float],
    path: Path,
    unit: float = 1e4,
) -> Path:
    """Point estimates with CIs per policy and estimator (bps), the true value as a cross."""
    names = [n for n in table if not n.startswith("lift/")]
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    width = 0.8 / len(ESTIMATORS)
    for j, est in enumerate(ESTIMATORS):
        x = np.arange(len(names)) + (j - 1) * width
        v = np.array([table[n][est].value for n in names]) * unit
        lo = np.array([table[n][est].low for n in names]) * unit
        hi = np.array([table[n][est].high for n in names]) * unit
        ax.errorbar(x, v, yerr=[v - lo, hi - v], fmt="o", capsize=3, label=est.upper())
    tx = [i for i, n in enumerate(names) if n in truth]
    ax.scatter(tx, [truth[names[i]] * unit for i in tx], marker="x", c="k", label="true value")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("value per decision (bps)")
    ax.set_title("Off-policy estimates on the held-out span (bootstrap CIs)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
