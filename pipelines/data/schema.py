"""The bar contract shared by every source, check and feature."""

from __future__ import annotations

from typing import Final

BAR_COLUMNS: Final = ("ts", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: Final = ("open", "high", "low", "close")
NUMERIC_COLUMNS: Final = ("open", "high", "low", "close", "volume")

#: Regime names in class-index order; the synthetic generator's ``regime`` column holds the index.
REGIMES: Final = ("TREND_UP", "TREND_DOWN", "RANGE", "PANIC")

#: Column that carries the generator's true regime. Evaluation only: never a feature.
TRUE_REGIME_COLUMN: Final = "regime"
