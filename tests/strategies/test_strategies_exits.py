"""Exit simulation (pipelines/strategies/exits.py): hand-worked bars and a loop reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.strategies.exits import (
    STOP,
    TARGET,
    TIME,
    entry_rows,
    simulate_exits,
    trade_windows,
)


def _bars(rows: list[tuple[float, float, float, float]], symbol: str = "X") -> pd.DataFrame:
    o, h, lo, c = zip(*rows, strict=True)
    return pd.DataFrame({"symbol": symbol, "open": o, "high": h, "low": lo, "close": c})


def _one(bars: pd.DataFrame, side: float, sl: float, tp: float, hold: int = 3):
    w = trade_windows(bars, [0], [side], [0.01], hold)  # ATR 1 % of the entry close (100)
    g = simulate_exits(w, [sl], [tp], cost_bps=0.0, slippage_bps=0.0)
    return float(g.pnl[0, 0, 0]), int(g.kind[0, 0, 0]), int(g.bars_held[0, 0, 0])


ENTRY = (100.0, 100.0, 100.0, 100.0)


def test_stop_target_and_time_exits_by_hand() -> None:
    # long, stop 1 ATR = 99, target 2 ATR = 102
    stop = _bars([ENTRY, (100, 100.5, 98.5, 99.5), (99.5, 103, 99, 102), (102, 102, 102, 102)])
    assert _one(stop, +1, 1.0, 2.0) == (pytest.approx(-0.01), STOP, 1)
    target = _bars([ENTRY, (100, 101, 99.5, 100.5), (100.5, 102.5, 100, 102), (102, 102, 102, 102)])
    assert _one(target, +1, 1.0, 2.0) == (pytest.approx(0.02), TARGET, 2)
    flat = _bars(
        [ENTRY, (100, 100.5, 99.5, 100.2), (100.2, 100.6, 99.6, 100.4), (100, 101, 99.5, 100.7)]
    )
    assert _one(flat, +1, 1.0, 2.0) == (pytest.approx(0.007), TIME, 3)


def test_both_levels_inside_one_bar_take_the_stop_and_gaps_fill_at_the_open() -> None:
    wide = _bars([ENTRY, (100, 103, 98, 101), ENTRY, ENTRY])
    assert _one(wide, +1, 1.0, 2.0) == (pytest.approx(-0.01), STOP, 1)
    gap_down = _bars([ENTRY, (97, 97.5, 96, 97), ENTRY, ENTRY])
    assert _one(gap_down, +1, 1.0, 2.0) == (pytest.approx(-0.03), STOP, 1)
    gap_up = _bars([ENTRY, (104, 105, 97, 104), ENTRY, ENTRY])  # opens past the target first
    assert _one(gap_up, +1, 1.0, 2.0) == (pytest.approx(0.04), TARGET, 1)


def test_a_short_mirrors_a_long() -> None:
    # short, stop at 101, target at 98
    bars = _bars([ENTRY, (100, 100.5, 99.5, 100), (100, 101.5, 99.8, 101.2), ENTRY])
    assert _one(bars, -1, 1.0, 2.0) == (pytest.approx(-0.01), STOP, 2)


def test_costs_and_exit_slippage_come_off_every_trade() -> None:
    bars = _bars([ENTRY, (100, 100.5, 98.5, 99.5), ENTRY, ENTRY])
    w = trade_windows(bars, [0], [1], [0.01], 3)
    g = simulate_exits(
        w, [1.0], [2.0], cost_bps=1.0, slippage_bps=0.5, exit_slippage={"stop": 0.001}
    )
    assert g.pnl[0, 0, 0] == pytest.approx(-0.01 - 2 * 1.5e-4 - 0.001)
    with pytest.raises(ValueError, match="exit_slippage"):
        simulate_exits(w, [1.0], [2.0], cost_bps=0, slippage_bps=0, exit_slippage={"gap": 1})


def test_windows_stay_inside_their_symbol_and_entries_are_turn_ons_and_flips() -> None:
    a = _bars([ENTRY] * 4, "A")
    b = _bars([ENTRY] * 4, "B")
    bars = pd.concat([a, b], ignore_index=True)
    w = trade_windows(bars, [0, 1, 2, 4], [1, 1, -1, 1], [0.01] * 4, 2)
    assert w.row.tolist() == [0, 1, 4]  # row 2's window would run into symbol B
    sig = np.array([0, 1, 1, -1, 0, 0, 1, 1])
    sym = np.array(["A"] * 4 + ["B"] * 4)
    assert entry_rows(sig, sym).tolist() == [1, 3, 6]
    assert entry_rows([1, 1, 1, 1], ["A", "A", "B", "B"]).tolist() == [0, 2]


def _reference(
    bars: pd.DataFrame, row: int, side: float, atr: float, sl: float, tp: float, hold: int
) -> float:
    """One trade walked bar by bar, the module docstring's rules written out plainly."""
    entry = bars["close"].iloc[row]
    stop, target = -sl * atr, tp * atr

    def r(x: float) -> float:
        return side * (x / entry - 1.0)

    for k in range(1, hold + 1):
        bar = bars.iloc[row + k]
        o = r(bar["open"])
        adverse = min(r(bar["low"]), r(bar["high"]))
        favourable = max(r(bar["low"]), r(bar["high"]))
        if o <= stop:
            return o
        if o >= target:
            return o
        if adverse <= stop:
            return stop
        if favourable >= target:
            return target
    return r(bars["close"].iloc[row + hold])


def test_the_vectorised_grid_equals_a_bar_by_bar_walk() -> None:
    rng = np.random.default_rng(3)
    n = 400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    bars = pd.DataFrame({"symbol": "X", "open": open_, "high": high, "low": low, "close": close})
    rows = rng.choice(n - 20, 60, replace=False)
    side = rng.choice([-1.0, 1.0], 60)
    atr = rng.uniform(0.005, 0.02, 60)
    stops, targets, hold = [0.5, 1.0, 2.0, 3.5], [1.0, 1.5, 3.0], 12
    g = simulate_exits(
        trade_windows(bars, rows, side, atr, hold), stops, targets, cost_bps=0, slippage_bps=0
    )
    for i, (row, sd, a) in enumerate(
        zip(g.windows.row, g.windows.side, g.windows.atr, strict=True)
    ):
        for s, sl in enumerate(stops):
            for t, tp in enumerate(targets):
                assert g.pnl[i, s, t] == pytest.approx(_reference(bars, row, sd, a, sl, tp, hold))
