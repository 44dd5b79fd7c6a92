"""The 43 feature names, their order, and the warm-up every symbol loses.

The order is the column order of :class:`pipelines.features.FeatureSet` and the input order of
every exported model, so it is part of the contract with the live bot: append, never reorder.
``docs/features.md`` documents each name (formula, window, why).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

#: Feature groups in column order. Every feature is scale-free (log ratios, z-scores, bounded
#: oscillators, sin/cos), so symbols at different price and volume levels can be pooled.
FEATURE_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "returns": ("ret_1", "ret_6", "ret_24", "ret_72", "ret_168"),
    "volatility": ("rv_24", "rv_72", "rv_200", "park_vol_24", "rv_ratio_24_200"),
    "atr": ("atr_14", "atr_ratio_14_100"),
    "ema": (
        "close_ema_20",
        "close_ema_50",
        "close_ema_200",
        "ema_spread_20_50",
        "ema_spread_50_200",
        "ema_cross_20_50",
        "ema_cross_age_20_50",
    ),
    "rsi": ("rsi_14", "rsi_50"),
    "macd": ("macd", "macd_signal", "macd_hist"),
    "bollinger": ("bb_pos_20", "bb_width_20"),
    "volume": ("vol_z_24", "vol_z_200", "vol_ratio_24_200", "vol_level_long", "signed_vol_24"),
    "volume_profile": ("poc_dist_100", "supply_dist_100", "demand_dist_100"),
    "range": ("range_pos_50", "breakout_up_20", "breakout_dn_20", "autocorr_48", "jump_freq_100"),
    "time": ("hour_sin", "hour_cos", "dow_sin", "dow_cos"),
}

#: The 43 feature names in column order.
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(n for g in FEATURE_GROUPS.values() for n in g)

#: Rows dropped at the start of every symbol: the longest window (200 log returns for ``rv_200``
#: needs 201 closes; EMA-200 is seeded from the first 200 closes) makes row 200 the first row
#: where every feature is defined.
WARMUP_BARS: Final = 200

#: Name prefixes of the optional cross-asset and exogenous columns (docs/features.md).
EXTRA_PREFIXES: Final[tuple[str, ...]] = ("xa_", "exo_")


def model_feature_columns(columns: Iterable[str]) -> tuple[str, ...]:
    """The columns of a features frame a model takes, in order: the 43, then the optional
    cross-asset and exogenous ones in the frame's order (their append order). Other columns
    (keys, labels a caller joined) are not inputs. A frame without the 43 is refused."""
    cols = list(columns)
    missing = [c for c in FEATURE_NAMES if c not in cols]
    if missing:
        raise ValueError(f"features frame lacks columns {missing[:5]} ({len(missing)} missing)")
    return (*FEATURE_NAMES, *(c for c in cols if c.startswith(EXTRA_PREFIXES)))


if len(FEATURE_NAMES) != 43 or len(set(FEATURE_NAMES)) != 43:  # pragma: no cover - a typo guard
    raise RuntimeError(f"expected 43 unique feature names, got {len(FEATURE_NAMES)}")
