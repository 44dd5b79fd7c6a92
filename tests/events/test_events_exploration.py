"""The published exploration rule: epsilon-greedy over arm_values, ties split."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.events.exploration import action_distribution, sample_arm


def test_hand_computed_distribution_with_a_tie() -> None:
    p = action_distribution(np.array([1.0, 3.0, 3.0, 0.0]), epsilon=0.2)
    # K = 4, two greedy arms: 0.2 / 4 + 0.8 / 2 = 0.45; the others 0.05
    assert p.tolist() == [0.05, 0.45, 0.45, 0.05]


def test_rows_sum_to_one_and_limits() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(500, 12)).astype(np.float32)
    values[:50, 3] = values[:50, 7] = 10.0  # exact ties
    p = action_distribution(values, 0.1)
    assert p.shape == (500, 12) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(p >= 0.1 / 12)
    np.testing.assert_allclose(p[:50, 3], 0.1 / 12 + 0.9 / 2)
    greedy = action_distribution(values, 0.0)
    assert set(np.unique(greedy[50:])) == {0.0, 1.0}
    assert np.all(action_distribution(values, 1.0) == 1 / 12)


def test_tie_tolerance_widens_the_greedy_set() -> None:
    p = action_distribution(np.array([1.0, 0.999, 0.5]), epsilon=0.3, tie_tolerance=0.01)
    np.testing.assert_allclose(p, [0.1 + 0.35, 0.1 + 0.35, 0.1])


@pytest.mark.parametrize(
    ("values", "epsilon", "tol"),
    [
        (np.array([1.0, np.nan]), 0.1, 0.0),
        (np.array([1.0, 2.0]), 1.5, 0.0),
        (np.array([1.0, 2.0]), -0.1, 0.0),
        (np.array([1.0, 2.0]), 0.1, -1.0),
        (np.zeros((2, 2, 2)), 0.1, 0.0),
    ],
)
def test_bad_input_is_refused(values: np.ndarray, epsilon: float, tol: float) -> None:
    with pytest.raises(ValueError):
        action_distribution(values, epsilon, tol)


def test_sample_arm_is_the_first_cumulative_above_u() -> None:
    p = np.array([0.2, 0.3, 0.5])
    got = [int(sample_arm(p, u)) for u in (0.0, 0.19999, 0.2, 0.49999, 0.5, 0.99999)]
    assert got == [0, 0, 1, 1, 2, 2]
    rows = np.tile(p, (3, 1))
    assert sample_arm(rows, np.array([0.1, 0.3, 0.9])).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        sample_arm(p, 1.0)


def test_sampling_frequencies_match_the_distribution() -> None:
    rng = np.random.default_rng(1)
    p = action_distribution(np.array([0.0, 2.0, 1.0, 2.0, -1.0]), 0.25)
    arms = sample_arm(np.tile(p, (200_000, 1)), rng.random(200_000))
    freq = np.bincount(arms, minlength=5) / 200_000
    np.testing.assert_allclose(freq, p, atol=0.005)
