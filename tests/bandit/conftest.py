"""Small synthetic bars shared by the bandit tests."""

from __future__ import annotations

import pandas as pd
import pytest

from configs.settings import load_config
from pipelines.data.synthetic import generate_bars


@pytest.fixture(scope="session")
def small_bars() -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": 800})
    return generate_bars(cfg, seed=3)
