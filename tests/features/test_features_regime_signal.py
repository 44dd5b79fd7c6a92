"""The features carry the regime signal the classifier needs (on the synthetic generator)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from configs.settings import load_config
from pipelines.data.synthetic import generate_bars
from pipelines.features import WARMUP_BARS, featurize


@pytest.mark.slow
def test_linear_model_on_features_separates_true_regimes() -> None:
    """A plain logistic regression learns the regimes out of time (>= 0.30, chance 0.25).

    Regimes differ only in return dynamics (drift ~2 Sharpe a year, vol clustering, level
    reversion), so 0.34-0.43 over seeds 7-11 is what the features carry, not the old 0.9.
    On 5000 bars the held-out span holds only a few regime segments and the figure swings
    from 0.27 to 0.49 with the seed, hence the 20000 bars.
    """
    syn = load_config().data.synthetic.model_copy(update={"n_bars": 20000})
    bars = generate_bars(syn, 7)  # 2 symbols x 20000 hourly bars
    fs = featurize(bars)
    y = bars.groupby("symbol")["regime"].apply(lambda s: s.iloc[WARMUP_BARS:]).to_numpy()
    cut = fs.frame["ts"].quantile(0.7)
    train = (fs.frame["ts"] <= cut).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with threadpool_limits(1):  # BLAS threads on 2 busy shared cores: 0.3 s becomes 6-20 s
        model.fit(fs.X[train], y[train])
    score = balanced_accuracy_score(y[~train], model.predict(fs.X[~train]))
    assert len(np.unique(y[~train])) == 4
    assert score >= 0.30, score
