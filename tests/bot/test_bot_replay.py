"""Closed-loop replay, 3 short cycles end to end with a small real trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bot_support import keyring, publish, regime_onnx, sizer_onnx
from onnx import TensorProto, helper, numpy_helper

from configs.settings import load_config
from pipelines.bot import DecisionEngine, EngineConfig, EventLog
from pipelines.bot.replay import ReplaySettings, cycle_edges, plot_replay, run_replay
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.registry import FileStore
from pipelines.strategies import ARM_NAMES, arm_rewards, compute_signals

SETTINGS = ReplaySettings(cycles=3, cycle_bars=250, initial_bars=700, n_bootstrap=200)


def _ridge_bandit(bars: pd.DataFrame) -> bytes:
    """Per-arm ridge regression of the 6-bar net reward on the 43 features, as ONNX."""
    fs = featurize(bars).frame
    rewards = arm_rewards(bars, compute_signals(bars), 6, 1.0, 0.5)
    r = rewards.assign(ts=bars["ts"], symbol=bars["symbol"])
    joined = fs.merge(r, on=["ts", "symbol"]).dropna()
    x = joined[list(FEATURE_NAMES)].to_numpy(np.float64)
    y = joined[list(ARM_NAMES)].to_numpy(np.float64)
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mu) / sd
    beta = np.linalg.solve(z.T @ z + 100.0 * np.eye(43), z.T @ (y - y.mean(axis=0)))
    w = (beta / sd[:, None]).astype(np.float32)
    b = (y.mean(axis=0) - (mu / sd) @ beta).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["arm_values"]),
        ],
        "ridge-bandit",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 43])],
        [helper.make_tensor_value_info("arm_values", TensorProto.FLOAT, ["N", 12])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_three_cycles_reload_and_report(tmp_path: Path) -> None:
    cfg = load_config().data.synthetic.model_copy(
        update={"n_bars": 1450, "symbols": ["SYN1", "SYN2"]}
    )
    bars = generate_bars(cfg, 3)
    store = FileStore(tmp_path / "store")
    calls: list[tuple[int, int]] = []

    def train(seen: pd.DataFrame, events_dir: Path, cycle: int) -> None:
        calls.append((cycle, len(seen)))
        if cycle == 0:
            publish(store, "regime", regime_onnx()[0])
            publish(store, "sizer", sizer_onnx()[0])
        publish(store, "bandit", _ridge_bandit(seen))

    events = tmp_path / "events"
    config = EngineConfig(bot_id="replay", seed=1)
    live = DecisionEngine.from_store(
        store, keyring(), tmp_path / "c-live", config, EventLog(events, "replay")
    )
    frozen = DecisionEngine.from_store(store, keyring(), tmp_path / "c-frozen", config)
    result = run_replay(bars, live, frozen, train, events, SETTINGS)

    assert [c for c, _ in calls] == [0, 1, 2]
    assert [n for _, n in calls] == [2 * 700, 2 * 950, 2 * 1200]  # the bars before each cycle
    assert [c.live_versions["bandit"] for c in result.cycles] == ["v000001", "v000002", "v000003"]
    assert {c.frozen_versions["bandit"] for c in result.cycles} == {"v000001"}
    first = result.cycles[0]
    assert first.live.value == first.frozen.value  # same models, same seed: same decisions
    for c in result.cycles:
        assert c.n_decisions == 2 * 250
        for est in (c.live, c.frozen, c.best_arm_value, c.oracle):
            assert est is not None and est.low <= est.value <= est.high
        assert c.oracle is not None and c.oracle.value >= c.best_arm_value.value - 1e-12
        assert c.best_arm in ARM_NAMES
    table = result.table()
    assert list(table["cycle"]) == [0, 1, 2]
    assert {"live", "live_low", "frozen", "best_arm", "oracle", "live_versions"} <= set(table)
    assert len(result.decisions) == 3 * 500
    assert plot_replay(result, tmp_path / "replay.png").stat().st_size > 0


def test_cycle_edges_refuse_too_short_data() -> None:
    stamps = np.arange(1000)
    assert cycle_edges(stamps, ReplaySettings(cycles=2, cycle_bars=300, initial_bars=300)) == [
        (300, 600),
        (600, 900),
    ]
    with pytest.raises(ValueError, match="hold only 3 of 4 cycles"):
        cycle_edges(stamps, ReplaySettings(cycles=4, cycle_bars=300, initial_bars=300))
    with pytest.raises(ValueError, match="warm-up"):
        ReplaySettings(initial_bars=100)


def test_outcome_timing_turnover_and_verdict() -> None:
    from pipelines.bot.replay import (
        CycleResult,
        ReplayResult,
        close_rows,
        loop_verdict,
        turnover_fees,
    )
    from pipelines.evaluation.ope import Estimate

    ts = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    bars = pd.DataFrame({"ts": ts.repeat(2), "symbol": ["A", "B"] * 4})
    # row 0 (A, t0) closes 2 bars later at row 4 (A, t2); the last two bars of each never close
    assert list(close_rows(bars, 2)) == [4, 5, 6, 7, -1, -1, -1, -1]
    nxt = close_rows(bars, 1)
    sig = np.zeros((8, 12))
    sig[[0, 2, 4], 0] = [1, -1, -1]  # A: +1, -1, -1: entry 1, flip 2, exit 1
    assert turnover_fees(sig, np.array([0]), np.array([0]), nxt, 3)[0] == 4.0
    assert turnover_fees(sig, np.array([1]), np.array([0]), nxt, 3)[0] == 0.0

    est = Estimate(0.0, 0.0, 0.0)
    cyc = CycleResult(0, ts[0], ts[1], 1, est, est, "x", est, None, {}, {})
    diff = np.r_[np.full(100, 2e-4), np.full(100, 4e-4)]
    decisions = pd.DataFrame(
        {"cycle": [0] * 50 + [1] * 150, "reward": diff, "frozen_reward": np.zeros(200)}
    )
    up = loop_verdict(ReplayResult((cyc, cyc), decisions), SETTINGS)
    assert up.beats_frozen and up.n_decisions == 150 and "beats" in up.line
    flat = decisions.assign(reward=0.0)
    down = loop_verdict(ReplayResult((cyc, cyc), flat), SETTINGS)
    assert not down.beats_frozen and "do NOT beat" in down.line
    assert not loop_verdict(ReplayResult((cyc,), decisions), SETTINGS).beats_frozen


def _walk(bars: pd.DataFrame, at: int, side: float, atr: float, pair: tuple, hold: int) -> float:
    """One trade of one symbol's bars walked bar by bar (gap, stop first, target, time)."""
    entry = bars["close"].iloc[at]
    stop, target = -pair[0] * atr, pair[1] * atr
    for k in range(1, hold + 1):
        b = bars.iloc[at + k]
        o, lo, hi = (side * (b[c] / entry - 1.0) for c in ("open", "low", "high"))
        if o <= stop or o >= target:
            return o
        if min(lo, hi) <= stop:
            return stop
        if max(lo, hi) >= target:
            return target
    return side * (bars["close"].iloc[at + hold] / entry - 1.0)


def test_the_replay_scores_the_published_exits(tmp_path: Path) -> None:
    """The live trades exit by the stop / target the published recommendation held when
    each cycle began (defaults before one is published), so the verdict covers them."""
    from pipelines.bot.replay import exits_verdict, published_exits
    from pipelines.recommendations import atr_fraction
    from pipelines.registry import publish_model
    from pipelines.strategies import ARM_FAMILIES

    cfg = load_config().data.synthetic.model_copy(
        update={"n_bars": 1450, "symbols": ["SYN1", "SYN2"]}
    )
    bars = generate_bars(cfg, 3)
    store = FileStore(tmp_path / "store")
    tight = (0.5, 1.0)

    def train(seen: pd.DataFrame, events_dir: Path, cycle: int) -> None:
        if cycle == 0:
            publish(store, "regime", regime_onnx()[0])
            publish(store, "sizer", sizer_onnx()[0])
            publish(store, "bandit", _ridge_bandit(seen))
        if cycle == 1:  # the first recommendation, tight exits for every family
            doc = {
                "family_exits": {
                    f: {"stop_loss_multiplier": tight[0], "take_profit_multiplier": tight[1]}
                    for f in set(ARM_FAMILIES.values())
                }
            }
            publish_model(
                store,
                "recommendation",
                {"latest_recommendation.json": json.dumps(doc).encode()},
                keyring(),
                lineage={"mlflow_run_id": "t", "git_commit": "t", "data_hash": "x"},
            )

    events = tmp_path / "events"
    config = EngineConfig(bot_id="replay", seed=1)
    live = DecisionEngine.from_store(
        store, keyring(), tmp_path / "c-live", config, EventLog(events, "replay")
    )
    frozen = DecisionEngine.from_store(store, keyring(), tmp_path / "c-frozen", config)
    settings = ReplaySettings(
        cycles=2, cycle_bars=250, initial_bars=700, n_bootstrap=200, exit_max_hold=12
    )
    exits = published_exits(store, keyring())
    assert exits() is None  # nothing published yet: the defaults
    result = run_replay(bars, live, frozen, train, events, settings, exits)

    assert result.cycles[0].exits == {}
    assert result.cycles[1].exits == dict.fromkeys(set(ARM_FAMILIES.values()), tight)
    d = result.decisions
    first, second = d[d["cycle"] == 0], d[d["cycle"] == 1]
    assert np.allclose(first["exit_reward"], first["exit_default_reward"], equal_nan=True)
    assert (second["exit_reward"] != second["exit_default_reward"]).sum() > 20
    # every scored trade equals a bar-by-bar walk of its symbol's bars
    ordered = bars.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    sig = compute_signals(ordered).to_numpy()
    unit = 2 * (settings.cost_bps + settings.slippage_bps) / 1e4
    checked = 0
    for _, dec in second.iloc[::7].iterrows():
        row, arm = int(dec["row"]), int(dec["arm_index"])
        side = float(np.sign(sig[row, arm]))
        if side == 0:
            assert dec["exit_reward"] == 0.0
            continue
        sym = ordered[ordered["symbol"] == ordered["symbol"].iat[row]].reset_index()
        at = int(np.flatnonzero(sym["index"].to_numpy() == row)[0])
        atr = atr_fraction(sym.drop(columns="index"))[at]
        want = _walk(sym, at, side, atr, tight, 12) - unit
        assert dec["exit_reward"] == pytest.approx(want, abs=1e-12)
        checked += 1
    assert checked > 5
    verdict = exits_verdict(result, settings)
    assert verdict.n_decisions > 0 and "published - default exits" in verdict.line
    assert result.cycles[1].exits_published is not None
    assert {"exits_published", "exits_default"} <= set(result.table())
