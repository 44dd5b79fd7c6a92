"""Regime classifier section (owned by the regime model)."""

from __future__ import annotations

from pydantic import Field

from configs.base import Section


class RegimeConfig(Section):
    """Regime classifier: labels, candidates, selection, calibration."""

    label_horizon: int = Field(
        default=24, gt=0, description="Bars ahead used by the real-data label rule."
    )
