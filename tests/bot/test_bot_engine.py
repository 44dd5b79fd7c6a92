"""The decision engine on real signed stores: features, models, propensities, fallbacks, log."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bot_support import (
    bandit_onnx,
    keyring,
    metalabel_onnx,
    mlp_onnx,
    publish,
    publish_all,
    sizer_onnx,
)

from configs.settings import load_config
from pipelines.bot import DecisionEngine, EngineConfig, EventLog, read_events
from pipelines.bot.policy import action_distribution
from pipelines.data.schema import REGIMES
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES, WARMUP_BARS, featurize
from pipelines.models.regime.bocd import bocd_frame
from pipelines.registry import FileStore
from pipelines.strategies import ARM_NAMES, compute_signals

N_BARS = 260


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(
        update={"n_bars": N_BARS, "symbols": ["SYN1", "SYN2"]}
    )
    out = generate_bars(cfg, 5).sort_values(["ts", "symbol"]).reset_index(drop=True)
    return out


def _run(engine: DecisionEngine, bars: pd.DataFrame) -> list:
    signals = compute_signals(bars)
    decisions = []
    for i, bar in enumerate(bars.itertuples(index=False)):
        d = engine.on_bar(
            bar.symbol, bar.ts, bar.high, bar.low, bar.close, bar.volume, signals.iloc[i].to_numpy()
        )
        if d is not None:
            decisions.append(d)
    return decisions


def _engine(tmp_path: Path, store: FileStore, **cfg: object) -> DecisionEngine:
    config = EngineConfig(bot_id="bot-a", seed=3, **cfg)  # type: ignore[arg-type]
    events = EventLog(tmp_path / "events", "bot-a")
    return DecisionEngine.from_store(store, keyring(), tmp_path / "cache", config, events)


def test_decisions_follow_the_models_and_are_logged(tmp_path: Path, bars: pd.DataFrame) -> None:
    store, lin = publish_all(tmp_path / "store", metalabel=True)
    engine = _engine(tmp_path, store)
    decisions = _run(engine, bars)
    assert len(decisions) == 2 * (N_BARS - WARMUP_BARS)

    fs = featurize(bars).frame
    cp = bocd_frame(bars, 1 / 200, 300, window=24, prior_var=1e-4)
    signals = compute_signals(bars).assign(ts=bars["ts"], symbol=bars["symbol"])
    for d in decisions:
        row = fs[(fs["symbol"] == d.symbol) & (fs["ts"] == pd.Timestamp(d.ts))]
        x = row[list(FEATURE_NAMES)].to_numpy(np.float32)
        np.testing.assert_array_equal(d.features.astype(np.float32)[None, :], x)
        probs = np.exp(lin["regime"](x))
        probs /= probs.sum()
        np.testing.assert_allclose(d.regime_probabilities, probs[0], rtol=1e-5, atol=1e-6)
        assert d.regime == REGIMES[int(np.argmax(probs))]
        dist = action_distribution(lin["bandit"](x)[0], engine.config.epsilon)
        np.testing.assert_allclose(d.action_distribution, dist, atol=1e-9)
        assert d.propensity == pytest.approx(dist[d.arm_index]) and d.propensity > 0
        sig = signals[(signals["symbol"] == d.symbol) & (signals["ts"] == pd.Timestamp(d.ts))]
        assert d.signal == int(sig[d.arm].iloc[0])
        obs = np.concatenate([x[0], [d.signal]]).astype(np.float32)
        m = 0.1 + (np.tanh(lin["sizer"](obs[None, :])[0, 0]) + 1.0) * 0.95
        p_win = 1.0 / (1.0 + np.exp(-lin["metalabel"](np.r_[x[0], np.eye(12)[d.arm_index]])[0]))
        assert d.p_win == pytest.approx(p_win, abs=1e-6)
        expected_cp = cp[(cp["symbol"] == d.symbol) & (cp["ts"] == pd.Timestamp(d.ts))]
        assert d.changepoint_prob == float(expected_cp["cp_prob"].iloc[0])
        expected_m = float(np.clip(m, 0.1, 2.0)) if p_win >= 0.5 else 0.1
        if d.changepoint_action == "none":
            assert d.size_multiplier == pytest.approx(expected_m, abs=1e-6)
        assert 0.1 <= d.size_multiplier <= 2.0
        assert d.models == {
            "regime": "v000001",
            "bandit": "v000001",
            "metalabel": "v000001",
            "sizer": "v000001",
        }
        assert d.fallbacks == ()

    events = read_events(tmp_path / "events")
    assert [e["event_id"] for e in events] == [d.event_id for d in decisions]
    first = events[0]
    assert first["schema"] == "edgeflow.decision/1" and first["bot_id"] == "bot-a"
    assert first["ts"].endswith("+00:00") and len(first["features"]) == 43
    assert first["strategy_id"].startswith("S") and first["arm"] in ARM_NAMES
    assert sum(first["action_distribution"]) == pytest.approx(1.0)


def test_same_seed_same_draws_and_arms_vary(tmp_path: Path, bars: pd.DataFrame) -> None:
    store, _ = publish_all(tmp_path / "store")
    cfg = EngineConfig(seed=11, epsilon=0.5)
    a = _run(DecisionEngine.from_store(store, keyring(), tmp_path / "c1", cfg), bars)
    b = _run(DecisionEngine.from_store(store, keyring(), tmp_path / "c2", cfg), bars)
    assert [d.arm for d in a] == [d.arm for d in b]
    assert len({d.arm for d in a}) > 3  # epsilon 0.5 explores
    explored = [d for d in a if d.propensity < 0.5]
    assert explored and all(d.propensity == pytest.approx(0.5 / 12) for d in explored)


def test_hot_reload_switches_versions_between_bars(tmp_path: Path, bars: pd.DataFrame) -> None:
    store, _ = publish_all(tmp_path / "store")
    engine = _engine(tmp_path, store)
    half = len(bars) - 40
    before = _run(engine, bars.iloc[:half])
    publish(store, "bandit", bandit_onnx(seed=9)[0])
    assert engine.refresh()["bandit"] is True
    signals = compute_signals(bars).iloc[half:]
    after = [
        engine.on_bar(b.symbol, b.ts, b.high, b.low, b.close, b.volume, s)
        for b, s in zip(bars.iloc[half:].itertuples(), signals.to_numpy(), strict=True)
    ]
    assert {d.models["bandit"] for d in before} == {"v000001"}
    assert {d.models["bandit"] for d in after if d} == {"v000002"}


def test_empty_store_falls_back_and_says_so(tmp_path: Path, bars: pd.DataFrame) -> None:
    engine = _engine(tmp_path, FileStore(tmp_path / "empty"))
    decisions = _run(engine, bars)
    assert decisions
    greedy = 1 - 0.1 + 0.1 / 12  # epsilon-greedy around the default arm (epsilon 0.1)
    for d in decisions:
        p = d.action_distribution
        assert p[ARM_NAMES.index("ema_24_120")] == pytest.approx(greedy)
        assert d.propensity == pytest.approx(greedy if d.arm == "ema_24_120" else 0.1 / 12)
        assert d.regime is None and d.models == {} and d.p_win is None
        if d.changepoint_action == "none":
            assert d.size_multiplier == 1.0
        assert {f.model for f in d.fallbacks} == {"regime", "bandit", "sizer"}
        assert all(f.reason == "no-model (pointer-missing)" for f in d.fallbacks)
    played = {d.arm for d in decisions}
    assert "ema_24_120" in played and len(played) > 3  # explores: the logs support other arms
    event = read_events(tmp_path / "events")[0]
    assert event["engine"]["fallbacks"][0] == {
        "model": "regime",
        "reason": "no-model (pointer-missing)",
    }


def test_tampered_bandit_is_refused_and_default_arm_used(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    store, _ = publish_all(tmp_path / "store")
    onnx_path = tmp_path / "store" / "bandit" / "v000001" / "model.onnx"
    blob = bytearray(onnx_path.read_bytes())
    blob[-5] ^= 0x01
    onnx_path.write_bytes(bytes(blob))
    engine = _engine(tmp_path, store)
    d = _run(engine, bars)[0]
    assert max(d.action_distribution) == d.action_distribution[ARM_NAMES.index("ema_24_120")]
    assert [f.reason for f in d.fallbacks] == ["no-model (hash-mismatch)"]
    assert d.models == {"regime": "v000001", "sizer": "v000001"}


def test_changepoint_thresholds_reduce_and_exit(tmp_path: Path, bars: pd.DataFrame) -> None:
    store, _ = publish_all(tmp_path / "store")
    exits = _run(_engine(tmp_path / "a", store, reduce_threshold=1e-12, exit_threshold=1e-12), bars)
    assert all(d.changepoint_action == "exit" and d.target_position == 0.0 for d in exits)
    assert all(d.size_multiplier == 0.1 for d in exits)
    plain = _run(_engine(tmp_path / "b", store), bars)
    reduced = _run(_engine(tmp_path / "c", store, reduce_threshold=1e-12, exit_threshold=1.0), bars)
    for p, r in zip(plain, reduced, strict=True):
        assert r.changepoint_action == "reduce" and r.arm == p.arm
        if p.changepoint_action == "exit":  # the default thresholds already exited there
            continue
        before = p.size_multiplier * (2.0 if p.changepoint_action == "reduce" else 1.0)
        assert r.size_multiplier == pytest.approx(max(0.1, before * 0.5))
        assert r.target_position == pytest.approx(r.signal * r.size_multiplier)


def test_metalabel_veto_sizes_at_the_minimum(tmp_path: Path, bars: pd.DataFrame) -> None:
    store, _ = publish_all(tmp_path / "store")
    publish(store, "metalabel", metalabel_onnx(bias=-2.0)[0])  # P(win) = 0.119 everywhere
    decisions = _run(_engine(tmp_path, store), bars)
    assert all(d.p_win == pytest.approx(1 / (1 + np.exp(2.0)), abs=1e-6) for d in decisions)
    assert all(d.size_multiplier == 0.1 for d in decisions)


def test_record_outcome_links_to_the_decision(tmp_path: Path, bars: pd.DataFrame) -> None:
    store, _ = publish_all(tmp_path / "store")
    engine = _engine(tmp_path, store)
    d = _run(engine, bars.iloc[: 2 * (WARMUP_BARS + 1)])[0]
    out = engine.record_outcome(
        d.event_id, "2024-01-10T05:00:00Z", 0.0012, 12.5, 0.4, 6, "time_exit"
    )
    assert out["decision_id"] == d.event_id and out["schema"] == "edgeflow.outcome/1"
    assert out["closed_at"] == "2024-01-10T05:00:00+00:00" and out["currency"] == "USD"
    assert read_events(tmp_path / "events")[-1] == out
    with pytest.raises(ValueError, match="exit_reason 'lucky'"):
        engine.record_outcome(d.event_id, "2024-01-10T05:00:00Z", 0.0, 0.0, 0.0, 1, "lucky")
    with pytest.raises(ValueError, match="net_pnl must be a finite number"):
        engine.record_outcome(
            d.event_id, "2024-01-10T05:00:00Z", 0.0, float("nan"), 0.0, 1, "manual"
        )


def test_bad_signals_are_refused(tmp_path: Path) -> None:
    engine = _engine(tmp_path, FileStore(tmp_path / "empty"))
    with pytest.raises(ValueError, match="12 positions"):
        engine.on_bar("X", "2024-01-01", 1.0, 1.0, 1.0, 1.0, [2] * 12)
    with pytest.raises(ValueError, match="lack arm"):
        engine.on_bar("X", "2024-01-01", 1.0, 1.0, 1.0, 1.0, {"ema_8_21": 1})


def test_events_pass_the_event_contract_validator(tmp_path: Path, bars: pd.DataFrame) -> None:
    """Runs where the event contract (``pipelines.events``) is present on the branch."""
    contract = pytest.importorskip("pipelines.events.contract")
    store, _ = publish_all(tmp_path / "store", metalabel=True)
    engine = _engine(tmp_path, store, event_details=False)  # the contract's fields only
    decisions = _run(engine, bars)
    engine.record_outcome(decisions[0].event_id, decisions[0].ts, 0.001, 1.0, 0.1, 6, "time_exit")
    events = read_events(tmp_path / "events")
    core = [e for e in events if e["schema"] == "edgeflow.decision/1"]
    assert all("engine" not in e for e in core)
    batch = contract.validate_decisions(core)
    assert batch.problems == [] and len(batch.rows) == len(decisions) == len(core)
    outcomes = [e for e in events if e["schema"] == "edgeflow.outcome/1"]
    assert len(outcomes) == 1 and contract.validate_outcomes(outcomes).problems == []


def test_bad_bandit_output_falls_back_to_its_manifest_default_arm(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    store, _ = publish_all(tmp_path / "store")
    wrong = mlp_onnx("features", "arm_values", (43, 5))  # loads and verifies, 5 values, not 12
    publish(store, "bandit", wrong, **{"train/default_arm_index": 4.0})
    d = _run(_engine(tmp_path, store, epsilon=0.0), bars)[0]
    assert d.arm == ARM_NAMES[4] and d.propensity == 1.0  # epsilon 0: the default arm only
    assert [(f.model, f.reason) for f in d.fallbacks] == [("bandit", "bad arm values (5,)")]
    assert "bandit" not in d.models


def test_background_polling_picks_up_a_new_version(tmp_path: Path) -> None:
    store, _ = publish_all(tmp_path / "store")
    engine = DecisionEngine.from_store(
        store, keyring(), tmp_path / "cache", EngineConfig(), poll_interval=0.05
    )
    engine.start()
    try:
        publish(store, "sizer", sizer_onnx(seed=8)[0])
        deadline = time.monotonic() + 20
        while engine.versions["sizer"] != "v000002" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        engine.close()
    assert engine.versions == {
        "regime": "v000001",
        "bandit": "v000001",
        "metalabel": None,
        "sizer": "v000002",
    }


def test_config_from_settings_takes_the_regime_bocd_section() -> None:
    settings = load_config()
    cfg = EngineConfig.from_settings(settings, bot_id="b", prior_var=2e-5)
    b = settings.regime.bocd
    assert (cfg.hazard, cfg.max_run_length, cfg.window) == (b.hazard, b.max_run_length, b.window)
    assert (cfg.reduce_threshold, cfg.exit_threshold) == (b.reduce_threshold, b.exit_threshold)
    assert cfg.prior_var == 2e-5 and cfg.bot_id == "b" and cfg.seed == settings.seed
    with pytest.raises(ValueError, match="default_arm"):
        EngineConfig(default_arm="nope")
    with pytest.raises(ValueError, match="reduce_threshold"):
        EngineConfig(reduce_threshold=0.95, exit_threshold=0.9)


def test_event_lines_are_compact_sorted_json_and_refuse_non_finite_numbers() -> None:
    import json

    from pipelines.bot.events import event_line

    record = {"b": np.float64(0.25), "a": [1e-5, None], "c": "x"}
    line = event_line(record)
    assert line == b'{"a":[0.00001,null],"b":0.25,"c":"x"}\n'
    assert json.loads(line) == {"a": [1e-5, None], "b": 0.25, "c": "x"}
    for bad in ({"x": float("nan")}, {"x": [1.0, float("-inf")]}, {"x": {"y": np.float64("inf")}}):
        with pytest.raises(ValueError, match="NaN or infinity"):
            event_line(bad)
