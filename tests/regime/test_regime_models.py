"""Contract suite over every candidate: estimator contract, ONNX graph contract, parity, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.base import clone

from configs.regime import RegimeConfig
from pipelines.data.schema import REGIMES
from pipelines.export.onnx import max_abs_diff
from pipelines.models.regime.candidates import make_baseline, make_candidate
from pipelines.models.regime.export import export_onnx, onnx_probabilities, read_metadata

NAMES = [f"f{i}" for i in range(43)]
CFG = RegimeConfig.model_validate(
    {"lightgbm": {"n_estimators": 30}, "random_forest": {"n_estimators": 15}}
)


def _data(seed: int = 0, n: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 43)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] + 0.3 * rng.normal(size=n) > 0.4)
    return X, y


@pytest.mark.parametrize("name", ["lightgbm", "random_forest", "logistic"])
def test_candidate_contract_export_and_parity(name: str, tmp_path: Path) -> None:
    X, y = _data()
    model = make_candidate(name, CFG, seed=3)
    unfitted = clone(model)
    assert model.fit(X, y) is model
    with pytest.raises(Exception, match=r"(?i)not fitted|fitted yet"):
        unfitted.predict_proba(X)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (proba.argmax(axis=1) == y).mean() > 0.6  # it learned something

    again = make_candidate(name, CFG, seed=3).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), proba)  # same seed, same model

    path = export_onnx(model, tmp_path / f"{name}.onnx", NAMES, REGIMES, opset=15)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", 43)
    assert [o.name for o in sess.get_outputs()] == ["label", "probabilities"]
    label, onnx_proba = sess.run(None, {"features": X[:7]})
    assert label.shape == (7,) and onnx_proba.shape == (7, 4) and onnx_proba.dtype == np.float32
    assert max_abs_diff(onnx_probabilities(path, model, X), model.predict_proba(X)) <= 1e-5
    meta = read_metadata(path)
    assert meta["class_names"] == list(REGIMES) and meta["feature_names"] == NAMES


def test_export_refuses_a_model_that_missed_a_class(tmp_path: Path) -> None:
    X, y = _data()
    model = make_candidate("logistic", CFG, seed=0).fit(X, np.minimum(y, 2))
    with pytest.raises(ValueError, match="classes"):
        export_onnx(model, tmp_path / "m.onnx", NAMES, REGIMES)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown candidate"):
        make_candidate("xgboost", CFG, 0)
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("oracle", CFG)


def test_config_refuses_a_gap_shorter_than_the_label_horizon() -> None:
    with pytest.raises(ValueError, match="label_horizon"):
        RegimeConfig(label_horizon=24, purge_bars=10)
    cfg = RegimeConfig(label_horizon=48)
    assert (cfg.purge, cfg.embargo) == (48, 48)
    with pytest.raises(ValueError, match="exit_threshold"):
        RegimeConfig.model_validate({"bocd": {"reduce_threshold": 0.9, "exit_threshold": 0.7}})
