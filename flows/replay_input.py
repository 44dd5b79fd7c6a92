"""What a closed-loop replay needs before it starts: a fresh folder, checked bars, a plan that fits.

Light on purpose (pandas and ``pipelines.data`` only): ``edgeflow replay`` runs it before it
starts Prefect and imports the trainers, so bad input, a folder that holds a previous replay
or too few bars for the cycles are refused in seconds, with the same one line the replay
itself would give. :func:`flows.replay.run_closed_loop` runs it when it is not handed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from configs import Settings
from configs.settings import ConfigError
from pipelines.data.checks import check_bars
from pipelines.data.sources import load_source, read_files
from pipelines.data.synthetic import generate_bars


@dataclass(frozen=True)
class ReplayInput:
    """The replay's folder, its checked bars and the bars before the first cycle."""

    root: Path
    bars: pd.DataFrame
    initial_bars: int


def replay_bars(settings: Settings, data: Path | None) -> pd.DataFrame:
    """The bar stream: the user's file/folder, else the config's source (``sample``, ``files``,
    ``s3``), each checked like any input; or the config's generator, which carries the true
    regime, so the oracle can be scored."""
    if data is not None:
        raws = read_files(data, settings.data.files)
    elif settings.data.source == "synthetic":
        return generate_bars(settings.data.synthetic, settings.seed)
    else:
        raws = load_source(settings.data, settings.seed)
    return check_bars(raws, settings.data.checks, interval=settings.data.interval).bars


def replay_input(
    settings: Settings,
    cycles: int,
    cycle_bars: int,
    data: Path | None = None,
    initial_bars: int | None = None,
) -> ReplayInput:
    """Refuse a folder that holds a previous replay (its bar store would hand the first
    training bars from the later cycles), bad bars (``DataError``) and a plan the bars cannot
    hold; ``initial_bars`` defaults to what is left before the cycles, at least 1000."""
    root = Path(settings.workdir) / "replay"
    if root.exists() and any(root.iterdir()):
        raise ConfigError(
            f"{root}: holds a previous replay (its bar store would leak later bars into the "
            "first training); use another --workdir or delete that folder"
        )
    bars = replay_bars(settings, data)
    n_stamps = bars["ts"].nunique()
    initial = (
        initial_bars if initial_bars is not None else max(1000, n_stamps - cycles * cycle_bars)
    )
    if initial + (cycles - 1) * cycle_bars >= n_stamps:
        raise ConfigError(
            f"{n_stamps} bars per symbol hold no {cycles} cycles of {cycle_bars} after "
            f"{initial} initial bars: lower --cycles/--cycle-bars or give more bars"
        )
    return ReplayInput(root, bars, initial)
