"""BOCD: against a dense reference, causality, known change points, NaN handling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.models.regime.bocd import bocd_changepoint_prob, bocd_frame, detection_stats


def _reference(x: np.ndarray, hazard: float, window: int, prior_var: float) -> np.ndarray:
    """Textbook BOCD, no truncation, every run kept in a dict (slow, obviously correct)."""
    mu0, kappa0, alpha0 = 0.0, 1.0, 2.0
    beta0 = alpha0 * prior_var

    def logpdf(v: float, mu: float, kappa: float, alpha: float, beta: float) -> float:
        # Student-t with 2*alpha dof, written out from its density
        nu, s2 = 2 * alpha, beta * (kappa + 1) / (alpha * kappa)
        return (
            math.lgamma((nu + 1) / 2)
            - math.lgamma(nu / 2)
            - 0.5 * math.log(nu * math.pi * s2)
            - (nu + 1) / 2 * math.log1p((v - mu) ** 2 / (nu * s2))
        )

    def update(s: tuple[float, ...], v: float) -> tuple[float, ...]:
        mu, kappa, alpha, beta = s
        return (
            (kappa * mu + v) / (kappa + 1),
            kappa + 1,
            alpha + 0.5,
            beta + kappa * (v - mu) ** 2 / (2 * (kappa + 1)),
        )

    prior = (mu0, kappa0, alpha0, beta0)
    runs: dict[int, tuple[float, tuple[float, ...]]] = {}  # n_obs -> (prob, stats)
    out = []
    for v in x:
        if not runs:
            new = {1: (1.0, update(prior, v))}
        else:
            new = {1: (hazard * math.exp(logpdf(v, *prior)), update(prior, v))}
            for n, (p, s) in runs.items():
                new[n + 1] = (p * (1 - hazard) * math.exp(logpdf(v, *s)), update(s, v))
            z = sum(p for p, _ in new.values())
            new = {n: (p / z, s) for n, (p, s) in new.items()}
        runs = new
        out.append(sum(p for n, (p, _) in runs.items() if n <= window))
    return np.array(out)


def test_matches_dense_reference_when_no_run_is_truncated() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.01, 60), rng.normal(0.01, 0.04, 40)])
    got = bocd_changepoint_prob(x, 1 / 50, max_run_length=200, window=5, prior_var=1e-4)
    want = _reference(x, 1 / 50, window=5, prior_var=1e-4)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_is_causal_value_at_t_uses_data_up_to_t_only() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.01, 300), rng.normal(0, 0.03, 200)])
    full = bocd_changepoint_prob(x, 1 / 100, 80, window=10, prior_var=1e-4)
    for t in (0, 5, 79, 80, 299, 305, 499):
        prefix = bocd_changepoint_prob(x[: t + 1], 1 / 100, 80, window=10, prior_var=1e-4)
        assert prefix[-1] == full[t]
    # changing the future never changes the past
    y = x.copy()
    y[400:] *= 5
    np.testing.assert_array_equal(
        bocd_changepoint_prob(y, 1 / 100, 80, window=10, prior_var=1e-4)[:400], full[:400]
    )


def _piecewise(seed: int) -> tuple[np.ndarray, list[int], list[int]]:
    """Segments of 300 bars alternating vol 0.01 and 0.03 (every change is known)."""
    rng = np.random.default_rng(seed)
    vols = [0.01, 0.03] * 5
    x = np.concatenate([rng.normal(0, v, 300) for v in vols])
    cps = [300 * i for i in range(1, len(vols))]
    ups = [c for i, c in enumerate(cps) if vols[i + 1] > vols[i]]
    return x, cps, ups


def test_volatility_jumps_are_detected_fast_with_few_false_alarms() -> None:
    x, cps, ups = _piecewise(2)
    prob = bocd_changepoint_prob(x, 1 / 300, 300, window=24, prior_var=float(np.var(x[:300])))
    assert prob.min() >= 0 and prob.max() <= 1
    up = detection_stats(prob, ups, threshold=0.9, max_delay=48, burn_in=24)
    assert up.detected == up.n_changes == 5
    assert up.mean_delay <= 5  # a 3x volatility jump shows within a few bars
    every = detection_stats(prob, cps, threshold=0.7, max_delay=48, burn_in=24)
    assert every.false_alarms_per_1000 <= 1.0
    assert every.detection_rate >= 0.8


def test_stationary_series_raises_almost_no_alarm() -> None:
    x = np.random.default_rng(3).normal(0, 0.01, 5000)
    prob = bocd_changepoint_prob(x, 1 / 200, 300, window=24, prior_var=1e-4)
    st = detection_stats(prob, [], threshold=0.7, max_delay=48, burn_in=24)
    assert st.false_alarms_per_1000 <= 1.0  # 4 short bursts of clustered big returns in 5000
    assert np.median(prob[24:]) < 0.3


def test_first_window_bars_are_young_runs_by_construction() -> None:
    prob = bocd_changepoint_prob(np.zeros(30) + 0.001, 0.01, 50, window=10, prior_var=1e-4)
    np.testing.assert_allclose(prob[:10], 1.0)
    assert prob[-1] < 0.5


def test_nan_leaves_posterior_untouched() -> None:
    x = np.random.default_rng(4).normal(0, 0.01, 200)
    with_gap = np.insert(x, 100, np.nan)
    a = bocd_changepoint_prob(x, 1 / 100, 60, prior_var=1e-4)
    b = bocd_changepoint_prob(with_gap, 1 / 100, 60, prior_var=1e-4)
    assert b[100] == b[99]
    np.testing.assert_array_equal(np.delete(b, 100), a)


def test_truncation_keeps_a_long_stationary_series_stable() -> None:
    x = np.random.default_rng(5).normal(0, 0.01, 3000)
    small = bocd_changepoint_prob(x, 1 / 500, 20, window=5, prior_var=1e-4)
    big = bocd_changepoint_prob(x, 1 / 500, 400, window=5, prior_var=1e-4)
    assert np.isfinite(small).all() and np.isfinite(big).all()
    assert abs(small[100:].mean() - big[100:].mean()) < 0.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hazard": 0.0}, "hazard"),
        ({"max_run_length": 1}, "max_run_length"),
        ({"window": 0}, "window"),
        ({"prior_var": -1.0}, "prior_var"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float], match: str) -> None:
    args = {"hazard": 0.01, "max_run_length": 10, "window": 2, "prior_var": 1e-4} | kwargs
    with pytest.raises(ValueError, match=match):
        bocd_changepoint_prob(np.zeros(5), **args)  # type: ignore[arg-type]


def test_detection_stats_on_a_hand_made_signal() -> None:
    p = np.zeros(100)
    p[12:15] = 0.95  # change at 10 caught after 2 bars
    p[50] = 0.8  # an alarm far from any change: false
    p[81:83] = 0.75  # change at 70 caught after 11 bars
    st = detection_stats(p, [10, 70, 90], threshold=0.7, max_delay=20)
    assert (st.n_changes, st.detected, st.false_alarms) == (3, 2, 1)
    assert st.delays == (2, 11)
    assert st.mean_delay == 6.5
    assert st.false_alarms_per_1000 == 10.0
    assert detection_stats(p, [10, 70], threshold=0.9, max_delay=20).delays == (2,)


def test_bocd_frame_runs_each_symbol_on_its_own() -> None:
    import pandas as pd

    rng = np.random.default_rng(6)
    ts = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")
    a = pd.DataFrame(
        {"ts": ts, "symbol": "A", "close": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 50)))}
    )
    b = a.assign(symbol="B", close=a["close"] * 3)
    both = bocd_frame(pd.concat([b, a]), 0.01, 30, window=5, prior_var=1e-4)
    only_a = bocd_frame(a, 0.01, 30, window=5, prior_var=1e-4)
    assert list(both.columns) == ["ts", "symbol", "cp_prob"]
    got_a = both[both["symbol"] == "A"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got_a, only_a)
    # scale-free returns: B is A times a constant, same changepoint probabilities
    np.testing.assert_allclose(both[both["symbol"] == "B"]["cp_prob"].to_numpy(), only_a["cp_prob"])
    assert str(both["ts"].dtype).endswith("UTC]")
