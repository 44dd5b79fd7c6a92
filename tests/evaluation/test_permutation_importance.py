"""Permutation importance on the held-out span: exact zeros for ignored inputs, a clear
positive importance with an interval above zero for the input a model relies on, one-hot
groups shuffled as one feature, the same figures for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.evaluation.importance import (
    ImportanceInputs,
    column_groups,
    permutation_importance,
)


def _inputs(n: int = 3000, block: int = 24) -> tuple[ImportanceInputs, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (n, 5)).astype(np.float32)
    arm = rng.integers(0, 3, n)
    x[:, 2:5] = np.eye(3, dtype=np.float32)[arm]  # a one-hot in the last three columns
    y = 2.0 * x[:, 0] + np.array([0.0, 1.0, -1.0])[arm] + rng.normal(0, 0.1, n)
    groups = column_groups(["signal", "noise", "a0", "a1", "a2"], {"arm": [2, 3, 4]})
    inputs = ImportanceInputs(
        x=x,
        groups=groups,
        loss=lambda out, rows: (out[0] - y[rows]) ** 2,
        what="squared error",
        block=block,
        n_boot=200,
        level=0.9,
    )
    return inputs, y


def _predict(x: np.ndarray) -> list[np.ndarray]:
    """The true model: reads column 0 and the one-hot, never column 1."""
    return [2.0 * x[:, 0].astype(np.float64) + x[:, 2:5].astype(np.float64) @ [0.0, 1.0, -1.0]]


def test_used_inputs_matter_ignored_ones_score_zero() -> None:
    inputs, _ = _inputs()
    found = permutation_importance(_predict, inputs, seed=5)
    table = found.table.set_index("feature")
    assert list(table.index) == ["signal", "noise", "arm"]
    assert table.loc["noise"].tolist() == [0.0, 0.0, 0.0]  # never read: exactly no change
    # shuffling x0 (variance 1, weight 2) adds 2 * 4 = 8 to the squared error on average
    assert table.loc["signal", "importance"] == pytest.approx(8.0, rel=0.1)
    assert 0 < table.loc["signal", "low"] < 8.0 < table.loc["signal", "high"]
    # the one-hot moved as a whole: the arm's effect (values 0, 1, -1) costs ~ 2 * var = 1.33
    assert table.loc["arm", "importance"] == pytest.approx(4 / 3, rel=0.15)
    assert table.loc["arm", "low"] > 0
    metrics = found.metrics()
    assert metrics["importance/signal"] == table.loc["signal", "importance"]
    assert set(metrics) == {
        f"importance/{f}{s}" for f in table.index for s in ("", "/low", "/high")
    }
    assert found.rows == 3000


def test_same_seed_same_figures_and_rows_are_capped() -> None:
    inputs, _ = _inputs()
    a = permutation_importance(_predict, inputs, seed=5)
    b = permutation_importance(_predict, inputs, seed=5)
    assert a.table.equals(b.table)
    c = permutation_importance(_predict, inputs, seed=6)
    assert not a.table.equals(c.table)
    capped = permutation_importance(_predict, inputs, seed=5, max_rows=500)
    assert capped.rows == 500


def test_a_bad_loss_is_refused() -> None:
    inputs, _ = _inputs()
    bad = ImportanceInputs(
        inputs.x, inputs.groups, lambda out, rows: np.full(len(rows), np.nan), "x", 24, 50, 0.9
    )
    with pytest.raises(ValueError, match="finite"):
        permutation_importance(_predict, bad, seed=0)
