"""The sizer's plots: equity curves of the four sizers and lambda / VaR / CVaR per update."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.evaluation.risk import equity_curve

if TYPE_CHECKING:
    from pipelines.models.sizer.evaluate import SizerRun


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_equity_curves(runs: Mapping[str, SizerRun], path: Path) -> Path:
    """Compounded equity of every sizer on the held-out span, one line each."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, run in runs.items():
        ax.plot(pd.DatetimeIndex(run.ts), equity_curve(run.returns), label=name, lw=1.2)
    ax.set_title("Held-out equity (equal weight across symbols, net of costs)")
    ax.set_ylabel("equity")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_lambda_trajectory(history: pd.DataFrame, path: Path) -> Path:
    """Lagrange multiplier (left) and the rollout VaR / CVaR against the bound (right)."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    x = history["update"].to_numpy() if len(history) else np.empty(0)
    if len(history):
        ax1.plot(x, history["lambda"], marker=".", label="lambda")
        ax2.plot(x, history["var"], label="VaR (window loss)")
        ax2.plot(x, history["cvar"], label="CVaR (window loss)")
        ax2.plot(x, history["bound"], "k--", label="bound")
    ax1.set_xlabel("update")
    ax1.set_title("Lagrange multiplier")
    ax2.set_xlabel("update")
    ax2.set_title("Rollout tail of window returns")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
