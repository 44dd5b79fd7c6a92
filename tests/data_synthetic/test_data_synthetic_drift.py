"""The concept-drift world (configs/data.py DriftParams): the regime -> best-arm map swaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from configs.data import SyntheticConfig
from pipelines.data.synthetic import generate_bars
from pipelines.strategies import arm_rewards, compute_signals

PERIOD = 6000


def _trend_edge_of_fading(cfg: SyntheticConfig) -> dict[bool, float]:
    """Mean (Bollinger fade - slow EMA trend) reward in the trend regimes, in bps, by whether
    the bar lies in a swapped period."""
    bars = generate_bars(cfg, 7)
    rewards = arm_rewards(bars, compute_signals(bars), horizon=6, cost_bps=1.0, slippage_bps=0.5)
    pos = bars.groupby("symbol").cumcount().to_numpy()
    frame = pd.DataFrame(
        {
            "edge": (rewards["mr_bollinger_20"] - rewards["ema_24_120"]).to_numpy() * 1e4,
            "swapped": (pos // PERIOD) % 2 == 1,
            "trend": np.isin(bars["regime"].to_numpy(), [0, 1]),
        }
    )
    trend = frame[frame["trend"]].dropna()
    return {bool(k): float(v) for k, v in trend.groupby("swapped")["edge"].mean().items()}


def test_drift_swaps_which_arm_wins_in_the_trend_regimes() -> None:
    drift = _trend_edge_of_fading(
        SyntheticConfig(n_bars=4 * PERIOD, drift={"enabled": True, "period_bars": PERIOD})
    )
    assert drift[False] < 0.0  # unswapped: following the trend beats fading it
    assert drift[True] > 10.0  # swapped: trends overshoot and revert, fading wins by > 10 bps
    still = _trend_edge_of_fading(SyntheticConfig(n_bars=4 * PERIOD))
    # without drift the same periods differ by sampling noise only, far less than the swap
    noise = abs(still[True] - still[False])
    assert drift[True] - drift[False] > 3 * noise + 10.0


def test_drift_off_or_never_reached_leaves_the_stationary_world_unchanged() -> None:
    base = generate_bars(SyntheticConfig(n_bars=3000), 3)
    late = SyntheticConfig(n_bars=3000, drift={"enabled": True, "period_bars": 3000})
    pd.testing.assert_frame_equal(base, generate_bars(late, 3))


def test_drift_world_is_prefix_stable() -> None:
    cfg = {"enabled": True, "period_bars": 500}
    short = generate_bars(SyntheticConfig(n_bars=1200, drift=cfg), 5)
    long = generate_bars(SyntheticConfig(n_bars=2000, drift=cfg), 5)
    head = long.groupby("symbol", group_keys=False).head(1200).reset_index(drop=True)
    pd.testing.assert_frame_equal(short, head)


def test_a_drift_world_is_another_source_for_the_workdir() -> None:
    from configs.data import DataConfig
    from pipelines.data.provenance import source_fingerprint

    still = source_fingerprint(DataConfig(), 7)
    drift = source_fingerprint(DataConfig(synthetic={"drift": {"enabled": True}}), 7)
    assert "drift" not in still.identity  # stationary workdirs keep their recorded identity
    assert drift.identity != still.identity
