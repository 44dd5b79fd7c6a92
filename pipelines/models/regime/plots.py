"""The regime timeline plot: target vs prediction, class probabilities, BOCD changepoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.plots import REGIME_SHADE_ALPHA, regime_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# Each panel's legend sits right of its axes, outside them: inside (upper right) it covered
# the most recent bars, the part of the timeline a reader looks at first.
def _legend_outside(ax: Axes, fontsize: int) -> None:
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def plot_regime_timeline(
    ts: pd.Series,
    close: np.ndarray,
    y_true: np.ndarray,
    proba: np.ndarray,
    cp_prob: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    *,
    reduce_threshold: float,
    exit_threshold: float,
    truth_label: str = "true regime",
    title: str = "",
) -> Path:
    """Four stacked panels over one symbol's held-out span, saved as PNG (see
    :func:`regime_timeline_figure`)."""
    fig = regime_timeline_figure(
        ts,
        close,
        y_true,
        proba,
        cp_prob,
        class_names,
        reduce_threshold=reduce_threshold,
        exit_threshold=exit_threshold,
        truth_label=truth_label,
        title=title,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def regime_timeline_figure(
    ts: pd.Series,
    close: np.ndarray,
    y_true: np.ndarray,
    proba: np.ndarray,
    cp_prob: np.ndarray,
    class_names: Sequence[str],
    *,
    reduce_threshold: float,
    exit_threshold: float,
    truth_label: str = "true regime",
    title: str = "",
) -> Figure:
    """Four stacked panels over one symbol's held-out span, legends right of the axes.

    Price (shaded by the target); target vs predicted class; predicted class
    probabilities; BOCD changepoint probability with the reduce and exit thresholds. Classes
    take the shared regime palette, so a regime has the same colour here as in every plot.
    """
    from matplotlib.figure import Figure  # Agg canvas, no pyplot global state

    t = pd.to_datetime(pd.Series(ts)).to_numpy()
    k = len(class_names)
    fig = Figure(figsize=(11, 8.5))
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1.4, 1.4, 1.2]})
    ax_p, ax_c, ax_pr, ax_cp = axes
    colors = [regime_color(name) for name in class_names]

    ax_p.plot(t, close, color="black", lw=0.8)
    for c in range(k):
        mask = y_true == c
        ax_p.fill_between(
            t,
            0,
            1,
            where=mask,
            color=colors[c],
            alpha=REGIME_SHADE_ALPHA,
            lw=0,
            transform=ax_p.get_xaxis_transform(),
        )
    ax_p.set_ylabel("close")
    ax_p.set_title(title or "Regime timeline (shading: target)")

    ax_c.step(t, y_true, where="post", lw=1.6, color="black", label=truth_label)
    ax_c.step(
        t,
        proba.argmax(axis=1),
        where="post",
        lw=1.0,
        color="#6b7280",
        ls="--",
        label="predicted",
    )
    ax_c.set_yticks(range(k), list(class_names))
    _legend_outside(ax_c, 8)

    ax_pr.stackplot(t, proba.T, colors=colors, labels=list(class_names), alpha=0.8)
    ax_pr.set_ylim(0, 1)
    ax_pr.set_ylabel("P(class)")
    _legend_outside(ax_pr, 7)

    ax_cp.plot(t, cp_prob, color="#1d2430", lw=0.9, label="BOCD changepoint prob")
    ax_cp.axhline(reduce_threshold, color="#6b7280", ls="--", lw=0.8, label="reduce")
    ax_cp.axhline(exit_threshold, color="#1d2430", ls=":", lw=1.0, label="exit")
    changes = np.flatnonzero(np.diff(y_true) != 0) + 1
    for i in changes:
        ax_cp.axvline(t[i], color="grey", lw=0.6, alpha=0.6)
    ax_cp.set_ylim(0, 1.02)
    ax_cp.set_ylabel("P(change)")
    _legend_outside(ax_cp, 7)
    fig.autofmt_xdate()
    fig.tight_layout()  # makes room on the right for the legends
    return fig
