"""A small simulated bot log shared by the event tests (2 symbols x 700 hourly bars)."""

from __future__ import annotations

import pandas as pd
import pytest
from events_simulation import BotSpec, SimulatedLog, simulate_bot

from configs.data import SyntheticConfig
from pipelines.data.synthetic import generate_bars


@pytest.fixture(scope="session")
def event_bars() -> pd.DataFrame:
    return generate_bars(SyntheticConfig(n_bars=700), 3).drop(columns="regime")


@pytest.fixture(scope="session")
def sim_log(event_bars: pd.DataFrame) -> SimulatedLog:
    return simulate_bot(event_bars, BotSpec(epsilon=0.3, seed=11))
