"""TreeSHAP per feature for the LightGBM models: LightGBM's exact contributions, read in the
right columns (the bias column left out, classes summed), a feature the trees never split on
at exactly zero, one-hot groups summed, and the same figures for the same seed."""

from __future__ import annotations

import numpy as np
import pytest
from lightgbm import LGBMClassifier

from pipelines.evaluation.importance import ImportanceInputs, column_groups, tree_shap


def _data(n: int = 2000, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (n, 5)).astype(np.float32)
    arm = rng.integers(0, 3, n)
    x[:, 2:5] = np.eye(3, dtype=np.float32)[arm]
    x[:, 1] = 0.0  # constant: no tree can split on it
    score = 2.0 * x[:, 0] + np.array([0.0, 1.0, -1.0])[arm] + rng.normal(0, 0.3, n)
    edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
    return x, np.searchsorted(edges, score)


def _inputs(x: np.ndarray) -> ImportanceInputs:
    return ImportanceInputs(
        x=x,
        groups=column_groups(["signal", "flat", "a0", "a1", "a2"], {"arm": [2, 3, 4]}),
        loss=lambda out, rows: np.zeros(len(rows)),
        what="unused",
        block=24,
        n_boot=200,
        level=0.9,
    )


@pytest.mark.parametrize("classes", [2, 3])
def test_shap_ranks_the_signal_and_scores_an_unsplit_feature_zero(classes: int) -> None:
    x, y = _data(classes=classes)
    model = LGBMClassifier(n_estimators=40, num_leaves=8, verbose=-1, random_state=0).fit(x, y)
    found = tree_shap(model, _inputs(x), seed=3)
    table = found.table.set_index("feature")
    assert list(table.index) == ["signal", "flat", "arm"]
    assert table.loc["flat"].tolist() == [0.0, 0.0, 0.0]
    assert table.loc["signal", "importance"] > table.loc["arm", "importance"] > 0
    assert 0 < table.loc["signal", "low"] <= table.loc["signal", "importance"]
    assert table.loc["signal", "importance"] <= table.loc["signal", "high"]
    # the table is the mean over rows of sum_k |phi_k,j|, from the columns LightGBM returns
    contrib = model.predict(x, pred_contrib=True).reshape(len(x), -1, 6)
    want = np.abs(contrib[:, :, 0]).sum(axis=1).mean()
    assert table.loc["signal", "importance"] == pytest.approx(want, rel=1e-9)
    raw = model.predict(x, raw_score=True).reshape(len(x), -1)
    np.testing.assert_allclose(contrib.sum(axis=2), raw, rtol=1e-6, atol=1e-6)
    again = tree_shap(model, _inputs(x), seed=3)
    assert again.table.equals(found.table)
    assert set(found.metrics("shap")) == {
        f"shap/{f}{s}" for f in table.index for s in ("", "/low", "/high")
    }


def test_only_the_latest_rows_are_scored() -> None:
    x, y = _data()
    model = LGBMClassifier(n_estimators=10, verbose=-1, random_state=0).fit(x, y)
    found = tree_shap(model, _inputs(x), seed=3, max_rows=500)
    assert found.rows == 500
    contrib = model.predict(x[-500:], pred_contrib=True)
    assert found.table.set_index("feature").loc["signal", "importance"] == pytest.approx(
        np.abs(contrib[:, 0]).mean(), rel=1e-9
    )


def test_a_model_of_another_width_is_refused() -> None:
    x, y = _data()
    model = LGBMClassifier(n_estimators=5, verbose=-1, random_state=0).fit(x[:, :4], y)
    with pytest.raises(ValueError):
        tree_shap(model, _inputs(x), seed=0)
