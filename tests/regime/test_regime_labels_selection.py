"""Rule labels, walk-forward folds (purge/embargo), metrics and the pick of the best."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.data.schema import REGIMES
from pipelines.models.regime.candidates import baseline_inputs, predict_proba_full
from pipelines.models.regime.labels import NO_LABEL, regime_labels, rule_labels_1d
from pipelines.models.regime.selection import (
    bar_interval,
    classification_metrics,
    log_loss,
    select_best,
    walk_forward_folds,
)

UP, DOWN, RANGE, PANIC = (REGIMES.index(n) for n in ("TREND_UP", "TREND_DOWN", "RANGE", "PANIC"))


def _closes(drifts_vols: list[tuple[float, float, int]], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.concatenate([rng.normal(d, v, n) for d, v, n in drifts_vols])
    return 100 * np.exp(np.cumsum(r))


def test_rule_names_what_follows_each_bar() -> None:
    h, w = 24, 500
    calm = (0.0, 0.005, 600)
    close = _closes(
        [calm, (0.004, 0.005, 200), calm, (-0.004, 0.005, 200), calm, (0.0, 0.03, 200), calm]
    )
    y = rule_labels_1d(close, h, trend_z=1.0, panic_vol_ratio=2.0, vol_window=w)
    assert (y[:w] == NO_LABEL).all() and (y[-h:] == NO_LABEL).all()
    # bars whose next h bars sit inside a segment get that segment's class (mostly)
    assert np.mean(y[600 : 600 + 200 - h] == UP) > 0.9
    assert np.mean(y[1400 : 1400 + 200 - h] == DOWN) > 0.9
    assert np.mean(y[2200 : 2200 + 200 - h] == PANIC) > 0.9
    assert np.mean(y[500 : 600 - h] == RANGE) > 0.6


def test_rule_label_at_t_only_sees_closes_up_to_t_plus_h() -> None:
    close = _closes([(0.0, 0.01, 600)], seed=1)
    h = 12
    y = rule_labels_1d(close, h, vol_window=50)
    changed = close.copy()
    changed[400:] *= np.exp(np.linspace(0, 1, 200))
    y2 = rule_labels_1d(changed, h, vol_window=50)
    np.testing.assert_array_equal(y[: 400 - h], y2[: 400 - h])
    assert (y[400 - h :] != y2[400 - h :]).any()


def test_true_regime_column_is_the_target_when_present() -> None:
    ts = pd.date_range("2024-01-01", periods=300, freq="1h", tz="UTC")
    bars = pd.DataFrame(
        {"ts": ts, "symbol": "A", "close": _closes([(0, 0.01, 300)]), "regime": np.arange(300) % 4}
    )
    y, src = regime_labels(bars, 24)
    assert src == "true_regime" and (y.to_numpy() == np.arange(300) % 4).all()
    y, src = regime_labels(bars, 24, use_true_regime=False, vol_window=50)
    assert src == "rule" and (y.to_numpy()[-24:] == NO_LABEL).all()
    with pytest.raises(ValueError, match="outside"):
        regime_labels(bars.assign(regime=7), 24)


def test_folds_expand_and_leave_the_purge_embargo_gap() -> None:
    ts = pd.date_range("2024-01-01", periods=1000, freq="1h", tz="UTC")
    both = pd.concat([pd.DataFrame({"ts": ts, "symbol": s}) for s in ("A", "B")], ignore_index=True)
    gap = bar_interval(both["ts"], both["symbol"]) * (24 + 24)
    assert gap == pd.Timedelta(hours=48)
    folds = walk_forward_folds(both["ts"], 3, gap)
    t = both["ts"].to_numpy()
    assert [f.index for f in folds] == [1, 2, 3]
    prev_train, prev_val_end = 0, None
    for f in folds:
        val_start = t[f.val].min()
        assert t[f.train].max() <= val_start - np.timedelta64(48, "h")
        assert t[f.train].max() == val_start - np.timedelta64(48, "h")
        assert f.train.size > prev_train  # expanding window
        assert set(both["symbol"].iloc[f.val]) == {"A", "B"}  # one cut for every symbol
        if prev_val_end is not None:
            assert val_start > prev_val_end
        prev_train, prev_val_end = f.train.size, t[f.val].max()
    assert t[folds[-1].val].max() == t.max()
    with pytest.raises(ValueError, match="n_folds"):
        walk_forward_folds(both["ts"], 0, gap)


def test_metrics_and_selection_ignore_baselines() -> None:
    y = np.array([0, 1, 2, 3, 0, 0])
    perfect = np.eye(4)[y]
    m = classification_metrics(y, perfect)
    assert m["balanced_accuracy"] == 1.0 and m["accuracy"] == 1.0
    assert m["log_loss"] == pytest.approx(0.0, abs=1e-12)
    assert log_loss(np.array([0]), np.array([[0.5, 0.5]])) == pytest.approx(np.log(2))
    summary = pd.DataFrame(
        {
            "model": ["a", "b", "cheat"],
            "kind": ["candidate", "candidate", "baseline"],
            "log_loss_mean": [0.5, 0.4, 0.1],
            "balanced_accuracy_mean": [0.9, 0.8, 0.99],
        }
    )
    assert select_best(summary, "log_loss") == "b"
    assert select_best(summary, "balanced_accuracy") == "a"


def test_missing_classes_get_zero_probability_columns() -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(60, 2))
    y = np.where(X[:, 0] > 0, 3, 1)
    proba = predict_proba_full(LogisticRegression().fit(X, y), X, 4)
    assert proba.shape == (60, 4)
    np.testing.assert_array_equal(proba[:, [0, 2]], 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_baseline_inputs_are_causal_return_and_vol() -> None:
    ts = pd.date_range("2024-01-01", periods=100, freq="1h", tz="UTC")
    close = _closes([(0.0, 0.01, 100)], seed=2)
    out = baseline_inputs(pd.DataFrame({"ts": ts, "symbol": "A", "close": close}), 10)
    assert (
        out["recent_return"].iloc[:10].isna().all() and out["realized_vol"].iloc[:10].isna().all()
    )
    assert out["recent_return"].iloc[50] == pytest.approx(np.log(close[50] / close[40]))
    r = np.diff(np.log(close))
    assert out["realized_vol"].iloc[50] == pytest.approx(np.std(r[40:50], ddof=1))
