"""The bot's side of the loop: streaming features, the decision engine, its event log.

``DecisionEngine`` is what a Python bot embeds (``docs/bot.md``); a bot in another language
follows the same steps, with ``clients/csharp/Verifier.cs`` as the verification example.
"""

from pipelines.bot.changepoint import OnlineBocd
from pipelines.bot.engine import MODEL_ROLES, Decision, DecisionEngine, EngineConfig, Fallback
from pipelines.bot.events import EventLog, read_events
from pipelines.bot.policy import action_distribution, draw_arm, one_hot, sample_arm

__all__ = [
    "MODEL_ROLES",
    "Decision",
    "DecisionEngine",
    "EngineConfig",
    "EventLog",
    "Fallback",
    "OnlineBocd",
    "action_distribution",
    "draw_arm",
    "one_hot",
    "read_events",
    "sample_arm",
]
