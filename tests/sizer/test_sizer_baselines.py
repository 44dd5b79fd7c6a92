"""Constant and volatility-targeting sizers at the same mean leverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.models.sizer.baselines import (
    baseline_multipliers,
    causal_realized_vol,
    constant_multipliers,
    match_mean_leverage,
    mean_leverage,
    vol_target_multipliers,
)
from pipelines.models.sizer.data import NEXT_RETURN_COLUMN, SIGNAL_COLUMN


def _table(returns: dict[str, np.ndarray], signal: float = 1.0) -> pd.DataFrame:
    frames = []
    for sym, r in returns.items():
        ts = pd.date_range("2024-01-01", periods=r.size, freq="1h", tz="UTC")
        frames.append(
            pd.DataFrame({"symbol": sym, "ts": ts, SIGNAL_COLUMN: signal, NEXT_RETURN_COLUMN: r})
        )
    return pd.concat(frames, ignore_index=True)


def test_mean_leverage_weights_by_exposure() -> None:
    m = np.array([2.0, 0.5, 1.0, 1.0])
    s = np.array([1, -1, 0, 0])
    assert mean_leverage(m, s) == pytest.approx(1.25)  # flat bars do not count
    assert mean_leverage(m) == pytest.approx(1.125)


def test_match_mean_leverage_hits_target_within_clamps() -> None:
    raw = np.array([1.0, 2.0, 4.0, 100.0])
    out = match_mean_leverage(raw, 1.0)
    assert out.mean() == pytest.approx(1.0, abs=1e-8)
    assert out.min() >= 0.1 and out.max() <= 2.0
    assert out[-1] == 2.0  # clamped
    np.testing.assert_allclose(out[:3] / out[0], [1.0, 2.0, 4.0])  # shape kept below the clamp
    with pytest.raises(ValueError, match="outside"):
        match_mean_leverage(raw, 2.5)
    with pytest.raises(ValueError, match="> 0"):
        match_mean_leverage(np.array([1.0, 0.0]), 1.0)


def test_causal_vol_by_hand_and_causal() -> None:
    r = np.array([0.01, -0.01, 0.03, 0.0, 0.02])
    vol = causal_realized_vol(_table({"A": r}), window=2)
    # row t knows r[0..t-1]; with window 2: rows 0, 1 have < 2 known returns
    assert np.isnan(vol[:2]).all()
    assert vol[2] == pytest.approx(np.std([0.01, -0.01], ddof=1))
    assert vol[3] == pytest.approx(np.std([-0.01, 0.03], ddof=1))
    assert vol[4] == pytest.approx(np.std([0.03, 0.0], ddof=1))
    changed = r.copy()
    changed[-1] = 0.5  # the last return is unknown at every row
    np.testing.assert_array_equal(vol, causal_realized_vol(_table({"A": changed}), window=2))


def test_vol_target_is_inverse_vol_at_same_mean_leverage() -> None:
    rng = np.random.default_rng(0)
    quiet, loud = rng.normal(0, 0.005, 500), rng.normal(0, 0.02, 500)
    table = _table({"A": np.r_[quiet, loud], "B": rng.normal(0, 0.01, 1000)})
    learned = np.full(len(table), 0.8)
    base = baseline_multipliers(table, learned, window=48)
    np.testing.assert_allclose(base["constant"], 0.8)
    vt = base["vol_target"]
    assert mean_leverage(vt, table[SIGNAL_COLUMN]) == pytest.approx(0.8, abs=1e-8)
    a = table["symbol"].to_numpy() == "A"
    m_a = vt[a]
    assert m_a[100:500].mean() > 3.0 * m_a[600:].mean()  # 4x the vol -> about 1/4 the size
    assert vt.min() >= 0.1 and vt.max() <= 2.0


def test_vol_target_lowers_tail_loss_at_equal_leverage() -> None:
    """On a clustered-vol series the rule cuts the 5 % tail loss versus the constant sizer."""
    rng = np.random.default_rng(1)
    sig = np.repeat(rng.choice([0.003, 0.02], size=40), 100)
    table = _table({"A": rng.normal(0, 1, sig.size) * sig})
    vt = vol_target_multipliers(table, 1.0, window=24)
    const = constant_multipliers(len(table), 1.0)
    r = table[NEXT_RETURN_COLUMN].to_numpy()

    def cvar(x: np.ndarray) -> float:
        return float(-np.sort(x)[: int(0.05 * x.size)].mean())

    assert cvar(vt * r) < 0.8 * cvar(const * r)
    with pytest.raises(ValueError, match="outside"):
        constant_multipliers(3, 0.05)
