"""The bandit slot's rule candidates and how any policy of the slot is scored.

Every policy of the slot is an ONNX graph with the slot's contract (``features`` [N, 43] ->
``arm_values`` [N, 12]; the bot trades the argmax), so the bot cannot tell a rule from the
learned network. Scoring is the same for all of them, the live champion included: run the
graph on the held-out features, take the argmax, and read that arm's net reward from the
bars (every arm's reward is known there, so the value is exact, not an off-policy estimate).
The exploration the engine adds around the argmax is the same for every policy, so the
greedy value ranks them as the bot would see them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipelines.export.onnx import OnnxExport, make_session, run
from pipelines.models.bandit.export import export_onnx
from pipelines.strategies import ARM_NAMES, N_ARMS


class ConstantArm(nn.Module):
    """A rule policy: the same arm on every bar (value 1 for it, 0 for the others)."""

    def __init__(self, arm: int, n_arms: int = N_ARMS) -> None:
        super().__init__()
        if not 0 <= arm < n_arms:
            raise ValueError(f"arm must be in [0, {n_arms}), got {arm}")
        self.values: torch.Tensor
        self.register_buffer("values", torch.eye(n_arms, dtype=torch.float32)[arm : arm + 1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # the features' first column times 0 gives the batch axis (NaN never reaches here:
        # the bot's features are finite after warm-up, and held-out rows are complete)
        return features[:, :1] * 0.0 + self.values


def constant_arm_export(arm: int, x: np.ndarray, path: Path, opset: int) -> OnnxExport:
    """The constant-arm rule as ONNX, checked against its own torch output on ``x``."""
    module = ConstantArm(arm).eval()
    export_onnx(module, x.shape[1], path, opset)
    with torch.no_grad():
        want = module(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()
    (got,) = run(make_session(path), x)
    return OnnxExport.checked(path, got, want)


def arm_choices(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    """The arm a slot policy trades on each row: argmax of its values, ties to the lowest."""
    (values,) = run(make_session(onnx_path), x)
    values = np.asarray(values)
    if values.shape != (len(x), N_ARMS):
        raise ValueError(
            f"{onnx_path.name}: arm_values must be [{len(x)}, {N_ARMS}], got {values.shape}"
        )
    return np.asarray(np.argmax(values, axis=1), dtype=np.int64)


def chosen_rewards(arms: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Each decision's exact net reward: the reward of the arm the policy chose."""
    return np.asarray(rewards[np.arange(len(arms)), arms], dtype=np.float64)


def arm_name(arm: int) -> str:
    return ARM_NAMES[arm]
