"""The 43 features every model consumes: names, order, and the bars → features transform.

``featurize(bars)`` is what the pipeline calls; ``compute_features(bars)`` keeps the input's
rows (NaN warm-up) for analysis. Formulas, windows and the reason for each feature are in
``docs/features.md``.

The transforms load lazily (on first use of ``featurize``, ``compute_features`` or
``compute_symbol``): they bring numba, which code that only needs the names and the
``FeatureSet`` type should not pay for (:mod:`pipelines.features.isolated`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.features.featureset import FeatureSet
from pipelines.features.names import FEATURE_GROUPS, FEATURE_NAMES, WARMUP_BARS

if TYPE_CHECKING:
    from pipelines.features.compute import compute_features, compute_symbol, featurize

__all__ = [
    "FEATURE_GROUPS",
    "FEATURE_NAMES",
    "WARMUP_BARS",
    "FeatureSet",
    "compute_features",
    "compute_symbol",
    "featurize",
]

_LAZY = frozenset({"compute_features", "compute_symbol", "featurize"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from pipelines.features import compute

        return getattr(compute, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
