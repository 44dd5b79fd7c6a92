"""The shared presentation: one regime palette in every plot, units, log-scale equity."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from pipelines.data.schema import REGIMES
from pipelines.models.bandit.plots import plot_arm_choices
from pipelines.models.regime.plots import plot_regime_timeline, regime_timeline_figure
from pipelines.models.sizer.evaluate import SizerRun
from pipelines.models.sizer.plots import equity_figure
from pipelines.plots import (
    BPS,
    PCT_PER_YEAR,
    REGIME_COLORS,
    REGIME_SHADE_ALPHA,
    plot_bars_overview,
    regime_color,
    unit_for,
)

N = 120
PANIC = REGIMES.index("PANIC")


def _shade(color: str) -> np.ndarray:
    """The colour a regime's shading takes over the white axes background."""
    rgb = np.array(mcolors.to_rgb(color))
    return REGIME_SHADE_ALPHA * rgb + (1.0 - REGIME_SHADE_ALPHA)


def _share_of(png: Path, color: np.ndarray, tol: float = 3 / 255) -> float:
    pixels = mpimg.imread(png)[..., :3].reshape(-1, 3)
    return float(np.mean(np.all(np.abs(pixels - color) <= tol, axis=1)))


def _ts() -> pd.Series:
    return pd.Series(pd.date_range("2026-01-01", periods=N, freq="h", tz="UTC"))


def _panic_only_plots(tmp_path: Path) -> dict[str, Path]:
    ts, regime = _ts(), np.full(N, PANIC)
    close = np.linspace(100.0, 90.0, N)
    bars = pd.DataFrame({"ts": ts, "symbol": "SYN1", "close": close, "regime": regime})
    proba = np.full((N, len(REGIMES)), 0.1)
    proba[:, PANIC] = 0.7
    decisions = pd.DataFrame(
        {"ts": ts, "symbol": "SYN1", "chosen": np.arange(N) % 3, "true_regime": regime}
    )
    return {
        "bars": plot_bars_overview(bars, tmp_path / "bars.png"),
        "timeline": plot_regime_timeline(
            ts,
            close,
            regime,
            proba,
            np.zeros(N),
            REGIMES,
            tmp_path / "timeline.png",
            reduce_threshold=0.5,
            exit_threshold=0.8,
        ),
        "arms": plot_arm_choices(decisions, ["S1", "S2", "S3"], tmp_path / "arms.png"),
    }


def test_every_plot_shades_a_regime_in_its_one_palette_colour(tmp_path: Path) -> None:
    plots = _panic_only_plots(tmp_path)
    panic, others = (
        _shade(REGIME_COLORS["PANIC"]),
        [_shade(REGIME_COLORS[r]) for r in REGIMES if r != "PANIC"],
    )
    for name, png in plots.items():
        assert _share_of(png, panic) > 0.05, f"{name}: PANIC shading not in the palette colour"
        for other in others:
            assert _share_of(png, other) < 0.002, f"{name}: a non-PANIC regime colour appears"


def test_palette_gives_four_distinct_colours_by_index_or_name() -> None:
    by_index = [regime_color(i) for i in range(len(REGIMES))]
    assert by_index == [regime_color(name) for name in REGIMES]
    assert len(set(by_index)) == len(REGIMES)
    # a label outside the four regimes never borrows a regime's colour
    assert regime_color("rule_label_x") not in by_index
    assert regime_color(7) not in by_index


def test_equity_is_on_a_log_axis_with_the_final_multiple_in_the_legend() -> None:
    ts = _ts()
    grow = np.expm1(np.full(N, np.log(175.0) / N))
    runs = {
        "cvar_ppo": SizerRun(ts, grow, pd.DataFrame(), np.ones(N)),
        "fixed_1x": SizerRun(ts, np.zeros(N), pd.DataFrame(), np.ones(N)),
    }
    ax = equity_figure(runs).axes[0]
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["cvar_ppo (175x)", "fixed_1x (1x)"]
    assert "log scale" in ax.get_ylabel()


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("bandit_dr_lift_vs_best_arm", BPS),
        ("lift/bandit_vs_best_arm/dr_ci_low", BPS),
        ("ope/uniform/snips", BPS),
        ("truth/oracle_regime", BPS),
        ("ann_return", PCT_PER_YEAR),
        ("baseline/fixed_1x/ann_return", PCT_PER_YEAR),
    ],
)
def test_rewards_read_in_bps_and_returns_per_year(name: str, unit: object) -> None:
    assert unit_for(name) == unit


def test_quantities_without_a_known_unit_say_so() -> None:
    assert unit_for("train/safety_z") is None
    assert unit_for("conformal/qhat") is None


def test_metrics_stored_in_bps_are_not_scaled_again() -> None:
    from pipelines.plots import unit_for

    for name in ("power/dr_lift_sd_bps", "power/mde_bps"):
        unit = unit_for(name)
        assert unit is not None and unit.label == "bps" and unit.scale == 1.0, name
    lift = unit_for("lift/dr")  # a fraction of capital: x1e4
    assert lift is not None and lift.scale == 1e4


def test_regime_timeline_legends_sit_outside_every_panel_and_inside_the_figure() -> None:
    """Each legend used to sit in its panel's upper right, over the latest bars."""
    ts, regime = _ts(), np.arange(N) % len(REGIMES)
    proba = np.full((N, len(REGIMES)), 1.0 / len(REGIMES))
    fig = regime_timeline_figure(
        ts,
        np.linspace(100.0, 90.0, N),
        regime,
        proba,
        np.linspace(0.0, 1.0, N),
        REGIMES,
        reduce_threshold=0.5,
        exit_threshold=0.8,
    )
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    panels = [ax.get_window_extent(renderer) for ax in fig.axes]
    page = fig.bbox
    legends = [legend for ax in fig.axes if (legend := ax.get_legend()) is not None]
    assert len(legends) == 3
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(panel) for panel in panels), (box, panels)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 <= box.y1 <= page.y1
