"""Shadow decisions: a published challenger answers on every bar, is logged, never acts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bot_support import bandit_onnx, keyring, publish_all, sizer_onnx

from configs.settings import load_config
from pipelines.bot import DecisionEngine, EngineConfig, EventLog, read_events
from pipelines.bot.shadow import SHADOW_SCHEMA, read_shadow_events
from pipelines.data.synthetic import generate_bars
from pipelines.features import WARMUP_BARS
from pipelines.registry.challenger import publish_challenger, withdraw_challenger
from pipelines.strategies import ARM_NAMES, compute_signals

N_BARS = 260
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "events" / "shadow-1.json"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(
        update={"n_bars": N_BARS, "symbols": ["SYN1", "SYN2"]}
    )
    return generate_bars(cfg, 5).sort_values(["ts", "symbol"]).reset_index(drop=True)


def _run(engine: DecisionEngine, bars: pd.DataFrame) -> list:
    signals = compute_signals(bars).to_numpy()
    out = []
    for i, bar in enumerate(bars.itertuples(index=False)):
        d = engine.on_bar(bar.symbol, bar.ts, bar.high, bar.low, bar.close, bar.volume, signals[i])
        if d is not None:
            out.append(d)
    return out


def _engine(tmp: Path, store: object, shadow: bool) -> DecisionEngine:
    config = EngineConfig(bot_id="bot-a", seed=3)
    events = EventLog(tmp / "events", "bot-a")
    return DecisionEngine.from_store(
        store,  # type: ignore[arg-type]
        keyring(),
        tmp / "cache",
        config,
        events,
        shadow_events=EventLog(tmp / "shadow", "bot-a") if shadow else None,
    )


def _event_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.gz"))}


def test_challengers_are_shadowed_on_every_decision_without_acting(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    store, lin = publish_all(tmp_path / "store")
    plain = _engine(tmp_path / "plain", store, shadow=False)
    baseline = _run(plain, bars)
    plain.close()

    chal_bandit, chal_lin = bandit_onnx(seed=14)
    chal_sizer, chal_s = sizer_onnx(seed=12)
    publish_challenger(store, "bandit", {"model.onnx": chal_bandit}, keyring())
    publish_challenger(store, "sizer", {"model.onnx": chal_sizer}, keyring())
    shadowed = _engine(tmp_path / "shadowed", store, shadow=True)
    assert {r: c.version for r, c in shadowed.challengers.items() if c.version} == {
        "bandit": "v000002",
        "sizer": "v000002",
    }
    decisions = _run(shadowed, bars)
    shadowed.close()

    # the champion's decisions and their log are byte for byte those of an engine that
    # shadows nothing (same seed: no extra draw from the engine's random stream)
    assert [(d.event_id, d.arm, d.propensity, d.size_multiplier) for d in decisions] == [
        (d.event_id, d.arm, d.propensity, d.size_multiplier) for d in baseline
    ]
    assert _event_bytes(tmp_path / "shadowed" / "events") == _event_bytes(
        tmp_path / "plain" / "events"
    )
    assert len(decisions) == 2 * (N_BARS - WARMUP_BARS) > 0

    shadow = read_shadow_events(tmp_path / "shadowed" / "shadow")
    assert all(e["schema"] == SHADOW_SCHEMA for e in shadow)
    assert not any(e.get("schema") == SHADOW_SCHEMA for e in read_events(tmp_path / "plain"))
    by_id = {(e["decision_id"], e["model"]): e for e in shadow}
    assert len(by_id) == len(shadow) == 2 * len(decisions)
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(json.loads(SCHEMA.read_text()))
    for d in decisions:
        x = d.features.astype(np.float32)[None, :]
        b = by_id[(d.event_id, "bandit")]
        validator.validate(b)
        assert b["champion"] == {
            "version": "v000001",
            "arm": ARM_NAMES[int(np.argmax(lin["bandit"](x)))],
        }
        assert b["challenger"]["version"] == "v000002" and b["challenger"]["sequence"] == 1
        assert b["challenger"]["arm"] == ARM_NAMES[int(np.argmax(chal_lin(x)))]
        assert b["arm"] == d.arm
        s = by_id[(d.event_id, "sizer")]
        validator.validate(s)
        assert s["champion"]["size_multiplier"] == d.size_multiplier
        if d.changepoint_action == "none":
            obs = np.concatenate([x[0], [d.signal]]).astype(np.float32)[None, :]
            m = 0.1 + (np.tanh(chal_s(obs)[0, 0]) + 1.0) * 0.95
            assert s["challenger"]["size_multiplier"] == pytest.approx(
                float(np.clip(m, 0.1, 2.0)), abs=1e-6
            )
    # the two bandits disagree on some bars, or the test would show nothing
    assert any(
        by_id[(d.event_id, "bandit")]["challenger"]["arm"]
        != by_id[(d.event_id, "bandit")]["champion"]["arm"]
        for d in decisions
    )


def test_a_withdrawn_or_replayed_challenger_is_not_shadowed(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    store, _ = publish_all(tmp_path / "store")
    chal, _ = bandit_onnx(seed=11)
    publish_challenger(store, "bandit", {"model.onnx": chal}, keyring())
    published = store.read("bandit/CHALLENGER")
    engine = _engine(tmp_path / "e", store, shadow=True)
    head = bars.iloc[: 2 * (WARMUP_BARS + 10)]
    _run(engine, head)
    seen = len(read_shadow_events(tmp_path / "e" / "shadow"))
    assert seen == 20
    withdraw_challenger(store, "bandit", keyring())
    engine.refresh()
    assert engine.challengers["bandit"].version is None
    store.write("bandit/CHALLENGER", published)  # the withdrawn envelope put back
    engine.refresh()
    assert engine.challengers["bandit"].version is None
    assert "replayed" in (engine.challengers["bandit"].last_error or "")
    _run(engine, bars.iloc[2 * (WARMUP_BARS + 10) :])
    engine.close()
    assert len(read_shadow_events(tmp_path / "e" / "shadow")) == seen
