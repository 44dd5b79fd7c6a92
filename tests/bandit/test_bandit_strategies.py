from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.strategies import (
    ARM_FAMILIES,
    ARM_NAMES,
    FAMILIES,
    LoggingPolicy,
    TradeLogError,
    arm_rewards,
    compute_signals,
    log_decisions,
    read_trade_log,
)
from pipelines.strategies.rules import donchian, ema_cross, rsi


def _one_symbol(close: np.ndarray, volume: float = 1000.0) -> pd.DataFrame:
    n = len(close)
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"),
            "symbol": "X",
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": np.full(n, volume),
        }
    )


def test_twelve_arms_three_per_family() -> None:
    assert len(ARM_NAMES) == 12 and len(set(ARM_NAMES)) == 12
    for fam in FAMILIES:
        assert sum(1 for f in ARM_FAMILIES.values() if f == fam) == 3


def test_signals_shape_dtype_values(small_bars: pd.DataFrame) -> None:
    shuffled = small_bars.sample(frac=1.0, random_state=0)
    sig = compute_signals(shuffled)
    assert sig.index.equals(shuffled.index)
    assert list(sig.columns) == list(ARM_NAMES)
    assert all(dt == np.int8 for dt in sig.dtypes)
    assert set(np.unique(sig.to_numpy())) <= {-1, 0, 1}
    # row order does not matter: same signal per (symbol, ts)
    ordered = compute_signals(small_bars)
    pd.testing.assert_frame_equal(sig.loc[small_bars.index], ordered)
    # every arm trades somewhere, in both directions
    for name in ARM_NAMES:
        assert (sig[name] == 1).any() and (sig[name] == -1).any(), name


def test_signals_are_causal(small_bars: pd.DataFrame) -> None:
    """Signal at t is unchanged when every bar after t is dropped (or changed)."""
    full = compute_signals(small_bars)
    for cut in (150, 400):
        prefix = small_bars.groupby("symbol").head(cut)
        pd.testing.assert_frame_equal(compute_signals(prefix), full.loc[prefix.index])
    tampered = small_bars.copy()
    later = tampered.groupby("symbol").cumcount() >= 500
    tampered.loc[later, ["high", "low", "close", "volume"]] *= 3.0
    early = ~later
    pd.testing.assert_frame_equal(compute_signals(tampered)[early], full[early])


def test_signals_per_symbol_independent(small_bars: pd.DataFrame) -> None:
    full = compute_signals(small_bars)
    one = small_bars[small_bars["symbol"] == "SYN2"]
    pd.testing.assert_frame_equal(compute_signals(one), full.loc[one.index])


def test_rule_values_by_hand() -> None:
    up = _one_symbol(np.linspace(100, 130, 200))
    assert (ema_cross(up, 8, 21)[30:] == 1).all()
    assert (ema_cross(up, 8, 21)[:20] == 0).all()  # warm-up is flat
    assert (rsi(up, 14, 30, 70)[20:] == -1).all()  # steady rise: overbought
    down = _one_symbol(np.linspace(130, 100, 200))
    assert (ema_cross(down, 8, 21)[30:] == -1).all()
    assert (rsi(down, 14, 30, 70)[20:] == 1).all()
    step = np.r_[np.full(60, 100.0), np.full(20, 110.0), np.full(20, 90.0)]
    sig = donchian(_one_symbol(step), 48)
    assert (sig[:60] == 0).all() and (sig[60:80] == 1).all() and (sig[80:] == -1).all()


def test_rewards_by_hand() -> None:
    close = np.array([100.0, 101.0, 99.0, 102.0, 102.0, 100.0])
    bars = _one_symbol(close)
    sig = pd.DataFrame(0, index=bars.index, columns=list(ARM_NAMES), dtype=np.int8)
    sig[ARM_NAMES[0]] = np.array([1, 1, -1, -1, 0, 1], dtype=np.int8)
    sig[ARM_NAMES[1]] = 1
    rw = arm_rewards(bars, sig, horizon=2, cost_bps=3.0, slippage_bps=1.0)
    c = 4e-4
    r = close[1:] / close[:-1] - 1
    # arm 0 from t=0: hold +1 over bar 1, +1 over bar 2; turnover |1| + 0 + |1| = 2
    assert rw.iloc[0, 0] == pytest.approx(r[0] + r[1] - 2 * c)
    # t=1: +1 over bar 2, -1 over bar 3; turnover 1 + 2 + 1 = 4
    assert rw.iloc[1, 0] == pytest.approx(r[1] - r[2] - 4 * c)
    # t=3: -1 over bar 4, 0 over bar 5; turnover 1 + 1 + 0 = 2
    assert rw.iloc[3, 0] == pytest.approx(-r[3] - 2 * c)
    assert rw.iloc[0, 1] == pytest.approx(r[0] + r[1] - 2 * c)
    assert rw.iloc[0, 2] == 0.0  # a flat arm earns and pays nothing
    assert rw.iloc[4:].isna().all().all() and rw.iloc[:4].notna().all().all()


def test_rewards_nan_only_at_each_symbol_end(small_bars: pd.DataFrame) -> None:
    sig = compute_signals(small_bars)
    rw = arm_rewards(small_bars, sig, horizon=6, cost_bps=1.0, slippage_bps=0.5)
    nan_rows = rw.isna().all(axis=1)
    assert (rw.isna().any(axis=1) == nan_rows).all()
    assert nan_rows.groupby(small_bars["symbol"]).sum().tolist() == [6, 6]
    assert (small_bars.groupby("symbol").cumcount()[nan_rows] >= 800 - 6).all()


def test_logging_policies(small_bars: pd.DataFrame) -> None:
    sig = compute_signals(small_bars)
    rw = arm_rewards(small_bars, sig, horizon=6, cost_bps=1.0, slippage_bps=0.5)
    uni = log_decisions(small_bars, rw, LoggingPolicy("uniform"), 6, seed=1)
    assert len(uni) == 2 * (800 - 6)
    assert np.allclose(uni["propensity"], 1 / 12)
    assert uni["arm"].nunique() == 12
    picked = rw.loc[uni.index].to_numpy()[np.arange(len(uni)), uni["arm"].to_numpy()]
    assert np.allclose(uni["reward"], picked)
    again = log_decisions(small_bars, rw, LoggingPolicy("uniform"), 6, seed=1)
    pd.testing.assert_frame_equal(uni, again)
    eg = log_decisions(small_bars, rw, LoggingPolicy("epsilon_greedy", 0.2, 24), 6, seed=1)
    hi, lo = 1 - 0.2 + 0.2 / 12, 0.2 / 12
    props = eg["propensity"].to_numpy()
    assert np.isin(np.round(props, 12), np.round([hi, lo, 1 / 12], 12)).all()
    assert np.isclose(props, hi).mean() > 0.7  # mostly the greedy arm


def test_logging_policy_validates() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        LoggingPolicy("epsilon_greedy", epsilon=0.0)
    with pytest.raises(ValueError, match="kind"):
        LoggingPolicy("softmax")  # type: ignore[arg-type]


def write_trade_log(log: pd.DataFrame, path: Path) -> Path:
    """Write a logged-bandit frame as gzip JSON lines (``ts`` ISO-8601 UTC, arm by name): the
    format ``read_trade_log`` reads, which only this test writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in log.itertuples(index=False):
            record = {
                "ts": pd.Timestamp(row.ts).isoformat(),
                "symbol": str(row.symbol),
                "arm": str(row.arm_name),
                "propensity": float(row.propensity),
                "reward": float(row.reward),
            }
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    return path


def test_trade_log_round_trip_and_errors(small_bars: pd.DataFrame, tmp_path: Path) -> None:
    sig = compute_signals(small_bars)
    rw = arm_rewards(small_bars, sig, horizon=3, cost_bps=1.0, slippage_bps=0.5)
    log = log_decisions(small_bars, rw, LoggingPolicy("uniform"), 3, seed=2).head(50)
    path = write_trade_log(log, tmp_path / "trades.jsonl.gz")
    back = read_trade_log(path)
    pd.testing.assert_frame_equal(back, log.reset_index(drop=True), check_dtype=False)
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as fh:
        fh.write(
            '{"ts": "2024-01-01T00:00:00Z", "symbol": "A", "arm": "ema_8_21", '
            '"propensity": 0.5, "reward": 0.1}\n'
        )
        fh.write(
            '{"ts": "2024-01-01T01:00:00Z", "symbol": "A", "arm": "ema_8_21", '
            '"propensity": 1.5, "reward": 0.1}\n'
        )
    with pytest.raises(TradeLogError, match=r"bad.jsonl.gz:2: field 'propensity'"):
        read_trade_log(bad)
    with gzip.open(bad, "wt") as fh:
        fh.write(
            '{"ts": "2024-01-01T00:00:00Z", "symbol": "A", "arm": "nope", '
            '"propensity": 0.5, "reward": 0.1}\n'
        )
    with pytest.raises(TradeLogError, match=r":1: field 'arm'"):
        read_trade_log(bad)
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_text("not gzip")
    with pytest.raises(TradeLogError, match="gzip"):
        read_trade_log(plain)
