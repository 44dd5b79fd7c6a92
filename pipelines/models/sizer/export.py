"""Export the deterministic actor to ONNX with scaling and the [0.1, 2.0] clamp in the graph.

Graph: ``observation`` float32 [N, D] (raw features + signal) -> standardise and clip ->
SB3 actor MLP -> mean action -> clip to [-1, 1] (what ``predict(deterministic=True)`` does
for a Box) -> affine map to [0.1, 2.0] -> clamp -> ``multiplier`` float32 [N, 1].
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import torch
from stable_baselines3 import PPO
from torch import nn

from pipelines.export.onnx import converter_lock, write_canonical
from pipelines.models.sizer.data import ObservationScaler
from pipelines.models.sizer.env import MULT_HIGH, MULT_LOW, action_to_multiplier

INPUT_NAME = "observation"
OUTPUT_NAME = "multiplier"


class OnnxSizer(nn.Module):
    """The exported function as a torch module (kept separate from SB3's policy object)."""

    def __init__(self, model: PPO, scaler: ObservationScaler) -> None:
        super().__init__()
        policy = model.policy
        self.features_extractor = policy.pi_features_extractor
        self.policy_net = policy.mlp_extractor.policy_net
        self.action_net = policy.action_net
        self.mean: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("mean", torch.as_tensor(scaler.mean_, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scaler.scale_, dtype=torch.float32))
        self.clip = float(scaler.clip)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        z = torch.clamp((observation - self.mean) / self.scale, -self.clip, self.clip)
        action = self.action_net(self.policy_net(self.features_extractor(z)))
        action = torch.clamp(action, -1.0, 1.0)
        mult = MULT_LOW + (action + 1.0) * (0.5 * (MULT_HIGH - MULT_LOW))
        return torch.clamp(mult, MULT_LOW, MULT_HIGH)


def export_onnx(model: PPO, scaler: ObservationScaler, path: Path, opset: int = 17) -> Path:
    """Write the actor to ``path`` (legacy TorchScript exporter: small, fast, no onnxscript)."""
    module = OnnxSizer(model, scaler).eval().cpu()
    dummy = torch.zeros(1, scaler.mean_.shape[0], dtype=torch.float32)
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
    return write_canonical(onnx.load_model_from_string(buf.getvalue()), path, "sizer")


def sb3_multipliers(
    model: PPO, scaler: ObservationScaler, raw_obs: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """What SB3 itself says: ``predict(deterministic=True)`` on scaled obs, mapped to [0.1, 2]."""
    action, _ = model.predict(scaler.transform(raw_obs), deterministic=True)
    return action_to_multiplier(np.asarray(action).reshape(-1))
