"""Logged feedback from joined events: the bandit's view, OPE on the logs, weighted fitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from events_simulation import BotSpec, SimulatedLog, simulate_bot, write_files

from pipelines.events.exploration import action_distribution
from pipelines.events.feedback import (
    evaluate_on_logs,
    importance_weights_clipped,
    logged_feedback,
    weight_diagnostics,
)
from pipelines.events.storage import FolderSource, LocalStorage
from pipelines.events.store import ingest_events, read_dataset
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.bandit.neural import NeuralBandit
from pipelines.strategies.signals import N_ARMS


def _joined(log: SimulatedLog, root: Path) -> pd.DataFrame:
    write_files(log.files, root / "logs")
    state = LocalStorage(root / "events")
    ingest_events(FolderSource(root / "logs"), state)
    return read_dataset(state, "joined")


def test_logged_view_matches_what_the_bot_logged(sim_log: SimulatedLog, tmp_path: Path) -> None:
    fb = logged_feedback(_joined(sim_log, tmp_path))
    n = len(sim_log.decisions)
    assert len(fb) == n and fb.dropped_no_features == 0
    assert fb.X.shape == (n, len(FEATURE_NAMES)) and fb.X.dtype == np.float32
    assert fb.ts.dtype == np.dtype("datetime64[ns]") and np.all(np.diff(fb.ts) >= np.timedelta64(0))
    truth = sim_log.truth.set_index("event_id").loc[fb.event_id]
    np.testing.assert_array_equal(fb.arm, truth["arm"].to_numpy())
    np.testing.assert_array_equal(fb.reward, truth["reward"].to_numpy())
    np.testing.assert_array_equal(fb.propensity, truth["propensity"].to_numpy())
    np.testing.assert_allclose(fb.logged_dist[np.arange(n), fb.arm], fb.propensity, atol=1e-12)
    first = sim_log.decisions[[d["event_id"] for d in sim_log.decisions].index(fb.event_id[0])]
    np.testing.assert_array_equal(fb.X[0], np.asarray(first["features"], dtype=np.float32))


def test_features_are_recomputed_from_bars_when_not_logged(
    sim_log: SimulatedLog, event_bars: pd.DataFrame, tmp_path: Path
) -> None:
    bare = simulate_bot(
        event_bars, BotSpec(epsilon=0.3, seed=11, log_features=False, log_distribution=False)
    )
    joined = _joined(bare, tmp_path)
    assert not joined["has_features"].any()
    with pytest.raises(ValueError, match="no joined decision has features"):
        logged_feedback(joined)
    fb = logged_feedback(joined, featurize(event_bars).frame)
    ref = logged_feedback(_joined(sim_log, tmp_path / "ref"))
    np.testing.assert_array_equal(fb.X, ref.X)
    # without a logged distribution the rest of the mass is spread evenly
    np.testing.assert_allclose(fb.logged_dist.sum(axis=1), 1.0)
    np.testing.assert_allclose(fb.logged_dist[np.arange(len(fb)), fb.arm], fb.propensity)


def test_ope_on_the_logs_recovers_the_logging_policy_value(
    sim_log: SimulatedLog, tmp_path: Path
) -> None:
    fb = logged_feedback(_joined(sim_log, tmp_path))
    truth = sim_log.truth.set_index("event_id").loc[fb.event_id]
    rows = np.arange(len(fb))
    # a candidate: greedy-ish on a different scorer, evaluated against its known true value
    rng = np.random.default_rng(4)
    scores = fb.X.astype(np.float64) @ rng.normal(size=(len(FEATURE_NAMES), N_ARMS))
    cand = action_distribution(scores, 0.5)
    full = sim_log.rewards[pd.Index(sim_log.truth["event_id"]).get_indexer(fb.event_id)]
    cand_true = float(np.mean(np.sum(cand * full, axis=1)))
    res = evaluate_on_logs(fb, cand, n_boot=300, block=24, level=0.9, seed=0)
    logging = res.estimates["logging"]
    assert res.realized.value == pytest.approx(float(truth["reward"].mean()))
    assert logging["ips"].value == pytest.approx(res.realized.value)
    for est in ("ips", "snips", "dr"):
        e = logging[est]
        assert e.low <= sim_log.true_logging_value <= e.high, (est, e)
    assert (
        res.estimates["candidate"]["dr"].low <= cand_true <= res.estimates["candidate"]["dr"].high
    )
    assert "lift/candidate" in res.estimates
    assert res.diagnostics["logging"].ess == pytest.approx(len(fb))
    assert res.diagnostics["logging"].max_weight == pytest.approx(1.0)
    cand_diag = res.diagnostics["candidate"]
    assert cand_diag.ess < len(fb) and cand_diag.max_weight > 1.0
    np.testing.assert_allclose(
        cand_diag.max_weight, np.max(cand[rows, fb.arm] / fb.propensity), rtol=1e-12
    )


def test_weight_diagnostics_by_hand() -> None:
    d = weight_diagnostics(np.array([1.0, 1.0, 2.0]))
    assert d.ess == pytest.approx(16 / 6) and d.ess_fraction == pytest.approx(16 / 18)
    assert d.max_weight == 2.0 and d.reliable
    heavy = weight_diagnostics(np.array([0.01] * 99 + [100.0]), max_weight_limit=50)
    assert heavy.ess < 1.1 and not heavy.reliable
    with pytest.raises(ValueError):
        weight_diagnostics(np.array([1.0, -1.0]))
    np.testing.assert_allclose(importance_weights_clipped(np.array([0.5, 0.01]), 20), [2, 20])


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    p_arm1 = 1 / (1 + np.exp(-3 * X[:, 0]))  # the logging policy depends on the context
    arm = (rng.random(n) < p_arm1).astype(np.int64)
    prop = np.where(arm == 1, p_arm1, 1 - p_arm1)
    reward = np.where(arm == 1, X[:, 0], -X[:, 0]) + 0.1 * rng.normal(size=n)
    return X, arm, reward, prop


def test_neural_bandit_weighting_is_backwards_compatible() -> None:
    X, arm, reward, prop = _toy(400, 0)
    kw = {"hidden": (16,), "epochs": 5, "dropout": 0.0, "seed": 3}
    plain = NeuralBandit(**kw).fit(X, arm, reward, 2)
    ones = NeuralBandit(**kw).fit(X, arm, reward, 2, propensity=np.ones(len(X)))
    weighted = NeuralBandit(**kw).fit(X, arm, reward, 2, propensity=prop, max_weight=10)
    np.testing.assert_array_equal(plain.predict(X), ones.predict(X))
    assert not np.allclose(plain.predict(X), weighted.predict(X))
    with pytest.raises(ValueError, match="propensity"):
        NeuralBandit(**kw).fit(X, arm, reward, 2, propensity=np.zeros(len(X)))
    with pytest.raises(ValueError, match="max_weight"):
        NeuralBandit(**kw).fit(X, arm, reward, 2, propensity=prop, max_weight=0.5)


def test_cross_asset_and_exogenous_columns_come_from_the_features_frame(
    sim_log: SimulatedLog, event_bars: pd.DataFrame, tmp_path: Path
) -> None:
    """The bot logs the 43; a model trained with extra columns gets them from the frame, so
    the logged view has the model's width (a decision whose bar has none is dropped)."""
    joined = _joined(sim_log, tmp_path)
    frame = featurize(event_bars).frame
    rng = np.random.default_rng(0)
    extra = frame.assign(
        xa_corr=rng.normal(size=len(frame)).astype(np.float32),
        exo_vix_close=rng.normal(size=len(frame)).astype(np.float32),
    )
    ref = logged_feedback(joined)
    fb = logged_feedback(joined, extra)
    assert fb.X.shape == (len(ref), len(FEATURE_NAMES) + 2)
    np.testing.assert_array_equal(fb.X[:, : len(FEATURE_NAMES)], ref.X)
    lookup = extra.set_index(["symbol", "ts"])[["xa_corr", "exo_vix_close"]]
    keys = pd.MultiIndex.from_arrays([fb.symbol, pd.DatetimeIndex(fb.ts, tz="UTC")])
    np.testing.assert_array_equal(fb.X[:, len(FEATURE_NAMES) :], lookup.reindex(keys).to_numpy())
