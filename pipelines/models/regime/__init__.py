"""Regime classifier: TREND_UP / TREND_DOWN / RANGE / PANIC from the 43 features, plus BOCD.

``RegimeTrainer`` (``train.py``) is what the spec list names; ``bocd_changepoint_prob`` /
``bocd_frame`` give the changepoint probability as a signal on their own. See ``docs/regime.md``.
"""

from pipelines.models.regime.bocd import bocd_changepoint_prob, bocd_frame, detection_stats
from pipelines.models.regime.labels import regime_labels, rule_labels
from pipelines.models.regime.train import MODEL_NAME, build_dataset

__all__ = [
    "MODEL_NAME",
    "bocd_changepoint_prob",
    "bocd_frame",
    "build_dataset",
    "detection_stats",
    "regime_labels",
    "rule_labels",
]
