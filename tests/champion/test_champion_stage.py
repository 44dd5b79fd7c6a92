"""The champion stage: a challenger replaces the live champion only on a confirmed lift.

The pure decision (``challenge``) on constructed values, where the truth is known, and the
bandit slot end to end: its candidates exported, scored like the champion, and judged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from configs.settings import load_config
from pipelines.data.synthetic import generate_bars, generate_null_bars
from pipelines.export.onnx import OnnxExport, make_session, run
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.champion import FALLBACK, Candidate, Champion, challenge
from pipelines.models.specs import SPECS, train_one
from pipelines.strategies import ARM_NAMES, FALLBACK_ARM

torch.set_num_threads(1)
N = 4000


class _Cfg:
    n_bootstrap = 300
    bootstrap_block = 24
    ci_level = 0.9
    confirm_fraction = 0.5


def _ts(n: int = N) -> pd.Series:
    return pd.Series(pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"))


def _candidate(name: str, diff: float = 0.0) -> Candidate:
    # the decision reads only the parity of a candidate's export; no graph is needed here
    return Candidate(name, "rule", OnnxExport(Path(f"{name}.onnx"), diff, None), name)  # type: ignore[arg-type]


def _decide(values: dict[str, np.ndarray], champ: np.ndarray, eligible=None, seed: int = 1):
    cands = [_candidate(n) for n in values]
    return challenge(
        _ts(len(champ)),
        values,
        FALLBACK,
        champ,
        cands,
        eligible or dict.fromkeys(values),
        _Cfg(),
        seed,
        scale=1e4,
        unit="bps",
        parity_tolerance=1e-5,
    )


def test_a_real_lift_on_both_spans_replaces_the_champion() -> None:
    rng = np.random.default_rng(0)
    champ = rng.normal(0.0, 1e-3, N)
    better = champ + 2e-4 + rng.normal(0.0, 2e-4, N)  # +2 bps a decision, every decision
    d = _decide({"better": better, "same": champ.copy()}, champ)
    assert d.challenger is not None and d.challenger.name == "better"
    assert d.promote, d.reason
    assert [g.name for g in d.gates] == [
        "lift_vs_champion_lower_bound",
        "lift_vs_champion_lower_bound_confirmation",
        "challenger_parity",
    ]
    assert d.gates[0].value > 0 and d.gates[1].value > 0 and "replaces" in d.reason


@pytest.mark.parametrize("seed", range(5))
def test_zero_skill_placebo_never_replaces_the_champion(seed: int) -> None:
    """Noise around the champion (no edge) and a de-levered copy of it (half its reward, on a
    champion that earns): the same gates, blocked."""
    rng = np.random.default_rng(100 + seed)
    champ = 1e-4 + rng.normal(0.0, 1e-3, N)
    noise = champ + rng.normal(0.0, 1e-3, N)
    delevered = 0.5 * champ
    for placebo in (noise, delevered):
        d = _decide({"placebo": placebo}, champ, seed=seed)
        assert not d.promote, d.reason
        assert "stays" in d.reason


def test_a_lift_the_confirmation_span_does_not_show_keeps_the_champion() -> None:
    """The winner's curse in miniature: better on the test span, worse later."""
    rng = np.random.default_rng(3)
    champ = rng.normal(0.0, 1e-3, N)
    lucky = champ + np.where(np.arange(N) < N // 2, 3e-4, -1e-4)
    d = _decide({"lucky": lucky}, champ)
    test, confirm = d.gates[0], d.gates[1]
    assert test.passed and not confirm.passed and not d.promote
    assert "on the confirmation span" in d.reason and "stays" in d.reason


def test_a_tie_keeps_the_champion_and_says_so() -> None:
    champ = np.random.default_rng(4).normal(0.0, 1e-3, N)
    d = _decide({"copy": champ.copy()}, champ)
    assert not d.promote and "tie keeps the champion" in d.reason
    assert d.metrics["champion/challenger_equals_champion"] == 1.0


def test_the_challenger_is_chosen_on_the_test_span_among_eligible_candidates() -> None:
    rng = np.random.default_rng(5)
    champ = rng.normal(0.0, 1e-3, N)
    best, good = champ + 5e-4, champ + 2e-4
    d = _decide({"best": best, "good": good}, champ, {"best": "its own gates failed", "good": None})
    assert d.challenger is not None and d.challenger.name == "good" and d.promote
    none = _decide({"best": best}, champ, {"best": "its own gates failed"})
    assert none.challenger is None and not none.promote and "no candidate can ship" in none.reason
    table = d.table.set_index("candidate")
    assert table.loc["best", "why_not"] == "its own gates failed"
    assert table.loc["good", "mean_test (bps)"] == pytest.approx(np.mean(good[: N // 2]) * 1e4)
    assert table.loc["good", "why_not"] == "-"


@pytest.fixture(scope="module")
def worlds() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    synth = load_config().data.synthetic.model_copy(update={"n_bars": 2400})
    out = {}
    for name, bars in (
        ("demo", generate_bars(synth, seed=5)),
        ("null", generate_null_bars(synth, seed=5)),
    ):
        out[name] = (bars, featurize(bars).frame)
    return out


def _bandit_cfg():
    return load_config().bandit.model_copy(
        update={"epochs": 3, "hidden": [32, 16], "n_bootstrap": 80, "patience": 3}
    )


@pytest.mark.parametrize("world", ["demo", "null"])
def test_bandit_slot_candidates_are_scored_like_the_champion(
    worlds, world: str, tmp_path: Path
) -> None:
    bars, feats = worlds[world]
    result = train_one(SPECS["bandit"], bars, feats, _bandit_cfg(), 3, tmp_path, champions={})
    d = result.champion
    assert d is not None and d.champion.kind == "fallback"
    table = pd.read_csv(result.artifacts["champion_table"])
    assert list(table["candidate"]) == [
        "neural_linear",
        "best_arm",
        "rule_regime_arm",
        "champion: fallback",
    ]
    # the rule candidate is an ONNX of the slot's contract: its argmax is the best arm
    rule = tmp_path / "candidates" / "best_arm.onnx"
    x = feats[list(FEATURE_NAMES)].to_numpy(np.float32)[-64:]
    (values,) = run(make_session(rule), x)
    assert values.shape == (64, len(ARM_NAMES))
    best = int(result.metrics["train/best_arm_index"])
    assert (np.argmax(values, axis=1) == best).all()
    # the rule-regime candidate: one-hot rows whose arm is a function of the row's cell
    from pipelines.models.bandit.candidates import REGIME_QUESTIONS, rule_cells

    x_all = feats[list(FEATURE_NAMES)].to_numpy(np.float32)
    (cells_out,) = run(make_session(tmp_path / "candidates" / "rule_regime_arm.onnx"), x_all)
    assert set(np.unique(cells_out)) <= {0.0, 1.0} and (cells_out.sum(axis=1) == 1).all()
    cols = [list(FEATURE_NAMES).index(q) for q, _ in REGIME_QUESTIONS]
    cell = rule_cells(x_all, cols)
    arm = np.argmax(cells_out, axis=1)
    assert all(len(set(arm[cell == c])) == 1 for c in np.unique(cell))
    # the champion's value is the fallback arm's exact reward on the held-out bars
    fallback_value = result.metrics["champion/value/champion"]
    assert np.isfinite(fallback_value)
    if best == ARM_NAMES.index(FALLBACK_ARM):  # the rule is the fallback itself: a tie
        assert d.challenger is None or d.challenger.name != "best_arm" or not d.promote
    assert result.passed == d.promote
    if d.promote:
        assert result.shipped_export.path == d.challenger.export.path  # type: ignore[union-attr]
    if world == "null":  # nothing to learn: nothing replaces the fallback
        assert not d.promote, d.reason


def test_a_live_champion_equal_to_the_challenger_is_kept(worlds, tmp_path: Path) -> None:
    """The live version is scored from its own ONNX: when it is the rule the run would
    choose, the lift is exactly zero and the champion stays (no churn)."""
    bars, feats = worlds["demo"]
    cfg = _bandit_cfg()
    first = train_one(SPECS["bandit"], bars, feats, cfg, 3, tmp_path / "a", champions={})
    live = Champion("best_arm", "rule", "v000001", tmp_path / "a" / "candidates" / "best_arm.onnx")
    again = train_one(
        SPECS["bandit"], bars, feats, cfg, 3, tmp_path / "b", champions={"bandit": live}
    )
    d = again.champion
    assert d is not None and d.champion.label == "best_arm (v000001)"
    assert again.metrics["champion/value/champion"] == pytest.approx(
        first.metrics["champion/value/best_arm"]
    )
    if d.challenger is not None and d.challenger.name == "best_arm":
        assert not d.promote and "tie keeps the champion" in d.reason


def test_an_incompatible_live_graph_is_replaced_by_the_fallback_as_champion(
    worlds, tmp_path: Path
) -> None:
    bars, feats = worlds["demo"]
    broken = tmp_path / "old.onnx"
    broken.write_bytes(b"not an onnx graph")
    live = Champion("neural_linear", "learned", "v000007", broken)
    result = train_one(
        SPECS["bandit"], bars, feats, _bandit_cfg(), 3, tmp_path / "r", champions={"bandit": live}
    )
    d = result.champion
    assert d is not None and d.champion.kind == "fallback" and "v000007" in d.champion.note


SIZER_TINY = {
    "total_timesteps": 512,
    "n_envs": 4,
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 2,
    "window": 16,
    "net_arch": [16, 16],
}


def test_sizer_slot_vol_target_is_a_candidate_at_the_fallbacks_exposure(
    worlds, tmp_path: Path
) -> None:
    from configs.sizer import SizerConfig
    from pipelines.bot.engine import EngineConfig
    from pipelines.models.sizer.candidates import FALLBACK_MULTIPLIER, VOL_FEATURE

    assert EngineConfig().fallback_multiplier == FALLBACK_MULTIPLIER
    bars, feats = worlds["demo"]
    cfg = SizerConfig.model_validate(SIZER_TINY)
    result = train_one(SPECS["sizer"], bars, feats, cfg, 3, tmp_path, champions={})
    d = result.champion
    assert d is not None and d.champion.kind == "fallback"
    table = pd.read_csv(result.artifacts["champion_table"])
    assert list(table["candidate"]) == ["cvar_ppo", "vol_target", "champion: fallback"]
    assert [g.name for g in d.gates] == [
        "lift_vs_champion_lower_bound",
        "lift_vs_champion_lower_bound_confirmation",
        "challenger_parity",
    ] or d.challenger is None
    assert all(g.unit == "Sharpe" for g in d.gates[:2])
    # the rule's graph re-times risk by 1 / rv_24 at the fallback's exposure on train rows
    rule = tmp_path / "candidates" / "vol_target.onnx"
    x = feats[[*FEATURE_NAMES]].to_numpy(np.float32)[-200:]
    obs = np.c_[x, np.ones((len(x), 1), np.float32)]
    (m,) = run(make_session(rule), obs)
    m = m.reshape(-1)
    assert ((m >= 0.1 - 1e-6) & (m <= 2.0 + 1e-6)).all()
    vol = feats[VOL_FEATURE].to_numpy()[-200:]
    inside = (m > 0.1 + 1e-6) & (m < 2.0 - 1e-6)
    assert inside.any()
    ratio = m[inside] * vol[inside]  # constant: m = c / rv_24 where it is not clamped
    assert np.allclose(ratio, ratio[0], rtol=1e-4)
    assert result.passed == d.promote


def test_a_delevered_sizer_earns_no_sharpe_over_the_champion() -> None:
    """De-levering scales returns and leaves Sharpe where it was: the placebo is blocked."""
    from pipelines.models.sizer.candidates import sharpe_difference

    rng = np.random.default_rng(9)
    champ = 2e-4 + rng.normal(0.0, 5e-3, N)
    d = challenge(
        _ts(),
        {"half": 0.5 * champ},
        FALLBACK,
        champ,
        [_candidate("half")],
        {"half": None},
        _Cfg(),
        1,
        scale=1.0,
        unit="Sharpe",
        parity_tolerance=1e-5,
        stat=sharpe_difference(8766.0),
    )
    assert not d.promote, d.reason
    assert abs(d.gates[0].estimate) < 1e-9  # type: ignore[arg-type]


METALABEL_TINY = {"n_estimators": 20, "n_folds": 3, "n_bootstrap": 200}


def _metalabel_cfg(**update):
    return load_config().metalabel.model_copy(update={**METALABEL_TINY, **update})


def _with_losing_arm(bars: pd.DataFrame, arm: int) -> pd.DataFrame:
    """The strategies' signals with ``arm`` replaced by the inverse of the next bar's move:
    every bar it holds loses that bar's return, so its trades lose by construction."""
    from pipelines.strategies import compute_signals

    signals = compute_signals(bars).copy()
    nxt = bars.groupby("symbol")["close"].shift(-1)
    move = np.sign((nxt / bars["close"] - 1.0).fillna(0.0).to_numpy())
    signals[ARM_NAMES[arm]] = np.where(move == 0, 1.0, -move)
    return signals


def test_metalabel_per_arm_filter_drops_an_arm_that_loses_and_is_promoted(
    worlds, tmp_path: Path
) -> None:
    from pipelines.bot.engine import EngineConfig
    from pipelines.models.metalabel.candidates import VETO_MULTIPLIER, VETO_THRESHOLD

    engine = EngineConfig()
    assert (engine.metalabel_threshold, engine.min_multiplier) == (VETO_THRESHOLD, VETO_MULTIPLIER)
    bars, feats = worlds["demo"]
    loser = 3
    signals = _with_losing_arm(bars, loser)
    result = train_one(
        SPECS["metalabel"], bars, feats, _metalabel_cfg(), 3, tmp_path, signals, champions={}
    )
    d = result.champion
    assert d is not None and d.champion.kind == "fallback"
    table = pd.read_csv(result.artifacts["champion_table"]).set_index("candidate")
    assert list(table.index) == ["lightgbm", "per_arm_filter", "champion: fallback"]
    assert table.loc["per_arm_filter", "lift_test (bps)"] > 0
    assert table.loc["per_arm_filter", "lift_confirm (bps)"] > 0
    # the rule's graph: 0.0 for the losing arm's trades, whatever the features say
    rule = tmp_path / "candidates" / "per_arm_filter.onnx"
    x = np.zeros((1, 55), np.float32)
    x[0, len(FEATURE_NAMES) + loser] = 1.0
    (p,) = run(make_session(rule), x)
    assert p.shape == (1, 1) and p[0, 0] == 0.0
    assert d.promote, d.reason
    assert result.passed and d.challenger is not None
    assert result.shipped_export.path == d.challenger.export.path
    if d.challenger.name == "per_arm_filter":
        assert result.extras["threshold"] == VETO_THRESHOLD  # what the recommendation reads
        assert d.lineage() == {
            "candidate": "per_arm_filter",
            "kind": "rule",
            "replaced": "fallback",
        }


@pytest.mark.parametrize("seed", [5, 6])
def test_metalabel_slot_on_a_zero_skill_world_keeps_the_fallback(seed: int, tmp_path: Path) -> None:
    """Null bars and no costs: every arm's trades are worth zero in expectation, so which arms
    the fit span favours is noise, and nothing replaces 'take every trade'."""
    synth = load_config().data.synthetic.model_copy(update={"n_bars": 2400})
    bars = generate_null_bars(synth, seed=seed)
    feats = featurize(bars).frame
    cfg = _metalabel_cfg(cost_bps=0.0, slippage_bps=0.0)
    result = train_one(SPECS["metalabel"], bars, feats, cfg, seed, tmp_path, champions={})
    d = result.champion
    assert d is not None and d.champion.kind == "fallback"
    assert not d.promote, d.reason
    assert not result.passed and "stays" in d.reason


def test_metalabel_per_arm_filter_onnx_matches_its_numpy_rule(tmp_path: Path) -> None:
    from pipelines.models.metalabel.candidates import (
        per_arm_filter_export,
        per_arm_keep,
        per_arm_probability,
    )

    rng = np.random.default_rng(11)
    n = 500
    arms = rng.integers(0, len(ARM_NAMES), n)
    fit = pd.DataFrame(
        {"arm": arms, "reward": rng.normal(0, 1e-3, n) + np.where(arms % 3 == 0, -2e-3, 1e-3)}
    )
    keep = per_arm_keep(fit)
    assert keep.tolist() == [a % 3 != 0 for a in range(len(ARM_NAMES))]
    x = rng.normal(size=(n, 55)).astype(np.float32)
    x[:, len(FEATURE_NAMES) :] = 0.0
    x[np.arange(n), len(FEATURE_NAMES) + arms] = 1.0
    x[::7, 0] = np.nan  # a feature the rule never reads
    export = per_arm_filter_export(keep, x, tmp_path / "rule.onnx", 15)
    assert export.max_abs_diff == 0.0
    (p,) = run(make_session(export.path), x)
    assert p.shape == (n, 1)
    assert np.array_equal(p.reshape(-1), per_arm_probability(x, keep))
    assert set(np.unique(p)) <= {0.0, 1.0}
    assert np.array_equal(p.reshape(-1) == 1.0, keep[arms])
