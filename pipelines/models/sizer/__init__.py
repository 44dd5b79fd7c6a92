"""CVaR-PPO position sizer: environment, CPPO on stable-baselines3, evaluation, ONNX export."""

from pipelines.models.sizer.cppo import CVaRPPO
from pipelines.models.sizer.env import SizingEnv, action_to_multiplier
from pipelines.models.sizer.train import MODEL_NAME, SIZERS

__all__ = ["MODEL_NAME", "SIZERS", "CVaRPPO", "SizingEnv", "action_to_multiplier"]
