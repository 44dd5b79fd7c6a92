"""The 43 features every model consumes: names, order, and the bars → features transform.

``featurize(bars)`` is what the pipeline calls; ``compute_features(bars)`` keeps the input's
rows (NaN warm-up) for analysis. Formulas, windows and the reason for each feature are in
``docs/features.md``.
"""

from pipelines.features.compute import FeatureSet, compute_features, compute_symbol, featurize
from pipelines.features.names import FEATURE_GROUPS, FEATURE_NAMES, WARMUP_BARS

__all__ = [
    "FEATURE_GROUPS",
    "FEATURE_NAMES",
    "WARMUP_BARS",
    "FeatureSet",
    "compute_features",
    "compute_symbol",
    "featurize",
]
