"""The regime trainer end to end on small data: outcome contract, artifacts, gates, seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from configs import load_config
from configs.regime import RegimeConfig
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.base import ModelResult as TrainOutcome
from pipelines.models.specs import SPECS, train_one

pytestmark = pytest.mark.slow

SMALL = {
    "n_folds": 2,
    "lightgbm": {"n_estimators": 40},
    "random_forest": {"n_estimators": 20},
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    syn = load_config(environ={}).data.synthetic.model_copy(update={"n_bars": 4000})
    bars = generate_bars(syn, seed=7)
    return bars, featurize(bars).frame


@pytest.fixture(scope="module")
def outcome(
    data: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> TrainOutcome:
    bars, feats = data
    cfg = RegimeConfig.model_validate(SMALL)
    return train_one(
        SPECS["regime"], bars, feats, cfg, seed=11, out_dir=tmp_path_factory.mktemp("regime")
    )


def test_outcome_contract(outcome: TrainOutcome) -> None:
    assert outcome.model == "regime"
    assert outcome.input_names == ["features"] and outcome.input_shape == ["N", 43]
    assert outcome.output_names == ["label", "probabilities"]
    assert outcome.onnx_max_abs_diff <= 1e-5
    assert outcome.metrics["onnx_max_abs_diff"] == outcome.onnx_max_abs_diff
    assert outcome.params["selected_model"] in ("lightgbm", "random_forest", "logistic")
    assert outcome.params["label_source"] == "true_regime"
    assert outcome.params["feature_names"] == list(FEATURE_NAMES)
    assert [g.name for g in outcome.gates] == [
        "log_loss_lift_lower_bound",
        "log_loss_lift_lower_bound_confirmation",
        "conformal_coverage_error",
        "conformal_coverage_error_confirmation",
        "onnx_max_abs_diff",
    ]
    for key in (
        "holdout/balanced_accuracy",
        "holdout/log_loss",
        "holdout/ece",
        "baseline/majority/balanced_accuracy",
        "baseline/two_input_logistic/balanced_accuracy",
        "baseline/persistence/log_loss",
        "lift/log_loss_vs_best_baseline",
        "lift/log_loss_vs_best_baseline_ci_low",
        "confirm/lift/log_loss_vs_best_baseline",
        "confirm/lift/log_loss_vs_best_baseline_ci_low",
        "conformal/coverage",
        "conformal/coverage/PANIC",
        "conformal/informative",
        "conformal/mean_set_size",
        "conformal/aci/coverage",
        "confirm/conformal/aci/coverage",
        "conformal/rolling/mean_set_size",
        "confirm/conformal/split/coverage/PANIC",
        "conformal/live/alpha/PANIC",
        "conformal/live/qhat/RANGE",
        "walk_forward/lightgbm/log_loss_mean",
        "bocd/reduce/mean_delay_bars",
        "bocd/exit/false_alarms_per_1000_bars",
    ):
        assert isinstance(outcome.metrics[key], float), key


def test_gate_is_the_lower_bound_against_the_strongest_baseline(outcome: TrainOutcome) -> None:
    m = outcome.metrics
    assert m["baseline/majority/balanced_accuracy"] == pytest.approx(0.25)
    names = ("majority", "two_input_logistic", "persistence")
    # the comparator is chosen on the training span's folds, never on the held-out rows
    wf = {n: m[f"walk_forward/{n}/log_loss_mean"] for n in names}
    best = min(wf, key=wf.__getitem__)
    assert m["baseline/best/index"] == names.index(best)
    for span, prefix in (("test", ""), ("confirm", "confirm/")):
        key = f"{prefix}lift/log_loss_vs_best_baseline"
        low, high = m[f"{key}_ci_low"], m[f"{key}_ci_high"]
        assert low <= m[key] <= high
        gate = next(g for g in outcome.gates if g.span == span and "log_loss" in g.name)
        assert gate.value == low and gate.estimate == m[key]
        assert gate.passed == (low > 0.0) and gate.unit == "nats" and best in gate.description
    # the two spans are disjoint halves of the held-out rows: their lifts differ
    assert m["lift/log_loss_vs_best_baseline"] != m["confirm/lift/log_loss_vs_best_baseline"]
    # coverage is measured, not assumed: on this small span it may miss the +-3 point band
    assert 0.7 <= m["conformal/coverage"] <= 1.0


def test_coverage_gate_reads_the_configured_method_on_both_spans(outcome: TrainOutcome) -> None:
    m = outcome.metrics
    cfg = RegimeConfig.model_validate(SMALL)
    gates = {g.name: g for g in outcome.gates}
    for name, prefix, span in (
        ("conformal_coverage_error", "", "test"),
        ("conformal_coverage_error_confirmation", "confirm/", "confirm"),
    ):
        gate = gates[name]
        cov = m[f"{prefix}conformal/{cfg.conformal_method}/coverage"]
        assert gate.value == pytest.approx(abs(cov - cfg.conformal_coverage))
        assert gate.passed == (gate.value <= cfg.coverage_tolerance)
        assert gate.span == span
    # the split method on the stream is today's split sets: test and confirmation rows
    # together give the legacy whole-holdout coverage
    n_test, n_conf = m["conformal/n_rows"], m["confirm/conformal/n_rows"]
    pooled = (
        m["conformal/split/coverage"] * n_test + m["confirm/conformal/split/coverage"] * n_conf
    ) / (n_test + n_conf)
    assert pooled == pytest.approx(m["conformal/coverage"], abs=1e-12)
    state = json.loads(outcome.artifacts["export_meta"].read_text())["conformal_online"]
    assert state["method"] == cfg.conformal_method
    assert state["alphas"] == pytest.approx(
        [m[f"conformal/live/alpha/{r}"] for r in ("TREND_UP", "TREND_DOWN", "RANGE", "PANIC")]
    )


def test_artifacts_exist_and_table_holds_every_model(outcome: TrainOutcome) -> None:
    for name in ("regime_timeline", "calibration"):
        assert outcome.artifacts[name].name == f"{name}.png"
        assert outcome.artifacts[name].read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(outcome.artifacts["comparison"])
    assert table["model"].tolist() == [
        "lightgbm",
        "random_forest",
        "logistic",
        "majority",
        "two_input_logistic",
        "persistence",
    ]
    assert table["selected"].sum() == 1
    assert table.loc[table["selected"], "kind"].item() == "candidate"
    folds = pd.read_csv(outcome.artifacts["walk_forward"])
    assert set(folds["fold"]) <= {1, 2} and len(folds) == 6 * folds["fold"].nunique()


def test_exported_graph_scores_real_features(
    outcome: TrainOutcome, data: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, feats = data
    X = feats[list(FEATURE_NAMES)].to_numpy(np.float32)[-200:]
    sess = ort.InferenceSession(str(outcome.onnx_path), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"features": X})
    assert proba.shape == (200, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(label, proba.argmax(axis=1))


def test_same_seed_same_outcome(
    outcome: TrainOutcome, data: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    bars, feats = data
    again = train_one(
        SPECS["regime"], bars, feats, RegimeConfig.model_validate(SMALL), 11, tmp_path
    )
    for key, value in outcome.metrics.items():
        if not key.startswith(("time/", "walk_forward/")) or key.endswith("log_loss_mean"):
            assert again.metrics[key] == pytest.approx(value, nan_ok=True), key
    assert again.onnx_path.read_bytes() == outcome.onnx_path.read_bytes()


def test_rule_labels_without_truth(data: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    bars, feats = data
    cfg = RegimeConfig.model_validate({**SMALL, "candidates": ["logistic"]})
    out = train_one(SPECS["regime"], bars.drop(columns="regime"), feats, cfg, 0, tmp_path)
    assert out.params["label_source"] == "rule"
    assert out.metrics["label/true_regime"] == 0.0
    gate = next(g for g in out.gates if g.name == "log_loss_lift_lower_bound")
    assert gate.threshold == cfg.min_log_loss_lift
    assert out.onnx_max_abs_diff <= 1e-5
