"""The engine's budgeted exploration: published set and rate, logged propensities that the
documented rule recomputes from the log, the old rule kept, the named seed stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bot_support import bandit_onnx, keyring, publish, publish_all

from configs.settings import load_config
from pipelines.bot import DecisionEngine, EngineConfig, EventLog, read_events
from pipelines.data.synthetic import generate_bars
from pipelines.events.exploration import ExplorationPolicy, distribution_from_record
from pipelines.registry import FileStore
from pipelines.registry.challenger import publish_challenger
from pipelines.seeding import Streams
from pipelines.strategies import ARM_NAMES, N_ARMS, compute_signals

SET = (0, 5, 7)
EPSILON = 0.25


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": 420, "symbols": ["SYN1"]})
    return generate_bars(cfg, 5).sort_values(["ts", "symbol"]).reset_index(drop=True)


def _policy_metrics() -> dict[str, float]:
    return ExplorationPolicy(SET, EPSILON, 1.5, 1.2, 4.8).to_metrics()


def _run(
    tmp_path: Path, store: FileStore, bars: pd.DataFrame, name: str, **cfg: object
) -> list[dict]:
    config = EngineConfig(bot_id="bot-e", seed=4, **cfg)  # type: ignore[arg-type]
    events = EventLog(tmp_path / name, "bot-e")
    engine = DecisionEngine.from_store(store, keyring(), tmp_path / f"cache-{name}", config, events)
    signals = compute_signals(bars)
    for i, bar in enumerate(bars.itertuples(index=False)):
        engine.on_bar(
            bar.symbol, bar.ts, bar.high, bar.low, bar.close, bar.volume, signals.iloc[i].to_numpy()
        )
    engine.close()
    return [
        e
        for e in read_events(tmp_path / name)
        if e.get("schema", "").startswith("edgeflow.decision")
    ]


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    store, _ = publish_all(tmp_path / "store")
    publish(
        store, "bandit", bandit_onnx()[0], **{"train/default_arm_index": 2.0, **_policy_metrics()}
    )
    return store


def test_logged_propensity_is_the_documented_rule_recomputed_from_the_log(
    tmp_path: Path, store: FileStore, bars: pd.DataFrame
) -> None:
    events = _run(tmp_path, store, bars, "budgeted")
    assert len(events) > 50
    traded = set()
    for e in events:
        rec = e["engine"]["exploration"]
        assert rec["rule"] == "budgeted" and rec["epsilon"] == EPSILON and rec["set"] == list(SET)
        dist = distribution_from_record(rec, N_ARMS)
        assert dist.tolist() == e["action_distribution"]  # bit for bit
        arm = ARM_NAMES.index(e["arm"])
        assert e["propensity"] == dist[arm]
        assert arm in SET or arm in rec["greedy"]
        traded.add(arm)
    assert traded & set(SET)  # it did explore


def test_old_rule_is_kept_and_logged_as_such(
    tmp_path: Path, store: FileStore, bars: pd.DataFrame
) -> None:
    events = _run(tmp_path, store, bars, "old", exploration="epsilon_greedy", epsilon=0.5)
    for e in events:
        rec = e["engine"]["exploration"]
        assert rec["rule"] == "epsilon_greedy"
        assert distribution_from_record(rec, N_ARMS).tolist() == e["action_distribution"]
    assert len({e["arm"] for e in events}) > len(SET) + 1  # all 12 arms are in reach


def test_bandit_without_a_published_policy_uses_epsilon_greedy(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    store, _ = publish_all(tmp_path / "store")  # manifest without explore/*
    events = _run(tmp_path, store, bars, "nopolicy")
    assert {e["engine"]["exploration"]["rule"] for e in events} == {"epsilon_greedy"}
    assert {e["engine"]["exploration"]["epsilon"] for e in events} == {0.1}


def test_exploration_draws_come_from_the_named_engine_stream(tmp_path: Path) -> None:
    store, _ = publish_all(tmp_path / "store")
    engine = DecisionEngine.from_store(store, keyring(), tmp_path / "c", EngineConfig(seed=6))
    expected = Streams(6).child("engine").numpy("exploration").random(5)
    assert engine.rng.random(5).tolist() == expected.tolist()
    assert expected[0] != np.random.default_rng(6).random()  # not the replay's default_rng(seed)


def test_shadowed_challengers_arm_joins_the_exploration_set(
    tmp_path: Path, store: FileStore, bars: pd.DataFrame
) -> None:
    chal_bandit, chal_lin = bandit_onnx(seed=14)
    publish_challenger(store, "bandit", {"model.onnx": chal_bandit}, keyring())
    config = EngineConfig(bot_id="bot-e", seed=4)
    engine = DecisionEngine.from_store(
        store,
        keyring(),
        tmp_path / "cache",
        config,
        EventLog(tmp_path / "ev", "bot-e"),
        shadow_events=EventLog(tmp_path / "shadow", "bot-e"),
    )
    signals = compute_signals(bars)
    decisions = []
    for i, bar in enumerate(bars.itertuples(index=False)):
        d = engine.on_bar(
            bar.symbol, bar.ts, bar.high, bar.low, bar.close, bar.volume, signals.iloc[i].to_numpy()
        )
        if d is not None:
            decisions.append(d)
    engine.close()
    assert decisions
    added = 0
    for d in decisions:
        c = int(np.argmax(chal_lin(d.features.astype(np.float32)[None, :])))
        expected = list(SET) + ([c] if c not in SET else [])
        assert d.exploration["set"] == expected
        assert d.action_distribution[c] >= EPSILON / len(expected)
        added += c not in SET
    assert added > 0  # the challenger did propose arms outside the published set
