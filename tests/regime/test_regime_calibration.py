"""Split conformal sets, reliability curve and ECE on cases with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.evaluation.calibration import (
    SplitConformalClassifier,
    conformal_quantile,
    expected_calibration_error,
    plot_reliability,
    prediction_sets,
    reliability_curve,
)


def test_quantile_is_the_finite_sample_corrected_order_statistic() -> None:
    # scores 1 - p_y = 0.1, 0.2, ..., 0.9 (n = 9); coverage 0.8 -> rank ceil(10*0.8) = 8 -> 0.8
    p_true = 1 - np.arange(1, 10) / 10
    proba = np.column_stack([p_true, 1 - p_true])
    y = np.zeros(9, dtype=int)
    assert conformal_quantile(proba, y, 0.8) == pytest.approx(0.8)
    assert conformal_quantile(proba, y, 0.5) == pytest.approx(0.5)  # rank ceil(5.0) = 5
    assert conformal_quantile(proba, y, 0.95) == np.inf  # rank 10 > n: every set is full


def test_sets_hold_every_class_within_the_threshold() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    sets = prediction_sets(proba, qhat=0.7)  # keep p >= 0.3
    np.testing.assert_array_equal(sets, [[True, False, False], [True, True, False]])


def _calibrated_sample(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from a Dirichlet and labels drawn from them: exchangeable and calibrated."""
    proba = rng.dirichlet(np.full(k, 0.6), size=n)
    y = np.array([rng.choice(k, p=p) for p in proba])
    return proba, y


def test_coverage_meets_the_target_on_exchangeable_data() -> None:
    rng = np.random.default_rng(0)
    cal_p, cal_y = _calibrated_sample(2000, 4, rng)
    test_p, test_y = _calibrated_sample(20000, 4, rng)
    for target in (0.8, 0.9):
        rep = SplitConformalClassifier(target).fit(cal_p, cal_y).evaluate(test_p, test_y)
        assert abs(rep.coverage - target) < 0.02
        assert rep.n == 20000
        assert sum(rep.size_counts.values()) == 20000
        assert 0 < rep.mean_set_size < 4


def test_higher_target_gives_larger_sets() -> None:
    rng = np.random.default_rng(1)
    cal_p, cal_y = _calibrated_sample(1000, 4, rng)
    small = SplitConformalClassifier(0.7).fit(cal_p, cal_y).predict_sets(cal_p).sum()
    large = SplitConformalClassifier(0.95).fit(cal_p, cal_y).predict_sets(cal_p).sum()
    assert large > small


def test_unfitted_and_mismatched_inputs_are_refused() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        SplitConformalClassifier().predict_sets(np.ones((2, 3)) / 3)
    conf = SplitConformalClassifier().fit(np.ones((5, 3)) / 3, np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="expected 3 classes"):
        conf.predict_sets(np.ones((2, 4)) / 4)
    with pytest.raises(ValueError, match="class indices"):
        conformal_quantile(np.ones((2, 3)) / 3, np.array([0, 3]), 0.9)
    with pytest.raises(ValueError, match="coverage"):
        SplitConformalClassifier(1.0).fit(np.ones((2, 3)) / 3, np.array([0, 1]))


def test_ece_by_hand() -> None:
    # bin [0.6, 0.7): 2 rows conf 0.6, 1 of 2 right -> |0.5 - 0.6| = 0.1
    # bin [0.9, 1.0]: 2 rows conf 0.9, both right -> |1.0 - 0.9| = 0.1
    proba = np.array([[0.6, 0.4], [0.6, 0.4], [0.9, 0.1], [0.1, 0.9]])
    y = np.array([0, 1, 0, 1])
    curve = reliability_curve(proba, y, n_bins=10)
    assert curve["bin"].tolist() == [6, 9]
    assert curve["count"].tolist() == [2, 2]
    np.testing.assert_allclose(curve["accuracy"], [0.5, 1.0])
    assert expected_calibration_error(proba, y, n_bins=10) == pytest.approx(0.1)


def test_ece_separates_calibrated_from_overconfident() -> None:
    rng = np.random.default_rng(2)
    proba, y = _calibrated_sample(20000, 4, rng)
    sharp = proba**4 / (proba**4).sum(axis=1, keepdims=True)  # same argmax, overconfident
    assert expected_calibration_error(proba, y) < 0.02
    assert expected_calibration_error(sharp, y) > 0.1


def test_reliability_plot_is_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    proba, y = _calibrated_sample(500, 4, rng)
    out = plot_reliability(reliability_curve(proba, y), 0.01, tmp_path / "sub" / "cal.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
