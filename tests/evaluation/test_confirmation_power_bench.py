"""The confirmation-power benchmark judges its rules with the project's bootstrap: its
vectorised lower bounds must be the ones ``paired_ci`` gives on the same series and seed,
including the shortcut that reads a lift on part of the rows off one bootstrap."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from pipelines.evaluation.bootstrap import mean_difference, paired_ci

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    path = ROOT / "benchmarks" / "bench_confirmation_power.py"
    spec = importlib.util.spec_from_file_location("bench_confirmation_power", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _bench()


def _series(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.convolve(rng.standard_t(3, size=n + 5), np.ones(6), mode="valid")[:n]


@pytest.mark.parametrize("n", [997, 1200])
def test_vectorised_lower_bound_is_paired_ci(bench: ModuleType, n: int) -> None:
    block, n_boot, level, seed = 24, 400, 0.9, 7
    x = np.column_stack([_series(1, n), _series(2, n)])
    boot = bench.bootstrap_means(x, block, n_boot, seed)
    lows = bench.percentile_lower(boot, (1 - level) / 2)
    for j in range(2):
        want = paired_ci(x[:, j], np.zeros(n), mean_difference, block, n_boot, level, seed)
        assert lows[j] == pytest.approx(want.low, rel=1e-10, abs=1e-12)
    other = paired_ci(x[:, 0], np.zeros(n), mean_difference, block, n_boot, level, seed + 1)
    assert lows[0] != pytest.approx(other.low, rel=1e-10, abs=1e-12)


def test_partial_lift_read_off_one_bootstrap(bench: ModuleType) -> None:
    """A lift ``delta`` on the first 40% of the rows: resample mean + delta * resampled share
    of those rows gives the bound paired_ci computes on the lifted series itself."""
    n, block, n_boot, seed, delta = 1500, 24, 400, 3, 0.37
    x = _series(5, n)
    m = (np.arange(n) < 0.4 * n).astype(np.float64)
    boot = bench.bootstrap_means(np.column_stack([x, m]), block, n_boot, seed)
    low = bench.percentile_lower(boot[:, 0] + delta * boot[:, 1], 0.05)
    want = paired_ci(x + delta * m, np.zeros(n), mean_difference, block, n_boot, 0.9, seed)
    assert low == pytest.approx(want.low, rel=1e-10, abs=1e-12)


def test_simulated_lifts_have_unit_sd_and_the_reward_window_memory(bench: ModuleType) -> None:
    d = bench.simulate_lifts(np.random.default_rng(0), 2, 1, 40_000, 6, 0.5).reshape(2, -1)
    kurt, acf, _ = bench.series_stats(d.reshape(-1), (1, 5, 6))
    assert d.std() == pytest.approx(1.0, abs=0.1)
    assert acf[0] == pytest.approx(5 / 6, abs=0.05)
    assert acf[1] == pytest.approx(1 / 6, abs=0.05)
    assert abs(acf[2]) < 0.05
    assert kurt > 4.0
