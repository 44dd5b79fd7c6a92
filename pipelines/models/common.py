"""The one time split the trainers share (train on the earlier span, hold out the later)."""

from __future__ import annotations

import pandas as pd


def time_split(
    frame: pd.DataFrame, holdout_fraction: float, ts_col: str = "ts"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the earlier span, hold out the later one (one cut time across all symbols)."""
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    cut = frame[ts_col].quantile(1 - holdout_fraction)
    return frame[frame[ts_col] < cut], frame[frame[ts_col] >= cut]
