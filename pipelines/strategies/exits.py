"""Stop-loss, take-profit and time exits simulated on the bars, for a grid of settings at once.

The bot's trade parameters (``stop_loss_multiplier``, ``take_profit_multiplier`` in ATR units,
a maximum holding time) decide how each trade ends. To choose them for net P&L, and to judge
a choice against the live or default settings on later spans, every trade of a family is
replayed under every candidate pair. This module does that in one vectorised pass: the
trades' forward windows are cut once, the first bar at which each stop (each target) level is
touched is found for all levels together from running extremes, and each (stop, target) pair
then only compares two first-hit indices per trade.

Conventions (docs/recommendations.md, "Exits"):

* A trade enters at the close of its entry bar ``t`` (price ``P``) on ``side`` (+1 long,
  -1 short) with the ATR fraction ``a`` known at ``t`` (ATR / close, causal). In side-return
  units ``r = side * (price / P - 1)`` the stop sits at ``-sl * a`` and the target at
  ``+tp * a``.
* Bars ``t+1 .. t+max_hold`` are watched. Bar ``k``'s adverse extreme is its low for a long
  (high for a short), its favourable extreme the other.
* **Intrabar rule**, at the first bar that touches either level: if the bar *opens* beyond
  the stop, the stop fills at the open (a gap: worse than the stop); else if it opens beyond
  the target, the target fills at the open (better than the target); else if both levels lie
  inside the bar's range, the **stop is taken first** (the conservative reading: the path
  inside a bar is unknown, and assuming the target first would flatter every wide bar);
  else the level touched fills at its own price.
* No level touched by bar ``t+max_hold``: a **time exit** at that bar's close.
* Costs: ``(cost_bps + slippage_bps) / 1e4`` at entry and again at exit, the same unit cost
  ``arm_rewards`` charges per unit of turnover; ``exit_slippage`` adds a per-exit-type
  fill slippage (fraction of price), e.g. measured from the bot's outcome events.
* Trades whose window runs past their symbol's last bar are dropped (no complete outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STOP: Final = 0
TARGET: Final = 1
TIME: Final = 2
EXIT_TYPES: Final = ("stop", "target", "time")


@dataclass(frozen=True)
class Windows:
    """Each trade's forward window in side-return units (``[N, H]``), and its entry facts."""

    row: IntArray  # the entry bar's row in the bars frame
    side: FloatArray  # +1 long, -1 short
    atr: FloatArray  # ATR fraction at entry
    open_r: FloatArray  # side return at each watched bar's open
    adverse: FloatArray  # side return at each bar's adverse extreme (<= open_r, close_r)
    favourable: FloatArray  # side return at each bar's favourable extreme
    close_r: FloatArray  # side return at each bar's close

    @property
    def n(self) -> int:
        return len(self.row)


@dataclass(frozen=True)
class ExitGrid:
    """Outcomes of every trade under every (stop, target) pair.

    ``pnl[i, s, t]`` is trade ``i``'s net return with stop ``stops[s]`` and target
    ``targets[t]`` (ATR units); ``kind`` the exit type (``STOP``, ``TARGET``, ``TIME``);
    ``bars_held`` the bars from entry to exit (1..max_hold).
    """

    stops: FloatArray
    targets: FloatArray
    max_hold: int
    pnl: FloatArray
    kind: npt.NDArray[np.int8]
    bars_held: npt.NDArray[np.int16]
    windows: Windows


def entry_rows(signal: npt.ArrayLike, symbol: npt.ArrayLike) -> IntArray:
    """Rows where a {-1, 0, +1} signal turns on or flips side (a new trade), per symbol."""
    s = np.asarray(signal, dtype=np.float64)
    sym = np.asarray(symbol)
    prev = np.concatenate([[0.0], s[:-1]])
    new_symbol = np.concatenate([[True], sym[1:] != sym[:-1]])
    prev[new_symbol] = 0.0
    return np.flatnonzero((s != 0) & (s != prev)).astype(np.int64)


def trade_windows(
    bars: pd.DataFrame,
    rows: npt.ArrayLike,
    side: npt.ArrayLike,
    atr: npt.ArrayLike,
    max_hold: int,
) -> Windows:
    """Cut the forward windows of the trades entered at ``rows`` (bars sorted by symbol, ts).

    ``side`` and ``atr`` are per trade (aligned with ``rows``); trades with no complete
    window, a zero side or a non-positive / non-finite ATR are dropped.
    """
    if max_hold < 1:
        raise ValueError(f"max_hold must be >= 1, got {max_hold}")
    for col in ("symbol", "open", "high", "low", "close"):
        if col not in bars.columns:
            raise ValueError(f"bars have no {col!r} column")
    r = np.asarray(rows, dtype=np.int64)
    sd = np.asarray(side, dtype=np.float64)
    a = np.asarray(atr, dtype=np.float64)
    if not (len(r) == len(sd) == len(a)):
        raise ValueError(f"rows, side and atr must align, got {len(r)}, {len(sd)}, {len(a)}")
    sym = bars["symbol"].to_numpy()
    n = len(bars)
    # last row of each row's symbol: a window must end inside it
    change = np.flatnonzero(np.concatenate([sym[1:] != sym[:-1], [True]]))
    last_of = np.repeat(change, np.diff(np.concatenate([[-1], change])))
    ok = (sd != 0) & np.isfinite(a) & (a > 0) & (r >= 0) & (r < n)
    ok[ok] &= r[ok] + max_hold <= last_of[r[ok]]
    r, sd, a = r[ok], sd[ok], a[ok]
    px = {c: bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")}
    idx = r[:, None] + np.arange(1, max_hold + 1)[None, :]
    entry = px["close"][r][:, None]
    s = sd[:, None]

    def side_return(price: FloatArray) -> FloatArray:
        return np.asarray(s * (price[idx] / entry - 1.0), dtype=np.float64)

    high_r, low_r = side_return(px["high"]), side_return(px["low"])
    long = s > 0
    return Windows(
        row=r,
        side=sd,
        atr=a,
        open_r=side_return(px["open"]),
        adverse=np.where(long, low_r, high_r),
        favourable=np.where(long, high_r, low_r),
        close_r=side_return(px["close"]),
    )


def _first_touch(running: FloatArray, levels: FloatArray, beyond: int) -> IntArray:
    """Index of the first bar whose running extreme reaches each level (``H`` if none):
    ``beyond`` -1 for stops (running min <= level), +1 for targets (running max >= level).
    Shapes: ``running`` [N, H], ``levels`` [N, L] -> [N, L]."""
    if beyond < 0:
        hit = running[:, :, None] <= levels[:, None, :]
    else:
        hit = running[:, :, None] >= levels[:, None, :]
    first = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), first, running.shape[1]).astype(np.int64)


def simulate_exits(
    windows: Windows,
    stops: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    cost_bps: float,
    slippage_bps: float,
    exit_slippage: Mapping[str, float] | None = None,
) -> ExitGrid:
    """Net return of every trade under every (stop, target) pair (module docstring rules)."""
    sl = np.asarray(stops, dtype=np.float64).reshape(-1)
    tp = np.asarray(targets, dtype=np.float64).reshape(-1)
    if sl.size == 0 or tp.size == 0 or np.any(sl <= 0) or np.any(tp <= 0):
        raise ValueError("stops and targets must be non-empty and > 0 (ATR units)")
    if cost_bps < 0 or slippage_bps < 0:
        raise ValueError("cost_bps and slippage_bps must be >= 0")
    slip = {"stop": 0.0, "target": 0.0, "time": 0.0, **(exit_slippage or {})}
    unknown = set(slip) - set(EXIT_TYPES)
    if unknown:
        raise ValueError(f"exit_slippage keys must be in {EXIT_TYPES}, got {sorted(unknown)}")
    w = windows
    n, h = w.adverse.shape
    stop_lvl = -sl[None, :] * w.atr[:, None]  # [N, S]
    tgt_lvl = tp[None, :] * w.atr[:, None]  # [N, T]
    first_stop = _first_touch(np.minimum.accumulate(w.adverse, axis=1), stop_lvl, -1)
    first_tgt = _first_touch(np.maximum.accumulate(w.favourable, axis=1), tgt_lvl, +1)
    fs = first_stop[:, :, None]  # [N, S, 1]
    ft = first_tgt[:, None, :]  # [N, 1, T]
    k = np.minimum(fs, ft)  # exit bar (H = none)
    timed = k >= h
    kk = np.minimum(k, h - 1)
    rows = np.arange(n)[:, None, None]
    open_k = w.open_r[rows, kk]
    s_lvl = np.broadcast_to(stop_lvl[:, :, None], k.shape)
    t_lvl = np.broadcast_to(tgt_lvl[:, None, :], k.shape)
    gap_stop = open_k <= s_lvl
    gap_tgt = ~gap_stop & (open_k >= t_lvl)
    # the first bar touching a level touches it with its own extreme, so fs == ft means both
    # levels lie inside that bar: the stop is taken first
    stop_first = gap_stop | (~gap_tgt & (fs <= ft))
    # a stop fills at its level, or at the open when the bar opened beyond it (a gap)
    stop_fill = np.minimum(s_lvl, open_k)
    tgt_fill = np.maximum(t_lvl, open_k)
    kind = np.where(timed, TIME, np.where(stop_first, STOP, TARGET)).astype(np.int8)
    gross = np.where(
        timed,
        w.close_r[:, h - 1][:, None, None],
        np.where(stop_first, stop_fill, tgt_fill),
    )
    unit = (cost_bps + slippage_bps) / 1e4
    extra = np.select(
        [kind == STOP, kind == TARGET], [slip["stop"], slip["target"]], default=slip["time"]
    )
    pnl = gross - 2.0 * unit - extra
    held = np.where(timed, h, k + 1).astype(np.int16)
    return ExitGrid(sl, tp, h, pnl.astype(np.float64), kind, held, w)
