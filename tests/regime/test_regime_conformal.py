"""Conformal sets on a non-exchangeable stream: split conformal, rolling window, ACI.

Streams with known answers: a model that grows overconfident (drift), labels chosen against
the model (adversarial), and the placebo gate for a set method that misses its target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from configs.regime import RegimeConfig
from pipelines.evaluation.calibration import SplitConformalClassifier
from pipelines.evaluation.gates import regime_gates
from pipelines.models.regime.conformal import (
    METHODS,
    Method,
    OnlineConformal,
    conformal_stream_metrics,
    pool_quantile,
    reveal_times,
    run_stream,
)

K = 4
H = 24
NAMES = ("A", "B", "C", "D")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _draw(rng: np.random.Generator, q: np.ndarray) -> np.ndarray:
    u = rng.random(len(q))[:, None]
    return np.asarray((u > np.cumsum(q, axis=1)).sum(axis=1).clip(0, K - 1))


@dataclass(frozen=True)
class Stream:
    calib_proba: np.ndarray
    calib_y: np.ndarray
    calib_ts: pd.Series
    proba: np.ndarray
    y: np.ndarray
    symbol: np.ndarray
    ts: pd.Series


def drifting(n_cal: int, n: int, seed: int = 0) -> Stream:
    """Calibrated at calibration time; then the truth flattens (temperature 1 -> 3) while the
    model's probabilities stay as they were: an overconfident model, a drifting stream."""
    rng = np.random.default_rng(seed)
    zc = rng.normal(0, 1.5, (n_cal, K))
    cal_p = _softmax(zc)
    cal_y = _draw(rng, cal_p)
    z = rng.normal(0, 1.5, (n, K))
    temp = np.linspace(1.0, 3.0, n)[:, None]
    y = _draw(rng, _softmax(z / temp))
    # two symbols on one hourly grid, interleaved as the held-out frame is
    ts = pd.date_range("2024-01-01", periods=n // 2, freq="h", tz="UTC")
    return Stream(
        calib_proba=cal_p,
        calib_y=cal_y,
        calib_ts=pd.Series(pd.date_range("2023-01-01", periods=n_cal, freq="h", tz="UTC")),
        proba=_softmax(z),
        y=y,
        symbol=np.repeat(["S1", "S2"], n // 2),
        ts=pd.Series(np.concatenate([ts, ts])),
    )


def stream_metrics(data: Stream, gamma: float = 0.005, window: int = 200) -> dict[str, float]:
    metrics, _ = conformal_stream_metrics(
        data.calib_proba,
        data.calib_y,
        data.calib_ts,
        data.proba,
        data.y,
        data.symbol,
        data.ts,
        coverage=0.9,
        gamma=gamma,
        window=window,
        horizon=H,
        confirm_fraction=0.5,
        class_names=NAMES,
    )
    return metrics


@pytest.fixture(scope="module")
def drift() -> dict[str, float]:
    return stream_metrics(drifting(4000, 40000))


def test_quantile_rank_and_its_ends() -> None:
    s = np.arange(1, 10) / 10.0  # n = 9
    assert pool_quantile(s, 0.8) == pytest.approx(0.8)  # rank ceil(10 * 0.8) = 8
    assert pool_quantile(s, 0.95) == math.inf  # rank 10 > n: always in
    assert pool_quantile(s, 0.0) == -math.inf  # rank 0: never in
    assert pool_quantile(np.empty(0), 0.5) == math.inf


def test_split_method_reproduces_split_conformal_sets_exactly() -> None:
    data = drifting(1500, 3000, seed=3)
    ref = SplitConformalClassifier(0.9, mondrian=True).fit(data.calib_proba, data.calib_y)
    conf = OnlineConformal.for_method("split", 0.9, K, gamma=0.05, window=50)
    conf.fit(data.calib_proba, data.calib_y)
    np.testing.assert_array_equal(conf.thresholds, ref.class_qhat_)
    res = run_stream(conf, data.proba, data.y, data.symbol, data.ts, H)
    np.testing.assert_array_equal(res.sets, ref.predict_sets(data.proba))


def test_aci_reaches_long_run_coverage_where_split_does_not(drift: dict[str, float]) -> None:
    for prefix in ("", "confirm/"):
        split = drift[f"{prefix}conformal/split/coverage"]
        aci = drift[f"{prefix}conformal/aci/coverage"]
        assert abs(split - 0.9) > 0.05, (prefix, split)  # drift breaks exchangeability
        assert abs(aci - 0.9) <= 0.02, (prefix, aci)
        for name in NAMES:  # one level per class: every class is covered, not only on average
            assert abs(drift[f"{prefix}conformal/aci/coverage/{name}"] - 0.9) <= 0.03, name
    # the price of coverage under drift: larger sets than split's
    size = "confirm/conformal/{}/mean_set_size"
    assert drift[size.format("aci")] > drift[size.format("split")]


def test_rolling_window_tracks_the_drift(drift: dict[str, float]) -> None:
    for prefix in ("", "confirm/"):
        split = abs(drift[f"{prefix}conformal/split/coverage"] - 0.9)
        rolling = abs(drift[f"{prefix}conformal/rolling/coverage"] - 0.9)
        assert rolling < split / 2, (prefix, rolling, split)


def test_aci_miss_rate_obeys_its_bound_against_adversarial_labels() -> None:
    """Labels always the class the model finds least likely: split covers almost nothing; ACI's
    miss rate per class still tends to alpha, within the Gibbs-Candes bound (delay included)."""
    rng = np.random.default_rng(5)
    n, gamma = 20000, 0.01
    cal_p = _softmax(rng.normal(0, 1.5, (2000, K)))
    cal_y = _draw(rng, cal_p)
    p = _softmax(rng.normal(0, 1.5, (n, K)))
    y = p.argmin(axis=1)
    ts = pd.Series(pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"))
    conf = OnlineConformal.for_method("aci", 0.9, K, gamma=gamma, window=200).fit(cal_p, cal_y)
    res = run_stream(conf, p, y, np.full(n, "S"), ts, H)
    split = SplitConformalClassifier(0.9, mondrian=True).fit(cal_p, cal_y)
    assert split.evaluate(p, y).coverage < 0.5
    revealed = np.arange(n) < n - H
    for k in range(K):
        rows = revealed & (y == k)
        miss = 1.0 - res.hit[rows].mean()
        bound = (max(0.1, 0.9) + gamma * (H + 1)) / (gamma * rows.sum())
        assert abs(miss - 0.1) <= bound, (k, miss, bound)


def test_a_label_is_used_only_after_its_horizon() -> None:
    """Changing the label of one row changes no set before its reveal, h bars later."""
    data = drifting(500, 2000, seed=9)
    i = 300  # a row of symbol S1
    y2 = data.y.copy()
    y2[i] = (y2[i] + 1) % K
    out = []
    for y in (data.y, y2):
        conf = OnlineConformal.for_method("aci_rolling", 0.9, K, 0.05, 50)
        conf.fit(data.calib_proba, data.calib_y)
        out.append(run_stream(conf, data.proba, y, data.symbol, data.ts, H).sets)
    ts = data.ts.to_numpy()
    reveal = reveal_times(data.symbol, data.ts, H)
    assert reveal[i] == i + H
    before = ts < ts[reveal[i]]
    np.testing.assert_array_equal(out[0][before], out[1][before])
    assert (out[0][~before] != out[1][~before]).any()


def test_state_round_trips_and_continues_the_stream() -> None:
    data = drifting(800, 1000, seed=2)
    conf = OnlineConformal.for_method("aci_rolling", 0.9, K, 0.02, 30)
    conf.fit(data.calib_proba, data.calib_y, order=data.calib_ts)
    run_stream(conf, data.proba, data.y, data.symbol, data.ts, H)
    again = OnlineConformal.from_dict(conf.to_dict())
    np.testing.assert_array_equal(again.thresholds, conf.thresholds)
    np.testing.assert_allclose(again.alphas, conf.alphas, rtol=0, atol=1e-15)
    assert all(len(p) == 30 for p in again.pools)
    for obj in (conf, again):
        obj.update(1, 0.42, missed=True)
    np.testing.assert_array_equal(again.thresholds, conf.thresholds)


def test_rolling_pool_starts_from_the_latest_calibration_scores() -> None:
    proba = np.tile([[0.7, 0.1, 0.1, 0.1]], (6, 1))
    proba[:, 0] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]  # scores 0.1 .. 0.6 in time order
    y = np.zeros(6, dtype=int)
    order = np.array([5, 4, 3, 2, 1, 0])  # reversed times: the latest rows are the first
    conf = OnlineConformal(0.5, K, window=2).fit(proba, y, order=order)
    assert conf.pools[0] == pytest.approx([0.2, 0.1])


def _gates(metrics: dict[str, float], method: Method) -> dict[str, bool]:
    cfg = RegimeConfig(conformal_method=method)
    m = {**metrics, "conformal/target_coverage": 0.9}
    return {g.name: g.passed for g in regime_gates(m, cfg) if g.name.startswith("conformal")}


def test_gate_blocks_a_miscalibrated_set_method(drift: dict[str, float]) -> None:
    """Placebo: split conformal on the drifting stream misses its target on both spans; the
    gate reads the configured method, so it blocks split and lets ACI through."""
    assert _gates(drift, "split") == {
        "conformal_coverage_error": False,
        "conformal_coverage_error_confirmation": False,
    }
    assert _gates(drift, "aci") == {
        "conformal_coverage_error": True,
        "conformal_coverage_error_confirmation": True,
    }
    # a method that covers on the test span but not on the confirmation span fails the twin
    mixed = {**drift, "confirm/conformal/aci/coverage": 0.8}
    assert _gates(mixed, "aci")["conformal_coverage_error_confirmation"] is False
    # no measurement never publishes
    assert not any(_gates({}, "aci").values())


def test_every_method_is_measured_on_both_spans(drift: dict[str, float]) -> None:
    assert drift["conformal/n_rows"] + drift["confirm/conformal/n_rows"] == 40000
    for method in METHODS:
        for prefix in ("", "confirm/"):
            for stat in ("coverage", "mean_set_size", "empty_fraction"):
                assert np.isfinite(drift[f"{prefix}conformal/{method}/{stat}"]), (method, stat)
