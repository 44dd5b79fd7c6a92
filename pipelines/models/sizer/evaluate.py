"""Walk a sizing rule over a held-out span and report its risk and return figures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.evaluation import risk
from pipelines.models.sizer.data import NEXT_RETURN_COLUMN, SIGNAL_COLUMN
from pipelines.models.sizer.env import MULT_HIGH, MULT_LOW

METRIC_NAMES = (
    "ann_return",
    "ann_log_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "var_bar",
    "cvar_bar",
    "cvar_day",
    "turnover",
    "mean_multiplier",
)


@dataclass
class SizerRun:
    """Per-bar portfolio returns (equal weight across symbols) of one sizer on a span."""

    ts: pd.Series
    returns: npt.NDArray[np.float64]
    positions: pd.DataFrame  # one column per symbol, indexed by ts
    multipliers: npt.NDArray[np.float64]  # per table row


def run_sizer(table: pd.DataFrame, multipliers: npt.ArrayLike, cost: float) -> SizerRun:
    """Hold ``m_t * s_t`` over each next bar, pay ``cost * |change|``, average across symbols.

    The table must be sorted by (symbol, ts); each symbol starts flat.
    """
    m = np.asarray(multipliers, dtype=np.float64).reshape(-1)
    if m.size != len(table):
        raise ValueError(f"{m.size} multipliers for {len(table)} rows")
    if np.any(m < MULT_LOW - 1e-6) or np.any(m > MULT_HIGH + 1e-6):
        raise ValueError(f"multipliers must lie in [{MULT_LOW}, {MULT_HIGH}]")
    pos = m * table[SIGNAL_COLUMN].to_numpy(dtype=np.float64)
    sym = table["symbol"].to_numpy()
    first = np.r_[True, sym[1:] != sym[:-1]]
    prev = np.where(first, 0.0, np.r_[0.0, pos[:-1]])
    pnl = pos * table[NEXT_RETURN_COLUMN].to_numpy(dtype=np.float64) - cost * np.abs(pos - prev)
    frame = pd.DataFrame({"ts": table["ts"].to_numpy(), "symbol": sym, "pnl": pnl, "pos": pos})
    port = frame.groupby("ts", sort=True)["pnl"].mean()
    positions = frame.pivot(index="ts", columns="symbol", values="pos").sort_index().fillna(0.0)
    return SizerRun(
        ts=pd.Series(port.index), returns=port.to_numpy(), positions=positions, multipliers=m
    )


def sizer_metrics(run: SizerRun, ann_factor: float, alpha: float = 0.05) -> dict[str, float]:
    """Annualized return, Sharpe, Sortino, max drawdown, VaR/CVaR per bar and day, turnover."""
    daily = risk.aggregate_returns(run.returns, run.ts, "1D")
    turn = float(np.mean([risk.turnover(run.positions[c]) for c in run.positions.columns]))
    return {
        "ann_return": risk.annualized_return(run.returns, ann_factor),
        "ann_log_return": risk.annualized_log_return(run.returns, ann_factor),
        "sharpe": risk.sharpe(run.returns, ann_factor),
        "sortino": risk.sortino(run.returns, ann_factor),
        "max_drawdown": risk.max_drawdown(run.returns),
        "var_bar": risk.var(run.returns, alpha),
        "cvar_bar": risk.cvar(run.returns, alpha),
        "cvar_day": risk.cvar(daily, alpha),
        "turnover": turn,
        "mean_multiplier": float(np.mean(run.multipliers)),
    }


def rule_multipliers(table: pd.DataFrame, window: int, scale: float, cost: float) -> np.ndarray:
    """The bot's rule-based sizing today: scale size by the strategy's recent score.

    ``score_t`` is the strategy's trailing Sharpe-like score over ``window`` realised bars
    (mean over std of its net P&L up to bar t, so only the past is used), and
    ``m_t = clip(1 + scale * tanh(score_t * sqrt(window)), 0.1, 2.0)``: more size after the
    strategy has been working, less after it has been losing; 1.0 until the window fills.
    """
    out = np.ones(len(table))
    for _, grp in table.groupby("symbol", sort=False):
        s = grp[SIGNAL_COLUMN].to_numpy(dtype=np.float64)
        r = grp[NEXT_RETURN_COLUMN].to_numpy(dtype=np.float64)
        pnl = s * r - cost * np.abs(np.diff(s, prepend=0.0))
        realised = pd.Series(pnl).shift(1)  # bar t knows the P&L of bars up to t-1 -> t
        roll = realised.rolling(window, min_periods=window)
        score = (roll.mean() / roll.std().where(roll.std() > 0)).fillna(0.0).to_numpy()
        mult = 1.0 + scale * np.tanh(score * np.sqrt(window))
        out[table.index.get_indexer(grp.index)] = np.clip(mult, MULT_LOW, MULT_HIGH)
    return out
