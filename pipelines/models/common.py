"""What every trainer hands back to the flow, and the one time split they all use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Gate:
    """One publish gate: ``passed`` is decided by the trainer (direction differs per gate)."""

    name: str
    value: float
    threshold: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": float(self.value),
            "threshold": float(self.threshold),
            "passed": bool(self.passed),
        }


@dataclass
class TrainOutcome:
    """A trained, evaluated and exported model; the flow logs it and publishes it if it passed.

    ``metrics`` holds every evaluation figure and its baselines (flat, prefixed keys such as
    ``holdout/balanced_accuracy``, ``baseline/majority/balanced_accuracy``). ``artifacts`` maps
    a short name to a file the trainer wrote under its ``out_dir`` (plots as PNG, tables as CSV
    or JSON). ``onnx_max_abs_diff`` is parity of the exported graph against the framework.
    """

    model: str
    onnx_path: Path
    onnx_max_abs_diff: float
    input_names: list[str]
    input_shape: list[int | str]
    output_names: list[str]
    opset: int
    metrics: dict[str, float]
    gates: list[Gate]
    artifacts: dict[str, Path] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


def time_split(
    frame: pd.DataFrame, holdout_fraction: float, ts_col: str = "ts"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the earlier span, hold out the later one (one cut time across all symbols)."""
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    cut = frame[ts_col].quantile(1 - holdout_fraction)
    return frame[frame[ts_col] < cut], frame[frame[ts_col] >= cut]
