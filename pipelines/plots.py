"""Run-level plots that belong to no single model."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN

REGIME_COLORS = ("#2e7d32", "#c62828", "#546e7a", "#6a1b9a")


def plot_bars_overview(bars: pd.DataFrame, path: Path, max_symbols: int = 4) -> Path:
    """Close price per symbol (log scale), shaded by the true regime when the data has one."""
    symbols = list(dict.fromkeys(bars["symbol"]))[:max_symbols]
    fig, axes = plt.subplots(len(symbols), 1, figsize=(11, 2.6 * len(symbols)), squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        sub = bars[bars["symbol"] == symbol]
        ax.plot(sub["ts"], sub["close"], color="#1d2430", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(symbol, loc="left", fontsize=10)
        if TRUE_REGIME_COLUMN in sub:
            regime = sub[TRUE_REGIME_COLUMN].to_numpy()
            ts = sub["ts"].to_numpy()
            change = np.flatnonzero(np.diff(regime)) + 1
            starts = np.concatenate([[0], change])
            ends = np.concatenate([change, [len(regime)]])
            for s, e in zip(starts, ends, strict=True):
                ax.axvspan(ts[s], ts[e - 1], color=REGIME_COLORS[int(regime[s])], alpha=0.15, lw=0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.3) for c in REGIME_COLORS]
    if TRUE_REGIME_COLUMN in bars:
        fig.legend(handles, REGIMES, loc="upper right", ncol=4, fontsize=8)
    fig.suptitle("Bars (log close) and true regimes", x=0.01, ha="left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
