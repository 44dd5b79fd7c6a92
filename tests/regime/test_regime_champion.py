"""The regime slot's champion stage: persistence read from the features as a rule candidate,
its ONNX equal to its numpy rule, promoted where it carries information and refused where it
does not (the fallback scored as the fit span's class frequencies)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from configs import load_config
from configs.regime import RegimeConfig
from pipelines.data.schema import REGIMES
from pipelines.data.synthetic import generate_null_bars
from pipelines.export.onnx import OnnxExport, make_session
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.champion import FALLBACK, Candidate, Champion, challenge
from pipelines.models.regime.labels import PANIC, RANGE, TREND_DOWN, TREND_UP
from pipelines.models.regime.rule import (
    UNKNOWN,
    PersistenceRule,
    TrailingRule,
    onnx_regime_probabilities,
    persistence_export,
    prior_probabilities,
    trailing_labels,
)
from pipelines.models.regime.train import row_log_loss
from pipelines.models.specs import SPECS, train_one

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
RULE = TrailingRule.for_horizon(24, 1.0, 2.0)


class _Cfg:
    n_bootstrap = 300
    bootstrap_block = 48
    ci_level = 0.9
    confirm_fraction = 0.5


def _rows(ret: list[float], vol: list[float], ref: list[float]) -> np.ndarray:
    x = np.zeros((len(ret), len(FEATURE_NAMES)), np.float32)
    x[:, COL["ret_24"]], x[:, COL["rv_24"]], x[:, COL["rv_200"]] = ret, vol, ref
    return x


def test_trailing_label_by_hand() -> None:
    assert (RULE.return_feature, RULE.vol_feature, RULE.window) == ("ret_24", "rv_24", 24)
    band = math.sqrt(24) * 0.01  # 0.049
    x = _rows(
        [0.06, -0.06, 0.01, 0.06, 0.0, np.nan, 0.0, 0.0],
        [0.01, 0.01, 0.01, 0.03, 0.01, 0.01, np.inf, 0.01],
        [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.0],
    )
    assert band < 0.06
    got = trailing_labels(x, RULE, FEATURE_NAMES).tolist()
    assert got == [TREND_UP, TREND_DOWN, RANGE, PANIC, RANGE, UNKNOWN, UNKNOWN, UNKNOWN]
    assert TrailingRule.for_horizon(60, 1.0, 2.0).return_feature == "ret_72"


def _sticky_world(n: int, seed: int, informative: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A sticky 4-regime chain whose regime moves the rule's three features (a trend moves
    ret_24 by two bands, a panic triples rv_24); uninformative: the labels shuffled and the
    features driven by another shuffle of them (zero skill beyond the base rates)."""
    rng = np.random.default_rng(seed)
    y, state = np.empty(n, np.int64), 0
    for t in range(n):
        if rng.random() > 0.995:
            state = int(rng.integers(len(REGIMES)))
        y[t] = state
    if not informative:  # shuffled labels: the same base rates, no regime to track
        y = rng.permutation(y)
    drive = y if informative else rng.permutation(y)
    drift = np.select([drive == TREND_UP, drive == TREND_DOWN], [0.1, -0.1], 0.0)
    vol = np.where(drive == PANIC, 0.03, 0.01) * np.exp(rng.normal(0, 0.2, n))
    x = _rows(list(drift + rng.normal(0, 0.03, n)), list(vol), [0.01] * n)
    x[:, COL["rsi_14"]] = rng.normal(size=n)  # a column the rule never reads
    return x, y


def _judge(x: np.ndarray, y: np.ndarray, tmp_path: Path, seed: int = 1):
    n = len(y)
    fit, hold = slice(0, n // 2), slice(n // 2, n)
    model = PersistenceRule(RULE).fit(x[fit], y[fit], FEATURE_NAMES)
    export = persistence_export(model, x[hold], tmp_path / "persistence.onnx", 15)
    uniform = np.full((n - n // 2, len(REGIMES)), 0.25)
    values = {
        "persistence": -row_log_loss(y[hold], onnx_regime_probabilities(export.path, x[hold])),
        "uniform": -row_log_loss(y[hold], uniform),
    }
    cands = [
        Candidate("persistence", "rule", export, model.describe()),
        Candidate("uniform", "rule", OnnxExport(Path("u.onnx"), 0.0, None), "1/4 each"),  # type: ignore[arg-type]
    ]
    ts = pd.Series(pd.date_range("2024-01-01", periods=n - n // 2, freq="h", tz="UTC"))
    champ = -row_log_loss(y[hold], prior_probabilities(y[fit], n - n // 2))
    return challenge(
        ts,
        values,
        FALLBACK,
        champ,
        cands,
        dict.fromkeys(values),
        _Cfg(),
        seed,
        scale=1.0,
        unit="nats",
        parity_tolerance=1e-5,
    )


def test_a_world_where_persistence_beats_the_fallback_promotes_the_rule(tmp_path: Path) -> None:
    x, y = _sticky_world(8000, 0)
    d = _judge(x, y, tmp_path)
    assert d.challenger is not None and d.challenger.name == "persistence"
    assert d.promote, d.reason
    assert all(g.value > 0 for g in d.gates[:2]) and "replaces champion fallback" in d.reason
    assert d.lineage() == {"candidate": "persistence", "kind": "rule", "replaced": "fallback"}


@pytest.mark.parametrize("seed", range(5))
def test_zero_skill_placebos_are_refused(seed: int, tmp_path: Path) -> None:
    """Shuffled labels, features that ignore them, and uniform probabilities: neither the
    rule nor uniform beats the class frequencies the fallback is scored as."""
    x, y = _sticky_world(8000, 10 + seed, informative=False)
    d = _judge(x, y, tmp_path, seed)
    assert not d.promote, d.reason
    assert "stays" in d.reason


def test_the_rule_onnx_equals_its_numpy_output(tmp_path: Path) -> None:
    x, y = _sticky_world(3000, 3)
    extra = np.random.default_rng(4).normal(size=(len(x), 2)).astype(np.float32)
    x = np.c_[x, extra]  # two configured extra columns after the 43
    names = (*FEATURE_NAMES, "xa_corr", "exo_vix")
    x[::11, COL["ret_24"]] = np.nan
    x[::13, COL["rv_24"]] = np.inf
    x[::17, COL["rv_200"]] = 0.0
    x[::19, COL["rv_200"]] = -np.inf
    model = PersistenceRule(RULE).fit(x[:2000], y[:2000], names)
    export = persistence_export(model, x, tmp_path / "p.onnx", 15)
    assert export.max_abs_diff == 0.0
    assert export.graph.input_names == ["features"] and export.graph.input_width == 45
    label, proba = make_session(export.path).run(None, {"features": x})
    assert label.dtype == np.int64 and label.shape == (len(x),)
    assert proba.dtype == np.float32 and proba.shape == (len(x), 4)
    np.testing.assert_array_equal(proba, model.predict_proba(x))
    np.testing.assert_array_equal(label, model.predict(x))
    unknown = trailing_labels(x, RULE, names) == UNKNOWN
    assert unknown.sum() > 100
    np.testing.assert_array_equal(
        proba[unknown], np.tile(model.table_[UNKNOWN], (unknown.sum(), 1))
    )
    meta = {p.key: p.value for p in onnx.load(str(export.path)).metadata_props}
    assert meta["candidate"] == "persistence" and meta["model"] == "regime"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 6])
def test_regime_slot_on_a_null_world_keeps_the_fallback(seed: int, tmp_path: Path) -> None:
    """Null bars (rule labels of a random walk): the trailing regime says nothing of the next
    one, the classifier fails its own gates; nothing replaces the fallback. A second run with
    the rule live scores the live graph and keeps it on a tie."""
    synth = load_config(environ={}).data.synthetic.model_copy(update={"n_bars": 2400})
    bars = generate_null_bars(synth, seed=seed)
    feats = featurize(bars).frame
    cfg = RegimeConfig.model_validate({"n_folds": 2, "candidates": ["logistic"]})
    result = train_one(SPECS["regime"], bars, feats, cfg, seed, tmp_path / "a", champions={})
    d = result.champion
    assert d is not None and d.champion.kind == "fallback"
    table = pd.read_csv(result.artifacts["champion_table"])
    assert list(table["candidate"]) == ["classifier", "persistence", "champion: fallback"]
    assert not d.promote and not result.passed and "stays" in d.reason, d.reason
    rule = tmp_path / "a" / "candidates" / "persistence.onnx"
    live = Champion("persistence", "rule", "v000001", rule)
    again = train_one(
        SPECS["regime"], bars, feats, cfg, seed, tmp_path / "b", champions={"regime": live}
    )
    d2 = again.champion
    assert d2 is not None and d2.champion.label == "persistence (v000001)"
    assert again.metrics["champion/value/champion"] == pytest.approx(
        result.metrics["champion/value/persistence"]
    )
    assert not d2.promote
