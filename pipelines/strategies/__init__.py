"""Strategy arms: 12 rule strategies (3 per family), their signals, rewards and logged views."""

from pipelines.strategies.logged import (
    LOG_COLUMNS,
    LoggingPolicy,
    TradeLogError,
    log_decisions,
    read_trade_log,
)
from pipelines.strategies.rules import ARMS, FAMILIES, ArmSpec
from pipelines.strategies.signals import (
    ARM_FAMILIES,
    ARM_NAMES,
    FALLBACK_ARM,
    N_ARMS,
    arm_rewards,
    compute_signals,
)

__all__ = [
    "ARMS",
    "ARM_FAMILIES",
    "ARM_NAMES",
    "FALLBACK_ARM",
    "FAMILIES",
    "LOG_COLUMNS",
    "N_ARMS",
    "ArmSpec",
    "LoggingPolicy",
    "TradeLogError",
    "arm_rewards",
    "compute_signals",
    "log_decisions",
    "read_trade_log",
]
