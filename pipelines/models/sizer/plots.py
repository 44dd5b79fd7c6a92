"""The sizer's plots: equity curves of the four sizers and lambda / VaR / CVaR per update."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipelines.evaluation.risk import equity_curve
from pipelines.plots import PCT, log_y_axis

if TYPE_CHECKING:
    from pipelines.models.sizer.evaluate import SizerRun


def equity_figure(runs: Mapping[str, SizerRun]) -> Figure:
    """Compounded equity of every sizer on a log axis, its final multiple in the legend.

    A log axis keeps a 175x curve and a 1.1x curve readable on one plot, and equal slopes
    mean equal growth rates. Equity at or below zero (a total loss) is masked by the axis.
    """
    fig = Figure(figsize=(9, 4.5))  # Agg canvas, no pyplot global state
    ax = fig.subplots()
    for name, run in runs.items():
        eq = equity_curve(run.returns)
        final = float(eq[-1]) if eq.size else 1.0
        ax.plot(pd.DatetimeIndex(run.ts), eq, label=f"{name} ({final:.3g}x)", lw=1.2)
    log_y_axis(ax)
    ax.axhline(1.0, color="grey", lw=0.6)
    ax.set_title("Held-out equity (equal weight across symbols, net of costs)")
    ax.set_ylabel("equity, start = 1 (log scale)")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def plot_equity_curves(runs: Mapping[str, SizerRun], path: Path) -> Path:
    """Save ``equity_figure(runs)`` as PNG."""
    fig = equity_figure(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_lambda_trajectory(history: pd.DataFrame, path: Path) -> Path:
    """Lagrange multiplier (left) and the rollout VaR / CVaR against the bound (right, in %).

    ``history`` holds ``update``, ``lambda`` and ``var``, ``cvar``, ``bound`` as fractions of
    capital per window; they are drawn in percent, the unit the report's table uses.
    """
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    x = history["update"].to_numpy() if len(history) else np.empty(0)
    if len(history):
        ax1.plot(x, history["lambda"], marker=".", label="lambda")
        ax2.plot(x, history["var"] * PCT.scale, label="VaR (window loss)")
        ax2.plot(x, history["cvar"] * PCT.scale, label="CVaR (window loss)")
        ax2.plot(x, history["bound"] * PCT.scale, "k--", label="bound")
        ax2.legend()
    ax1.set_xlabel("update")
    ax1.set_title("Lagrange multiplier")
    ax2.set_xlabel("update")
    ax2.set_ylabel(f"window loss ({PCT.label} of capital)")
    ax2.set_title("Rollout tail of window returns")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
