"""LightGBM's float64 thresholds against the float32 ONNX tree ensemble, on a feature quoted to
two decimals (a volatility index): the graph must decide every input value as the model does."""

from __future__ import annotations

import numpy as np
import pytest
from lightgbm import LGBMClassifier

from pipelines.export.lgbm import float32_exact
from pipelines.export.onnx import make_session, run
from pipelines.models.regime.export import to_onnx


def _grid_model() -> tuple[LGBMClassifier, np.ndarray]:
    """A model fit on a level quoted to two decimals that only ever took odd hundredths, and
    inputs on the even hundredths between them: LightGBM's thresholds are midpoints of
    adjacent training values, a hair off the even hundredth, and about half round onto it."""
    rng = np.random.default_rng(3)
    n = 6000
    level = (9.01 + 0.02 * rng.integers(0, 200, n)).astype(np.float32)
    noise = rng.normal(0, 1, n).astype(np.float32)
    y = ((level > 11.0) ^ (rng.random(n) < 0.3)).astype(np.int64) + 2 * (noise > 0.5)
    model = LGBMClassifier(n_estimators=40, num_leaves=31, random_state=0, verbose=-1)
    model.fit(np.column_stack([noise, level]), y)
    later = (9.0 + 0.02 * np.arange(200)).astype(np.float32)
    x = np.column_stack([np.zeros(len(later), np.float32), later])
    return model, x


def _onnx_probabilities(model: LGBMClassifier, x: np.ndarray, exact: tuple[int, ...]) -> np.ndarray:
    proto = to_onnx(model, x.shape[1], 15, exact)
    _, probs = run(make_session(proto.SerializeToString()), x)
    return np.asarray(probs, dtype=np.float64)


def test_thresholds_rounded_up_are_lowered_and_the_graph_decides_as_lightgbm() -> None:
    model, x = _grid_model()
    fixed, lowered = float32_exact(model, [1])
    assert lowered > 0
    want = model.predict_proba(x)
    np.testing.assert_array_equal(fixed.predict_proba(x), want)  # the same decisions
    plain = np.abs(_onnx_probabilities(model, x, ()) - want).max()
    exact = np.abs(_onnx_probabilities(model, x, (1,)) - want).max()
    assert plain > 1e-4  # the float32 graph decides some later grid values the other way
    assert exact < 1e-5
    assert model.booster_.model_to_string() != fixed.booster_.model_to_string()


def test_no_columns_leave_the_model_as_it_was() -> None:
    model, x = _grid_model()
    same, lowered = float32_exact(model, [])
    assert lowered == 0 and same is model
    np.testing.assert_array_equal(
        _onnx_probabilities(model, x, ()), _onnx_probabilities(same, x, ())
    )


@pytest.mark.parametrize("value", [11.8, 0.07, 1234.56])
def test_the_lowered_threshold_decides_float32_inputs_as_the_double(value: float) -> None:
    v = np.float32(value)
    t = float(v) - 0.25 * float(np.spacing(v))  # a double just below v: rounds up onto v
    assert float(np.float32(t)) > t
    low = np.nextafter(v, np.float32(-np.inf))
    around = np.array(
        [np.nextafter(low, np.float32(-np.inf)), low, v, np.nextafter(v, np.float32(np.inf))]
    )
    np.testing.assert_array_equal(around.astype(np.float64) <= t, around <= low)
