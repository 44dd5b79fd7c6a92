"""The bot's realized exits against the exit simulation: per-exit-type fill slippage, and
simulated vs realized net P&L per strategy family and cell (docs/recommendations.md,
"Outcomes from the bot").

Why: the exit settings are chosen on simulated trades (``pipelines.strategies.exits``), which
fill a stop at its level, a target at its level and a time exit at the close. Real fills are
worse, and by how much depends on the exit type (a stop is a market order into a falling
price, a target a resting limit). The bot's outcome events say how each trade really ended
(``exit_reason``, ``holding_bars``, ``net_return``), so every joined trade is replayed in the
simulation under the live settings with the bot's own holding time as its time exit; where
the simulation and the bot agree on how a trade ended, the realized shortfall against the
simulated fill is fill slippage of that exit type. Its mean (never below 0: a better fill is
not counted as a credit) becomes the simulation's ``exit_slippage`` for that type once at
least ``min_trades`` trades support it; the next exit choice is made with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from pipelines.data.schema import REGIMES
from pipelines.strategies.exits import EXIT_TYPES, simulate_exits, trade_windows

#: The bot's exit reasons that the simulation models, and the simulation's name for each.
REASON_KIND: Final = {"stop_loss": "stop", "take_profit": "target", "time_exit": "time"}
#: Cell of a trade whose decision logged no regime.
NO_REGIME: Final = "*"


@dataclass(frozen=True)
class Calibration:
    """Slippage per exit type (fraction of price; 0 where not calibrated), where each figure
    came from, and per family and cell the simulated vs realized mean net return."""

    slippage: dict[str, float]
    basis: dict[str, str]
    trades: pd.DataFrame  # one row per joined trade the simulation could replay

    def cells(self) -> pd.DataFrame:
        """Per family and cell: trades, simulated and realized mean net bps, and the gap."""
        if self.trades.empty:
            return pd.DataFrame(
                columns=["family", "cell", "trades", "simulated_bps", "realized_bps", "gap_bps"]
            )
        g = self.trades.groupby(["family", "cell"], sort=True)
        out = pd.DataFrame(
            {
                "trades": g.size(),
                "simulated_bps": g["simulated"].mean() * 1e4,
                "realized_bps": g["realized"].mean() * 1e4,
            }
        )
        out["gap_bps"] = out["realized_bps"] - out["simulated_bps"]
        return out.round(3).reset_index()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready evidence for the recommendation document."""
        cells: dict[str, dict[str, Any]] = {}
        for rec in self.cells().to_dict("records"):
            cells.setdefault(str(rec["family"]), {})[str(rec["cell"])] = {
                k: rec[k] for k in ("trades", "simulated_bps", "realized_bps", "gap_bps")
            }
        return {
            "exit_slippage_bps": {k: round(v * 1e4, 3) for k, v in self.slippage.items()},
            "basis": dict(self.basis),
            "simulated_vs_realized": cells,
        }


def _rows(bars: pd.DataFrame, joined: pd.DataFrame) -> np.ndarray:
    """Each joined decision's row in ``bars`` (-1 where its bar is not there)."""
    ts = pd.to_datetime(bars["ts"], utc=True).astype("datetime64[ns, UTC]")
    key = pd.DataFrame({"ts": ts.to_numpy(), "symbol": bars["symbol"].astype(str).to_numpy()})
    key["row"] = np.arange(len(bars))
    jts = pd.to_datetime(joined["ts"], utc=True).astype("datetime64[ns, UTC]")
    want = pd.DataFrame({"ts": jts.to_numpy(), "symbol": joined["symbol"].astype(str).to_numpy()})
    got = want.merge(key, on=["ts", "symbol"], how="left")
    return np.asarray(got["row"].fillna(-1).to_numpy(), dtype=np.int64)


def calibrate(
    bars: pd.DataFrame,
    joined: pd.DataFrame,
    live: Mapping[str, tuple[float, float]],
    arm_families: Mapping[str, str],
    *,
    cost_bps: float,
    slippage_bps: float,
    min_trades: int = 30,
) -> Calibration:
    """Replay the bot's joined trades in the simulation (module docstring).

    ``bars`` sorted by (symbol, ts) with a signal column per arm (``compute_signals``);
    ``joined`` the joined decisions and outcomes (``ts``, ``symbol``, the arm's name in
    ``arm_name`` or ``arm``, ``exit_reason``, ``holding_bars``, ``net_return``, optional
    ``regime``); ``live`` the stop
    / target per family the bot ran. A trade whose arm was flat at its bar, whose bar or
    holding time is unknown, or whose window runs past the data is left out."""
    need = {"ts", "symbol", "exit_reason", "holding_bars", "net_return"}
    missing = need - set(joined.columns)
    if missing or not {"arm", "arm_name"} & set(joined.columns):
        raise ValueError(f"joined events lack {sorted(missing) or ['arm_name']}")
    from pipelines.recommendations import NEUTRAL, atr_fraction

    default = (NEUTRAL["stop_loss_multiplier"], NEUTRAL["take_profit_multiplier"])
    j = joined.reset_index(drop=True)
    rows = _rows(bars, j)
    # the store's joined frame names the arm in ``arm_name`` (``arm`` is its index there)
    arms = j["arm_name" if "arm_name" in j.columns else "arm"].astype(str).to_numpy()
    known = (rows >= 0) & np.isin(arms, list(arm_families)) & (j["holding_bars"] >= 1).to_numpy()
    side = np.zeros(len(j))
    for arm in set(arms[known]):
        at = known & (arms == arm)
        side[at] = np.sign(bars[arm].to_numpy(dtype=np.float64)[rows[at]])
    use = known & (side != 0)
    atr = atr_fraction(bars)
    hold = j["holding_bars"].to_numpy(dtype=np.int64)
    family = np.array([arm_families.get(a, "") for a in arms], dtype=object)
    sim = np.full(len(j), np.nan)
    kind = np.full(len(j), "", dtype=object)
    for fam in sorted(set(family[use])):
        pair = live.get(fam, default)
        for h in sorted(set(hold[use & (family == fam)])):
            idx = np.flatnonzero(use & (family == fam) & (hold == h))
            w = trade_windows(bars, rows[idx], side[idx], atr[rows[idx]], int(h))
            if w.n == 0:
                continue
            grid = simulate_exits(
                w, [pair[0]], [pair[1]], cost_bps=cost_bps, slippage_bps=slippage_bps
            )
            # trade_windows keeps the order of its rows, dropping incomplete windows; a row
            # can hold two trades (two bots), so match by position, not by value
            keep = _kept(rows[idx], w.row)
            sim[idx[keep]] = grid.pnl[:, 0, 0]
            kind[idx[keep]] = [EXIT_TYPES[k] for k in grid.kind[:, 0, 0]]
    done = np.isfinite(sim)
    regime = j["regime"] if "regime" in j.columns else pd.Series([None] * len(j))
    cell = [r if isinstance(r, str) and r in REGIMES else NO_REGIME for r in regime]
    trades = pd.DataFrame(
        {
            "family": family,
            "cell": cell,
            "realized_kind": [REASON_KIND.get(str(r), str(r)) for r in j["exit_reason"]],
            "simulated_kind": kind,
            "realized": j["net_return"].to_numpy(dtype=np.float64),
            "simulated": sim,
        }
    )[done].reset_index(drop=True)
    slippage, basis = {}, {}
    for k in EXIT_TYPES:
        both = trades[(trades["realized_kind"] == k) & (trades["simulated_kind"] == k)]
        n = len(both)
        if n < min_trades:
            slippage[k] = 0.0
            basis[k] = f"not calibrated: {n} trades ended by {k} in both (< {min_trades})"
            continue
        shortfall = float((both["simulated"] - both["realized"]).mean())
        slippage[k] = max(shortfall, 0.0)
        credit = " (a better fill is not credited)" if shortfall < 0 else ""
        basis[k] = (
            f"{n} trades ended by {k} in both: realized {shortfall * 1e4:+.2f} bps below the "
            f"simulated fill on average{credit}"
        )
    return Calibration(slippage, basis, trades)


def _kept(asked: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Positions in ``asked`` of the ordered subsequence ``kept``."""
    out, k = [], 0
    for i, r in enumerate(asked):
        if k < len(kept) and r == kept[k]:
            out.append(i)
            k += 1
    return np.asarray(out, dtype=np.int64)
