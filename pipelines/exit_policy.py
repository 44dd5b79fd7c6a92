"""Stop-loss and take-profit settings chosen for net P&L, kept only when they beat the live
ones forward (docs/recommendations.md, "Exits chosen on evidence").

Why a champion and challengers here too: the bot's exit settings decide most of a rule
strategy's P&L, and a setting tuned on the bars it is scored on always looks better than the
one it replaces. So per strategy family (and per regime cell when the regime slot's champion
gives the bot a regime), three candidates are simulated on the family's trades
(``pipelines.strategies.exits``):

* ``live``: the settings the bot runs now (the published recommendation's, else the neutral
  defaults 2.0 / 3.0 ATR, which are the bot's fallback);
* ``heuristic``: the 80th percentile of the maximum adverse and the 60th percentile of the
  maximum favourable excursion of the fit-span trades, in ATR units (the old rule);
* ``grid``: the stop / target pair of a grid that earns the most net P&L per trade on the fit
  span.

The challenger is whichever of ``heuristic`` and ``grid`` earns more on the fit span (a choice
made on the fit span only). It replaces ``live`` only when the one-sided 95 % lower bound of
its paired per-trade P&L lift over ``live`` is above zero on the test span AND on the
confirmation span (moving-block bootstrap over the trades in time order,
``pipelines.evaluation.spans``); otherwise ``live`` stays, with the reason in one line. Every
trade set has the same entries under every candidate (the family's signal decides entries,
the settings only exits), so the lift is paired trade by trade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from pipelines.evaluation.bootstrap import Interval, mean_difference
from pipelines.evaluation.spans import paired_span_cis
from pipelines.strategies.exits import Windows, simulate_exits

#: The grid searched on the fit span, inside the recommendation's bounds (ATR units).
STOP_GRID: Final = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
TARGET_GRID: Final = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
MIN_TRADES: Final = 30


@dataclass(frozen=True)
class ExitChoice:
    """The settings a cell ships, which candidate they came from and the evidence."""

    stop: float
    take: float
    candidate: str  # live | heuristic | grid
    reason: str
    challenger: str | None = None
    challenger_stop: float | None = None
    challenger_take: float | None = None
    test: Interval | None = None  # lift over live, fraction of entry price per trade
    confirm: Interval | None = None
    trades: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready evidence for the recommendation document (lifts in bps per trade)."""

        def bps(iv: Interval | None) -> list[float] | None:
            if iv is None or not np.isfinite(iv.value):
                return None
            return [round(iv.value * 1e4, 3), round(iv.low * 1e4, 3), round(iv.high * 1e4, 3)]

        return {
            "candidate": self.candidate,
            "reason": self.reason,
            "challenger": self.challenger,
            "challenger_stop_loss": self.challenger_stop,
            "challenger_take_profit": self.challenger_take,
            "lift_bps_per_trade_test": bps(self.test),
            "lift_bps_per_trade_confirmation": bps(self.confirm),
            "trades": dict(self.trades),
        }


def _clamp(value: float, lo: float, hi: float) -> float:
    return float(min(max(value, lo), hi))


def heuristic_pair(
    w: Windows, rows: npt.NDArray[np.bool_], bounds: dict[str, tuple[float, float]]
) -> tuple[float, float]:
    """80th percentile of max adverse, 60th of max favourable excursion, in ATR units."""
    mae = -np.minimum(w.adverse[rows].min(axis=1), 0.0) / w.atr[rows]
    mfe = np.maximum(w.favourable[rows].max(axis=1), 0.0) / w.atr[rows]
    stop = _clamp(float(np.quantile(mae, 0.8)), *bounds["stop_loss_multiplier"])
    take = _clamp(float(np.quantile(mfe, 0.6)), *bounds["take_profit_multiplier"])
    return round(stop, 4), round(take, 4)


def _pnl(w: Windows, stop: float, take: float, cost_bps: float, slippage_bps: float) -> Any:
    grid = simulate_exits(w, [stop], [take], cost_bps=cost_bps, slippage_bps=slippage_bps)
    return grid.pnl[:, 0, 0]


def choose_exits(
    w: Windows,
    entry_ts: Any,
    fit: npt.NDArray[np.bool_],
    held: npt.NDArray[np.bool_],
    live: tuple[float, float],
    bounds: dict[str, tuple[float, float]],
    *,
    cost_bps: float,
    slippage_bps: float,
    confirm_fraction: float,
    block: int,
    n_boot: int,
    level: float,
    seed: int,
) -> ExitChoice:
    """Champion (``live``) against the better of the heuristic and the grid (module doc).

    ``entry_ts``, ``fit`` and ``held`` are per trade of ``w`` (the held-out trades in time
    order within each symbol); ``bounds`` are the recommendation's ``SAFE_BOUNDS``."""
    n_fit, n_held = int(fit.sum()), int(held.sum())
    counts = {"fit": n_fit, "held_out": n_held}
    keep = ExitChoice(live[0], live[1], "live", "", trades=counts)
    if n_fit < MIN_TRADES or n_held < 2 * MIN_TRADES:
        return _replace(keep, reason=f"too few trades ({n_fit} fit, {n_held} held out)")
    lo_s, hi_s = bounds["stop_loss_multiplier"]
    lo_t, hi_t = bounds["take_profit_multiplier"]
    stops = np.array([s for s in STOP_GRID if lo_s <= s <= hi_s])
    takes = np.array([t for t in TARGET_GRID if lo_t <= t <= hi_t])
    grid = simulate_exits(w, stops, takes, cost_bps=cost_bps, slippage_bps=slippage_bps)
    fit_mean = grid.pnl[fit].mean(axis=0)
    s, t = np.unravel_index(int(np.argmax(fit_mean)), fit_mean.shape)
    candidates = {
        "grid": (float(stops[s]), float(takes[t])),
        "heuristic": heuristic_pair(w, fit, bounds),
    }
    fit_value = {
        name: float(_pnl(w, *pair, cost_bps, slippage_bps)[fit].mean())
        for name, pair in candidates.items()
    }
    name = max(fit_value, key=lambda k: fit_value[k])
    pair = candidates[name]
    if np.allclose(pair, live):
        return _replace(keep, reason=f"the best candidate ({name}) is the live setting")
    a = _pnl(w, *pair, cost_bps, slippage_bps)[held]
    b = _pnl(w, *live, cost_bps, slippage_bps)[held]
    cis = paired_span_cis(
        np.asarray(entry_ts)[held],
        a,
        b,
        mean_difference,
        block=block,
        n=n_boot,
        level=level,
        seed=seed,
        confirm_fraction=confirm_fraction,
    )
    test, confirm = cis["test"], cis["confirm"]
    if test.low > 0 and confirm.low > 0:
        chosen, why = pair, f"{name} beat the live settings on the test and confirmation spans"
        shipped = name
    else:
        span = "test" if not test.low > 0 else "confirmation"
        bound = test.low if span == "test" else confirm.low
        chosen, shipped = live, "live"
        why = (
            f"{name} ({pair[0]:g} / {pair[1]:g} ATR) did not beat the live settings on the "
            f"{span} span (lower bound {bound * 1e4:+.2f} bps per trade)"
        )
    return ExitChoice(
        chosen[0],
        chosen[1],
        shipped,
        why,
        challenger=name,
        challenger_stop=pair[0],
        challenger_take=pair[1],
        test=test,
        confirm=confirm,
        trades=counts,
    )


def _replace(choice: ExitChoice, **changes: Any) -> ExitChoice:
    from dataclasses import replace

    return replace(choice, **changes)


def split_trades(
    entry_ts: Any, holdout_fraction: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Fit (earlier) and held-out (later ``holdout_fraction``) trades by one cut time."""
    import pandas as pd

    ts = pd.Series(entry_ts).reset_index(drop=True)
    if len(ts) < 2:
        return np.zeros(len(ts), dtype=bool), np.zeros(len(ts), dtype=bool)
    cut = ts.quantile(1.0 - holdout_fraction)
    held = (ts >= cut).to_numpy()
    return ~held, held
