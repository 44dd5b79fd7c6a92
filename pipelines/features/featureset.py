"""The output of ``featurize``: a plain dataclass, importable without the numba kernels.

Kept apart from :mod:`pipelines.features.compute` so that code which only reads features (the
trainers, :mod:`pipelines.features.isolated`'s parent side) never loads numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.features.names import FEATURE_NAMES


@dataclass(frozen=True)
class FeatureSet:
    """Features ready for training: warm-up rows already removed.

    Attributes
    ----------
    frame:
        Columns ``ts``, ``symbol`` and the 43 :data:`FEATURE_NAMES` (float32, finite), sorted by
        (symbol, ts), index ``0..n-1``.
    warmup_dropped:
        Rows removed in total (``min(len, WARMUP_BARS)`` per symbol).
    """

    frame: pd.DataFrame
    warmup_dropped: int

    @property
    def X(self) -> np.ndarray:
        """The feature matrix ``[n, 43]`` float32, columns in :data:`FEATURE_NAMES` order."""
        return self.frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
