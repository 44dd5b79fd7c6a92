"""Strategy bandit: NeuralBandit (NeuralLinear exploration), Beta-Thompson companion, trainer."""

from pipelines.models.bandit.neural import NeuralBandit, RewardNet
from pipelines.models.bandit.thompson import BetaThompson, proxy_regimes
from pipelines.models.bandit.train import MODEL_NAME, BanditData, build_dataset

__all__ = [
    "MODEL_NAME",
    "BanditData",
    "BetaThompson",
    "NeuralBandit",
    "RewardNet",
    "build_dataset",
    "proxy_regimes",
]
