"""Shadow promotion end to end: published as challenger, shadowed by the engine, scored on
the bars that followed, then promoted or refused; a placebo (zero skill) is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bot_support import _io, _model, keyring, publish
from onnx import helper, numpy_helper

from configs.settings import load_config
from pipelines.bot import DecisionEngine, EngineConfig, EventLog
from pipelines.bot.shadow import ShadowLifts, judge_shadow, read_shadow_events, shadow_lifts
from pipelines.data.synthetic import generate_bars
from pipelines.features import WARMUP_BARS
from pipelines.models.promotion import ShadowRules, indexed_rewards, settle_shadow
from pipelines.registry import FileStore, verify_model
from pipelines.registry.challenger import publish_challenger
from pipelines.registry.verify import read_challenger
from pipelines.strategies import ARM_NAMES, compute_signals
from pipelines.strategies.signals import arm_rewards

SETTINGS = load_config()
RULES = ShadowRules(min_decisions=300, block=24, n_bootstrap=500, level=0.95, seed=SETTINGS.seed)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    cfg = SETTINGS.data.synthetic.model_copy(update={"n_bars": 900, "symbols": ["SYN1", "SYN2"]})
    return generate_bars(cfg, 7).sort_values(["ts", "symbol"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def rewards(bars: pd.DataFrame) -> pd.DataFrame:
    b = SETTINGS.bandit
    raw = arm_rewards(bars, compute_signals(bars), b.reward_horizon, b.cost_bps, b.slippage_bps)
    return indexed_rewards(bars, raw)


def _constant_bandit(arm: int) -> bytes:
    """A bandit that always values ``arm`` highest: a rule policy with the slot's contract."""
    w = np.zeros((43, 12), np.float32)
    b = np.zeros(12, np.float32)
    b[arm] = 1.0
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["arm_values"]),
    ]
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    return _model(nodes, [_io("features", 43)], [_io("arm_values", 12)], inits)


def _shadow_run(tmp: Path, store: FileStore, bars: pd.DataFrame) -> list[dict]:
    engine = DecisionEngine.from_store(
        store,
        keyring(),
        tmp / "cache",
        EngineConfig(bot_id="bot-a", seed=SETTINGS.seed),
        EventLog(tmp / "events", "bot-a"),
        roles=("bandit",),
        shadow_events=EventLog(tmp / "shadow", "bot-a"),
    )
    signals = compute_signals(bars).to_numpy()
    for i, bar in enumerate(bars.itertuples(index=False)):
        engine.on_bar(bar.symbol, bar.ts, bar.high, bar.low, bar.close, bar.volume, signals[i])
    engine.close()
    return read_shadow_events(tmp / "shadow")


def _judging(rules: ShadowRules) -> dict[str, float]:
    return {k: v for k, v in rules.__dict__.items() if k != "metalabel_threshold"}


def _lifts(lifts: np.ndarray) -> ShadowLifts:
    return ShadowLifts("bandit", "v000002", lifts, 0)


def test_placebo_challengers_are_refused_at_the_bound_level(rewards: pd.DataFrame) -> None:
    """A challenger with zero skill (a random arm, against a champion playing another random
    arm) has no lift; a bound at 95 % may promote it at most ~5 % of the time."""
    r = rewards.dropna().to_numpy()
    promoted = 0
    for seed in range(20):
        rng = np.random.default_rng([SETTINGS.seed, seed])
        a, b = rng.integers(0, 12, size=(2, len(r)))
        rows = np.arange(len(r))
        verdict = judge_shadow(_lifts(r[rows, a] - r[rows, b]), **_judging(RULES))
        promoted += verdict.promote
        if not verdict.promote:
            assert "refused" in verdict.reason and "<= 0" in verdict.reason
    assert promoted <= 3


def test_skill_is_promoted_and_too_few_decisions_are_not(rewards: pd.DataFrame) -> None:
    r = rewards.dropna().to_numpy()
    rows = np.arange(len(r))
    oracle = r.max(axis=1) - r[rows, 0]  # the arm that did best, against a fixed arm
    verdict = judge_shadow(_lifts(oracle), **_judging(RULES))
    assert verdict.promote and verdict.lower_bps > 0 and "promoted" in verdict.reason
    short = judge_shadow(_lifts(oracle[:50]), **_judging(RULES))
    assert not short.promote and "fewer than the 300 required" in short.reason


def test_shadow_promotion_end_to_end(
    tmp_path: Path, bars: pd.DataFrame, rewards: pd.DataFrame
) -> None:
    """Champion: always the arm that did worst on the bars the bot decides on (after the
    features' warm-up); challenger: the one that did best there (a lift it really has on
    those bars, known here by hindsight). Published as challenger, shadowed on every bar,
    promoted on its realized lift."""
    mean = rewards.iloc[2 * WARMUP_BARS :].dropna().mean()
    best, worst = ARM_NAMES.index(str(mean.idxmax())), ARM_NAMES.index(str(mean.idxmin()))
    store = FileStore(tmp_path / "store")
    state = tmp_path / "publisher-state"
    publish(store, "bandit", _constant_bandit(worst))
    pub = publish_challenger(
        store, "bandit", {"model.onnx": _constant_bandit(best)}, keyring(), state_dir=state
    )
    assert verify_model(store, "bandit", keyring()).version == "v000001"

    events = _shadow_run(tmp_path, store, bars)
    assert {e["challenger"]["arm"] for e in events} == {ARM_NAMES[best]}
    assert {e["champion"]["arm"] for e in events} == {ARM_NAMES[worst]}
    settled = settle_shadow(store, "bandit", keyring(), events, rewards, RULES, state_dir=state)
    assert settled.action == "promoted", settled.line
    assert settled.version == pub.version
    assert settled.verdict is not None and settled.verdict.n >= RULES.min_decisions
    assert settled.verdict.unscored > 0  # the last bars' horizons run past the data
    assert "LATEST moved to v000002" in settled.line and "\n" not in settled.line
    assert verify_model(store, "bandit", keyring()).version == "v000002"
    view = read_challenger(store, "bandit", keyring())
    assert view is not None and view.version is None  # withdrawn once promoted
    again = settle_shadow(store, "bandit", keyring(), events, rewards, RULES, state_dir=state)
    assert again.action == "none"


def test_shadowed_placebo_is_refused_end_to_end(
    tmp_path: Path, bars: pd.DataFrame, rewards: pd.DataFrame
) -> None:
    """A challenger with zero skill over its champion (the same policy, retrained) is shadowed
    and refused: its lift is exactly zero, so its lower bound is not above zero."""
    store = FileStore(tmp_path / "store")
    state = tmp_path / "publisher-state"
    publish(store, "bandit", _constant_bandit(3))
    publish_challenger(
        store, "bandit", {"model.onnx": _constant_bandit(3)}, keyring(), state_dir=state
    )
    events = _shadow_run(tmp_path, store, bars)
    scored = shadow_lifts(events, rewards, "bandit", "v000002")
    assert scored.lifts.size >= RULES.min_decisions and not scored.lifts.any()
    settled = settle_shadow(store, "bandit", keyring(), events, rewards, RULES, state_dir=state)
    assert settled.action == "withdrawn"
    assert "refused" in settled.line and "CHALLENGER withdrawn, LATEST unchanged" in settled.line
    assert verify_model(store, "bandit", keyring()).version == "v000001"
    view = read_challenger(store, "bandit", keyring())
    assert view is not None and view.pointer.kind == "withdraw"


def test_a_challenger_short_of_evidence_stays_in_shadow(
    tmp_path: Path, bars: pd.DataFrame, rewards: pd.DataFrame
) -> None:
    store = FileStore(tmp_path / "store")
    state = tmp_path / "publisher-state"
    publish(store, "bandit", _constant_bandit(3))
    publish_challenger(
        store, "bandit", {"model.onnx": _constant_bandit(5)}, keyring(), state_dir=state
    )
    events = _shadow_run(tmp_path, store, bars.iloc[: 2 * 260])
    rules = ShadowRules(**{**RULES.__dict__, "min_decisions": 10_000})
    settled = settle_shadow(store, "bandit", keyring(), events, rewards, rules, state_dir=state)
    assert settled.action == "kept" and "fewer than the 10000 required" in settled.line
    view = read_challenger(store, "bandit", keyring())
    assert view is not None and view.version is not None and view.version.version == "v000002"
