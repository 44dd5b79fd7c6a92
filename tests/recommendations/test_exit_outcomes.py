"""The bot's realized exits calibrate the exit simulation (pipelines/exit_outcomes.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.exit_outcomes import calibrate
from pipelines.recommendations import atr_fraction
from pipelines.strategies.exits import EXIT_TYPES, simulate_exits, trade_windows

REASON = {"stop": "stop_loss", "target": "take_profit", "time": "time_exit"}


def _world(n: int = 6000, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    bars = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"),
            "symbol": "A",
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": 1.0,
        }
    )
    bars["arm1"] = np.where(np.arange(n) % 2 == 0, 1, -1)  # a long on even bars, short on odd
    return bars


def _bot_outcomes(bars: pd.DataFrame, rows: np.ndarray, hold: int, slip: dict) -> pd.DataFrame:
    """What a bot running 2 / 3 ATR would report, its fills worse by ``slip`` per exit type."""
    side = bars["arm1"].to_numpy()[rows].astype(float)
    w = trade_windows(bars, rows, side, atr_fraction(bars)[rows], hold)
    g = simulate_exits(w, [2.0], [3.0], cost_bps=1.0, slippage_bps=0.5)
    kinds = [EXIT_TYPES[k] for k in g.kind[:, 0, 0]]
    return pd.DataFrame(
        {
            "ts": bars["ts"].to_numpy()[w.row],
            "symbol": "A",
            "arm": "arm1",
            "regime": np.where(w.row % 3 == 0, "RANGE", None),
            "exit_reason": [REASON[k] for k in kinds],
            "holding_bars": hold,
            "net_return": g.pnl[:, 0, 0] - np.array([slip[k] for k in kinds]),
        }
    )


def test_the_realized_shortfall_per_exit_type_becomes_the_slippage() -> None:
    bars = _world()
    rows = np.arange(30, len(bars) - 40, 7)
    joined = _bot_outcomes(bars, rows, 12, {"stop": 3e-4, "target": 1e-4, "time": 0.0})
    # a few trades the bot says it stopped out that the simulation takes to the target, with a
    # huge loss: not fill slippage of either type (they disagree on how the trade ended)
    odd = joined[joined["exit_reason"] == "take_profit"].head(10).index
    joined.loc[odd, ["exit_reason", "net_return"]] = ["stop_loss", -0.05]
    cal = calibrate(bars, joined, {"F": (2.0, 3.0)}, {"arm1": "F"}, cost_bps=1.0, slippage_bps=0.5)
    assert cal.slippage["stop"] == pytest.approx(3e-4, abs=1e-9)
    assert cal.slippage["target"] == pytest.approx(1e-4, abs=1e-9)
    assert cal.slippage["time"] == pytest.approx(0.0, abs=1e-9)
    assert all(cal.basis[k].split()[0].isdigit() for k in EXIT_TYPES)  # "<n> trades ..."
    cells = cal.cells().set_index(["family", "cell"])
    assert set(cells.index) == {("F", "RANGE"), ("F", "*")}
    assert int(cells["trades"].sum()) == len(joined)
    assert (cells["gap_bps"] < 0).all()  # the bot's fills were worse than the simulation's
    doc = cal.as_dict()
    assert doc["exit_slippage_bps"]["stop"] == pytest.approx(3.0)
    assert doc["simulated_vs_realized"]["F"]["RANGE"]["trades"] > 0


def test_too_few_matching_exits_leave_a_type_uncalibrated() -> None:
    bars = _world(1200)
    joined = _bot_outcomes(bars, np.arange(30, 1100, 40), 12, dict.fromkeys(EXIT_TYPES, 5e-4))
    cal = calibrate(bars, joined, {"F": (2.0, 3.0)}, {"arm1": "F"}, cost_bps=1.0, slippage_bps=0.5)
    assert cal.slippage == dict.fromkeys(EXIT_TYPES, 0.0)
    assert all(b.startswith("not calibrated") for b in cal.basis.values())
    # a flat arm, an unknown arm and a bar not in the data are left out, not guessed
    extra = joined.head(3).copy()
    extra["arm"] = ["arm1", "nope", "arm1"]
    extra.loc[extra.index[2], "ts"] = pd.Timestamp("2030-01-01", tz="UTC")
    flat = bars.assign(arm1=0)
    assert calibrate(flat, joined, {}, {"arm1": "F"}, cost_bps=1.0, slippage_bps=0.5).trades.empty
    got = calibrate(bars, extra, {}, {"arm1": "F"}, cost_bps=1.0, slippage_bps=0.5)
    assert len(got.trades) == 1


def test_the_stores_joined_frame_names_the_arm_in_arm_name() -> None:
    # the events store's joined frame carries the arm's index in ``arm`` and its name in
    # ``arm_name``: the name is the one that counts
    bars = _world()
    joined = _bot_outcomes(
        bars, np.arange(30, len(bars) - 40, 7), 12, dict.fromkeys(EXIT_TYPES, 2e-4)
    )
    stored = joined.rename(columns={"arm": "arm_name"}).assign(arm=7)
    kw = {"cost_bps": 1.0, "slippage_bps": 0.5}
    by_name = calibrate(bars, stored, {}, {"arm1": "F"}, **kw)
    assert by_name.slippage == calibrate(bars, joined, {}, {"arm1": "F"}, **kw).slippage
    assert by_name.slippage["stop"] == pytest.approx(2e-4, abs=1e-9)
    with pytest.raises(ValueError, match="lack"):
        calibrate(bars, joined.drop(columns="arm"), {}, {"arm1": "F"}, **kw)
