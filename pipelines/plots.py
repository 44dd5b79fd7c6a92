"""What every figure and the report share: the regime palette, display units, the bars plot.

A person reads the same quantity in a plot, a table and a gate, so its colour and its unit are
decided once here: the four regimes have one colour each in every plot, and rewards, returns
and risks are shown in one unit each (``QUANTITY_UNITS``) whatever file they come from.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipelines.data.schema import REGIMES, TRUE_REGIME_COLUMN

# One colour per regime (Okabe-Ito, readable with the common colour-vision deficiencies).
REGIME_COLORS: Final[dict[str, str]] = {
    "TREND_UP": "#009E73",
    "TREND_DOWN": "#D55E00",
    "RANGE": "#0072B2",
    "PANIC": "#CC79A7",
}
# The opacity of regime shading behind a series, the same in every plot.
REGIME_SHADE_ALPHA: Final = 0.25
_OTHER_COLORS: Final = ("#E69F00", "#56B4E9", "#F0E442", "#999999")


def regime_color(regime: int | str) -> str:
    """The palette colour of a regime given by index into ``REGIMES`` or by name.

    Labels outside the four regimes (a rule labeller's own classes) get the remaining
    Okabe-Ito colours in a fixed order, so they never borrow a regime's colour.
    """
    if isinstance(regime, str):
        if regime in REGIME_COLORS:
            return REGIME_COLORS[regime]
        return _OTHER_COLORS[sum(map(ord, regime)) % len(_OTHER_COLORS)]
    index = int(regime)
    if 0 <= index < len(REGIMES):
        return REGIME_COLORS[REGIMES[index]]
    return _OTHER_COLORS[index % len(_OTHER_COLORS)]


def regime_legend_handles(names: tuple[str, ...] = REGIMES) -> list[Rectangle]:
    """Legend patches in the shading colour and opacity the plots use."""
    return [Rectangle((0, 0), 1, 1, color=regime_color(n), alpha=REGIME_SHADE_ALPHA) for n in names]


def log_y_axis(ax: Axes) -> None:
    """A log y axis labelled in plain numbers (100, 2, 0.5), not powers of ten.

    Call after plotting. Minor ticks are unlabelled over a decade or more, thinned to
    2, 3 and 5 times a power of ten over half a decade, so labels never crowd.
    """
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    decades = float(np.log10(high / low)) if low > 0 and high > low else 0.0
    if decades >= 1.0:
        ax.yaxis.set_minor_formatter(NullFormatter())
        return
    if decades >= 0.4:
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0)))
    ax.yaxis.set_minor_formatter(plain)


def shade_regimes(ax: Axes, ts: np.ndarray, regime: np.ndarray) -> None:
    """Shade each run of equal regime labels (indices into ``REGIMES``) behind a series."""
    labels = np.asarray(regime)
    if labels.size == 0:
        return
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]])
    for s, e in zip(starts, ends, strict=True):
        # a run spans to the next run's first bar, so neighbouring runs leave no gap
        stop = ts[e] if e < labels.size else ts[e - 1]
        ax.axvspan(ts[s], stop, color=regime_color(int(labels[s])), alpha=REGIME_SHADE_ALPHA, lw=0)


class Unit(NamedTuple):
    """How a stored quantity is shown: ``shown = stored * scale``, labelled ``label``."""

    label: str
    scale: float = 1.0
    digits: int = 4


BPS: Final = Unit("bps", 1e4, 2)
PCT: Final = Unit("%", 100.0, 2)
PCT_PER_YEAR: Final = Unit("%/yr", 100.0, 2)
FRACTION: Final = Unit("fraction", 1.0, 4)
ANNUALISED: Final = Unit("annualised", 1.0, 3)
MULTIPLE: Final = Unit("x", 1.0, 3)
ABS_DIFF: Final = Unit("max abs diff", 1.0, 3)
SECONDS: Final = Unit("s", 1.0, 3)
COUNT: Final = Unit("count", 1.0, 0)
ATR: Final = Unit("ATR", 1.0, 3)
PTS: Final = Unit("pts", 1.0, 2)

# (glob over a metric key, CSV column or gate name, unit); the first match wins. Stored
# values are fractions of capital (rewards, returns, risks), probabilities and plain counts.
QUANTITY_UNITS: Final[tuple[tuple[str, Unit], ...]] = (
    # stored in bps already (named so): shown as they are
    ("*_bps", Unit("bps", 1.0, 2)),
    # meta-labeler precision lifts: stored in percentage points (as its log and gates say)
    ("*lift/precision*", PTS),
    # bandit: reward per decision and its differences
    ("*lift*", BPS),
    ("ope/*", BPS),
    ("truth/*", BPS),
    ("regret/*", BPS),
    ("*mean_reward", BPS),
    ("mean_reward_kept", BPS),  # the meta-labeler's threshold table, beside its lift in bps
    ("true_value", BPS),
    # sizer: per-bar returns and risks in bps, longer horizons in %
    ("*ann_return", PCT_PER_YEAR),
    ("*ann_log_return", PCT_PER_YEAR),
    ("*max_drawdown", PCT),
    ("*var_bar", BPS),
    ("*cvar_bar", BPS),
    ("*cvar_day", PCT),
    ("*sharpe*", ANNUALISED),
    ("*sortino*", ANNUALISED),
    ("*mean_multiplier", MULTIPLE),
    ("*cvar_bar_improvement*", PCT),
    ("*turnover", Unit("position/bar", 1.0, 4)),
    # sizer training: window VaR/CVaR against the bound
    ("var", PCT),
    ("cvar", PCT),
    ("bound", PCT),
    ("mean_path_return", PCT),
    # recommendation parameters
    ("position_size_multiplier", MULTIPLE),
    ("risk_per_trade", Unit("% of equity", 100.0, 3)),
    ("stop_loss_multiplier", ATR),
    ("take_profit_multiplier", ATR),
    ("confidence_threshold", Unit("probability", 1.0, 3)),
    # classifier quality
    ("*balanced_accuracy*", FRACTION),
    ("*margin_over_*", FRACTION),
    ("*accuracy*", FRACTION),
    ("*recall*", FRACTION),
    ("*coverage*", FRACTION),
    ("ece", FRACTION),
    ("*/ece", FRACTION),
    ("*log_loss*", Unit("nats", 1.0, 4)),
    ("*_fraction", FRACTION),
    ("*share", FRACTION),
    # run bookkeeping
    ("*onnx*", ABS_DIFF),
    ("*parity*", ABS_DIFF),
    ("*seconds*", SECONDS),
    ("*n_decisions", COUNT),
    ("*support*", COUNT),
    ("samples", COUNT),
)


def unit_for(name: str) -> Unit | None:
    """The display unit of a quantity by its key, column or gate name (None: unknown, or a
    name such as ``lift_test (bps)`` that already says its unit: its values are shown as
    stored, never rescaled by a pattern that fits the name)."""
    key = name.lower()
    if key.endswith(")") and " (" in key:
        return None
    for pattern, unit in QUANTITY_UNITS:
        if fnmatch.fnmatchcase(key, pattern):
            return unit
    return None


def plot_bars_overview(bars: pd.DataFrame, path: Path, max_symbols: int = 4) -> Path:
    """Close price per symbol (log scale), shaded by the true regime when the data has one."""
    symbols = list(dict.fromkeys(bars["symbol"]))[:max_symbols]
    fig = Figure(figsize=(11, 2.6 * len(symbols)))  # Agg canvas, no pyplot global state
    axes = fig.subplots(len(symbols), 1, squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        sub = bars[bars["symbol"] == symbol]
        ax.plot(sub["ts"], sub["close"], color="#1d2430", lw=0.8)
        log_y_axis(ax)
        ax.set_ylabel("close (log scale)")
        ax.set_title(symbol, loc="left", fontsize=10)
        if TRUE_REGIME_COLUMN in sub:
            shade_regimes(ax, sub["ts"].to_numpy(), sub[TRUE_REGIME_COLUMN].to_numpy())
    if TRUE_REGIME_COLUMN in bars:
        fig.legend(regime_legend_handles(), REGIMES, loc="upper right", ncol=4, fontsize=8)
    fig.suptitle("Bars (log close) and true regimes", x=0.01, ha="left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def plot_importance(
    table: pd.DataFrame,
    path: Path,
    title: str,
    what: str,
    level: float,
    top: int = 20,
    xlabel: str | None = None,
) -> Path:
    """Permutation importance per feature with its bootstrap interval, largest first.

    ``table`` has ``feature``, ``importance``, ``low``, ``high``
    (:class:`pipelines.evaluation.importance.Importance`); the ``top`` largest are drawn, an
    interval that clears zero in the dark colour, one that does not in grey."""
    rows = table.sort_values("importance", ascending=False, kind="stable").head(top)[::-1]
    fig = Figure(figsize=(8, 0.28 * len(rows) + 1.4))  # Agg canvas, no pyplot global state
    ax = fig.subplots()
    y = np.arange(len(rows))
    clear = (rows["low"] > 0).to_numpy()
    colors = np.where(clear, "#0072B2", "#999999")
    value = rows["importance"].to_numpy()
    err = np.vstack([value - rows["low"].to_numpy(), rows["high"].to_numpy() - value])
    ax.barh(y, value, color=colors, height=0.6)
    ax.errorbar(value, y, xerr=np.clip(err, 0, None), fmt="none", ecolor="#1d2430", lw=0.8)
    ax.axvline(0.0, color="#1d2430", lw=0.6)
    ax.set_yticks(y, rows["feature"].tolist(), fontsize=8)
    label = xlabel or f"increase of the {what} when the feature is shuffled"
    ax.set_xlabel(f"{label} ({level:.0%} CI)")
    ax.set_title(title, loc="left", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
