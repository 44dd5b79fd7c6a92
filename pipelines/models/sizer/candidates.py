"""The sizer slot's rule candidate and how any policy of the slot is scored.

Every sizer policy is an ONNX graph with the slot's contract (``observation`` [N, 43 + 1]:
the features and the arm's signal -> ``multiplier`` [N, 1] in [0.1, 2.0]), so the bot runs a
rule exactly as it runs the learned actor. The rule is volatility targeting: ``m = c / rv_24``
clamped to the action range, with ``c`` fitted on the training span so its mean exposure is
the fallback's (1.0x): it re-times risk, it does not add leverage. A policy is scored by the
Sharpe ratio of the per-bar portfolio returns it produces on the held-out bars (net of
turnover cost), paired against the champion's on the same bars: Sharpe does not change when
a policy only scales its size, so a de-levered copy of the champion earns exactly nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from pipelines.export.onnx import OnnxExport, converter_lock, make_session, run, write_canonical
from pipelines.models.sizer.baselines import match_mean_leverage
from pipelines.models.sizer.data import SIGNAL_COLUMN
from pipelines.models.sizer.env import MULT_HIGH, MULT_LOW
from pipelines.models.sizer.evaluate import run_sizer
from pipelines.models.sizer.export import INPUT_NAME, OUTPUT_NAME

#: What the bot sizes by when no sizer is live (``EngineConfig.fallback_multiplier``): the
#: champion the sizer slot's first challenger must beat.
FALLBACK_MULTIPLIER = 1.0
#: The feature the rule reads: realized volatility of the last 24 one-bar returns.
VOL_FEATURE = "rv_24"
_EPS = 1e-12


class VolTarget(nn.Module):
    """``clamp(scale / max(observation[:, column], eps), 0.1, 2.0)``, as a graph."""

    def __init__(self, column: int, scale: float) -> None:
        super().__init__()
        self.column, self.scale = int(column), float(scale)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        vol = torch.clamp(observation[:, self.column : self.column + 1], min=_EPS)
        return torch.clamp(self.scale / vol, MULT_LOW, MULT_HIGH)


def vol_target_scale(train: pd.DataFrame, target: float = 1.0) -> float:
    """``c`` such that ``clip(c / rv_24)`` has mean exposure ``target`` on the training rows."""
    vol = train[VOL_FEATURE].to_numpy(dtype=np.float64)
    ok = np.isfinite(vol) & (vol > _EPS)
    if ok.sum() < 2:
        raise ValueError(f"{VOL_FEATURE} is not positive on the training span")
    raw = 1.0 / vol[ok]
    m = match_mean_leverage(raw, target, train[SIGNAL_COLUMN].to_numpy()[ok])
    inside = (m > MULT_LOW + 1e-9) & (m < MULT_HIGH - 1e-9)
    if not inside.any():  # every row clamped: the scale is any value between the clamps
        return float(np.median(m / raw))
    return float(np.median(m[inside] / raw[inside]))


def vol_target_export(
    obs_columns: list[str], scale: float, x: npt.NDArray[np.float32], path: Path, opset: int
) -> OnnxExport:
    """The rule as ONNX (the sizer's input and output names), checked on ``x``."""
    module = VolTarget(obs_columns.index(VOL_FEATURE), scale).eval()
    buf = _export(module, len(obs_columns), opset)
    import onnx

    write_canonical(onnx.load_model_from_string(buf), path, "sizer")
    with torch.no_grad():
        want = module(torch.from_numpy(np.array(x, dtype=np.float32))).numpy().reshape(-1)
    (got,) = run(make_session(path), x)
    return OnnxExport.checked(path, np.asarray(got).reshape(-1), want)


def _export(module: nn.Module, width: int, opset: int) -> bytes:
    import io

    dummy = torch.ones(1, width, dtype=torch.float32)
    buf = io.BytesIO()
    with converter_lock(), torch.no_grad():
        torch.onnx.export(
            module,
            (dummy,),
            buf,  # type: ignore[arg-type]  # the legacy exporter accepts file-like objects
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
            opset_version=opset,
            dynamo=False,
        )
    return buf.getvalue()


def onnx_multipliers(path: Path, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """A sizer graph's multiplier per row, checked against the slot's contract."""
    (got,) = run(make_session(path), x)
    m = np.asarray(got, dtype=np.float64).reshape(-1)
    if m.size != len(x) or not np.all(np.isfinite(m)):
        raise ValueError(f"{path.name}: expected {len(x)} finite multipliers, got {m.size}")
    return np.clip(m, MULT_LOW, MULT_HIGH)


def portfolio_returns(
    table: pd.DataFrame, multipliers: npt.ArrayLike, cost: float
) -> tuple[pd.Series, npt.NDArray[np.float64]]:
    """The per-bar portfolio returns (equal weight across symbols) and their times."""
    sized = run_sizer(table, multipliers, cost)
    return sized.ts, sized.returns


def sharpe_difference(ann_factor: float) -> Callable[[np.ndarray, np.ndarray], float]:
    """The paired statistic: annualized Sharpe of ``a`` minus that of ``b``."""
    root = math.sqrt(ann_factor)

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        sa, sb = float(np.std(a)), float(np.std(b))
        if sa <= 0 or sb <= 0:  # a flat stream has no Sharpe: no lift can be claimed
            return 0.0 if sa == sb else math.nan
        return float((np.mean(a) / sa - np.mean(b) / sb) * root)

    return stat
