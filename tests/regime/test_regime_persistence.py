"""The persistence baseline: the last known label (t - h), as a calibrated classifier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from configs.regime import RegimeConfig
from pipelines.models.regime.candidates import (
    PERSISTENCE,
    PersistenceClassifier,
    make_baseline,
    persistence_inputs,
)


def test_persistence_inputs_shift_within_symbol_by_hand() -> None:
    ts = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    frame = pd.DataFrame({"symbol": ["A"] * 4 + ["B"] * 4, "ts": list(ts) * 2})
    labels = np.array([0, 1, 2, 3, 3, 2, -1, 0])
    shuffled = frame.sample(frac=1.0, random_state=1)
    got = persistence_inputs(shuffled, labels[shuffled.index.to_numpy()], horizon=2)
    expected = pd.Series([-1, -1, 0, 1, -1, -1, 3, 2], index=frame.index, dtype=float)
    np.testing.assert_array_equal(got[:, 0], expected.loc[shuffled.index].to_numpy())


def test_transition_matrix_and_prior_by_hand() -> None:
    lag = np.array([0, 0, 0, 1, -1, -1])
    y = np.array([0, 0, 1, 1, 1, 0])
    model = PersistenceClassifier(n_classes=2, alpha=0.0).fit(lag.reshape(-1, 1), y)
    np.testing.assert_allclose(model.prior_, [0.5, 0.5])
    np.testing.assert_allclose(model.transition_, [[2 / 3, 1 / 3], [0.0, 1.0]])
    proba = model.predict_proba(np.array([[0], [1], [-1]]))
    np.testing.assert_allclose(proba, [[2 / 3, 1 / 3], [0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_array_equal(model.predict(np.array([[0], [1]])), [0, 1])


def test_persistence_beats_prior_on_sticky_chain() -> None:
    """On a chain that stays with p 0.99, the label 10 bars back is worth a lot of log-loss."""
    rng = np.random.default_rng(0)
    n, k, h = 20000, 4, 10
    state, y = 0, np.empty(n, dtype=np.int64)
    for t in range(n):
        if rng.random() > 0.99:
            state = int(rng.integers(k))
        y[t] = state
    ts = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    frame = pd.DataFrame({"symbol": "A", "ts": ts})
    x = persistence_inputs(frame, y, h)
    model = make_baseline(PERSISTENCE, RegimeConfig())
    model.fit(x[: n // 2], y[: n // 2])
    p = model.predict_proba(x[n // 2 :])
    prior = np.tile(np.bincount(y[: n // 2], minlength=k) / (n // 2), (n - n // 2, 1))
    assert log_loss(y[n // 2 :], p, labels=range(k)) < 0.5 * log_loss(
        y[n // 2 :], prior, labels=range(k)
    )
    assert np.all(p > 0)  # smoothed: never an infinite log-loss


def test_persistence_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        PersistenceClassifier().predict_proba(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="lagged labels"):
        PersistenceClassifier(n_classes=2).fit(np.array([[5.0]]), np.array([0]))
    with pytest.raises(ValueError, match="horizon"):
        persistence_inputs(pd.DataFrame({"symbol": ["A"], "ts": [0]}), [0], 0)
