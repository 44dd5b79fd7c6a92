import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipelines.models.regime.selection import Contender, Fold, walk_forward_compare


def _proba(model: LogisticRegression, x: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def test_single_class_folds_are_skipped_and_all_single_class_is_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = np.array([0] * 20 + [0, 1] * 10 + [1, 2] * 10)
    folds = [
        Fold(0, np.arange(0, 20), np.arange(20, 40)),
        Fold(1, np.arange(0, 40), np.arange(40, 60)),
    ]
    contender = Contender("lr", "candidate", LogisticRegression, "x")
    table = walk_forward_compare([contender], {"x": x}, y, folds, 3, _proba)
    assert table["fold"].tolist() == [1]
    with pytest.raises(ValueError, match="no walk-forward fold has two or more regimes"):
        walk_forward_compare([contender], {"x": x}, y, folds[:1], 3, _proba)
