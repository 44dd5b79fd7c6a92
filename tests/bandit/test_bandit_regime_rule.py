"""The bandit slot's rule-regime candidate: the best arm per cell of three feature signs.

Its ONNX against its numpy rule, the cell table on hand-made rows, a constructed world where
the best arm differs by cell (promoted by the same ``challenge()`` the flow runs), a
shuffled-label placebo in the same world (not promoted) and a look-ahead check (a row's cell
does not move when later bars change).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from configs.settings import load_config
from pipelines.data.synthetic import generate_bars
from pipelines.export.onnx import make_session, run
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.bandit.candidates import (
    MIN_CELL_ROWS,
    REGIME_QUESTIONS,
    RegimeArmRule,
    arm_choices,
    chosen_rewards,
    constant_arm_export,
    regime_arm_export,
    rule_cells,
)
from pipelines.models.champion import FALLBACK, Candidate, challenge
from pipelines.strategies import ARM_NAMES, FALLBACK_ARM, N_ARMS

torch.set_num_threads(1)
NAMES = tuple(FEATURE_NAMES)
COLUMNS = [NAMES.index(q) for q, _ in REGIME_QUESTIONS]
N_CELLS = 1 << len(REGIME_QUESTIONS)


class _Cfg:
    n_bootstrap = 300
    bootstrap_block = 24
    ci_level = 0.9
    confirm_fraction = 0.5


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, len(NAMES))).astype(np.float32)


def test_cells_are_the_feature_signs_as_bits() -> None:
    x = np.zeros((4, len(NAMES)), dtype=np.float32)
    x[1, COLUMNS[0]] = 0.2  # uptrend only: bit 0
    x[2, COLUMNS[1]] = 0.1  # turbulent only: bit 1
    x[3, COLUMNS] = [0.3, 0.4, 0.5]  # all three: 7
    x[0, COLUMNS] = [-0.1, 0.0, np.nan]  # no, no (0 is not > 0), no (NaN answers no)
    assert rule_cells(x, COLUMNS).tolist() == [0, 1, 2, 7]
    # read on float32: a float64 value that rounds to 0 is not positive
    tiny = np.zeros((1, len(NAMES)))
    tiny[0, COLUMNS[0]] = 1e-50
    assert rule_cells(tiny, COLUMNS).tolist() == [0]


def test_each_cell_gets_its_best_arm_and_a_thin_cell_the_overall_best() -> None:
    x = np.zeros((7 * MIN_CELL_ROWS, len(NAMES)), dtype=np.float32)
    rewards = np.zeros((len(x), N_ARMS))
    rewards[:, 4] = 1e-4  # arm 4 is the best single arm
    # cell 3 (uptrend, turbulent) gets enough rows and arm 9 is best there
    x[: 2 * MIN_CELL_ROWS, COLUMNS[:2]] = 1.0
    rewards[: 2 * MIN_CELL_ROWS, 9] = 3e-4
    # cell 5 (uptrend, persistent): one row short of the minimum; arm 11 is best there
    x[2 * MIN_CELL_ROWS : 3 * MIN_CELL_ROWS - 1, [COLUMNS[0], COLUMNS[2]]] = 1.0
    rewards[2 * MIN_CELL_ROWS : 3 * MIN_CELL_ROWS - 1, 11] = 2e-4
    rule = RegimeArmRule().fit(x, rewards, NAMES)
    # overall means: arm 4 1e-4, arm 9 2/7 x 3e-4 = 0.86e-4, arm 11 1/7 x 2e-4 = 0.29e-4
    assert rule.overall_arm_ == 4
    assert rule.arms_[3] == 9
    assert rule.counts_[5] == MIN_CELL_ROWS - 1 and rule.arms_[5] == 4  # not its own 11
    assert RegimeArmRule(min_rows=MIN_CELL_ROWS - 1).fit(x, rewards, NAMES).arms_[5] == 11
    assert rule.arms_[0] == 4  # the rest of the rows: arm 4 is best among them
    assert rule.counts_.sum() == len(x)
    with pytest.raises(ValueError, match="not among the inputs"):
        RegimeArmRule(questions=("no_such_feature",)).fit(x, rewards, NAMES)
    with pytest.raises(RuntimeError, match="not fitted"):
        RegimeArmRule().predict(x)


def test_the_onnx_equals_the_numpy_rule(tmp_path: Path) -> None:
    x = _rows(3000, 1)
    x[:50, COLUMNS[0]] = 0.0  # exactly on the threshold
    x[50:60, COLUMNS[1]] = np.float32(1e-30)
    rng = np.random.default_rng(2)
    rewards = rng.normal(0.0, 1e-3, (len(x), N_ARMS))
    rule = RegimeArmRule(min_rows=10).fit(x, rewards, NAMES)
    assert len(set(rule.arms_.tolist())) > 1  # the table is not one arm
    wide = np.hstack([x, _rows(len(x), 3)[:, :5]])  # extra columns after the 43 are ignored
    export = regime_arm_export(rule, wide, tmp_path / "rule.onnx", opset=17)
    assert export.max_abs_diff == 0.0
    (got,) = run(make_session(export.path), wide)
    assert got.shape == (len(x), N_ARMS)
    np.testing.assert_array_equal(got, rule.values(wide))
    np.testing.assert_array_equal(arm_choices(export.path, wide), rule.predict(x))


def _world(seed: int, n: int = 16000, edge: float = 4e-4) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose best arm is their cell's: arm c earns ``edge`` more in cell c (arms 8-11
    never do), on 10 bps of noise per decision. Every one of arms 0-7 has the same overall
    mean, so no single arm has the edge the cells have."""
    rng = np.random.default_rng(seed)
    x = _rows(n, seed + 1000)
    cells = rule_cells(x, COLUMNS)
    rewards = rng.normal(0.0, 1e-3, (n, N_ARMS))
    rewards[np.arange(n), cells] += edge
    return x, rewards


def _judge(x: np.ndarray, rewards: np.ndarray, rule: RegimeArmRule, tmp: Path, seed: int):
    """Fit span = the first half; the champion stage on the second half against the bot's
    fallback arm, with the best single arm beside the rule, as the bandit trainer runs it."""
    half = len(x) // 2
    x_ho, r_ho = x[half:], rewards[half:]
    best = int(np.argmax(rewards[:half].mean(axis=0)))
    cands = [
        Candidate("best_arm", "rule", constant_arm_export(best, x_ho, tmp / "b.onnx", 17), "b"),
        Candidate(
            "rule_regime_arm", "rule", regime_arm_export(rule, x_ho, tmp / "r.onnx", 17), "r"
        ),
    ]
    values = {c.name: chosen_rewards(arm_choices(c.export.path, x_ho), r_ho) for c in cands}
    fallback = np.full(len(x_ho), ARM_NAMES.index(FALLBACK_ARM))
    ts = pd.Series(pd.date_range("2024-01-01", periods=len(x_ho), freq="h", tz="UTC"))
    return challenge(
        ts,
        values,
        FALLBACK,
        chosen_rewards(fallback, r_ho),
        cands,
        dict.fromkeys(values),
        _Cfg(),
        seed,
        scale=1e4,
        unit="bps",
        parity_tolerance=1e-5,
    )


def test_a_world_whose_best_arm_follows_the_cell_promotes_the_rule(tmp_path: Path) -> None:
    x, rewards = _world(seed=0)
    half = len(x) // 2
    rule = RegimeArmRule().fit(x[:half], rewards[:half], NAMES)
    assert rule.arms_.tolist() == list(range(N_CELLS))  # each cell found its arm
    d = _judge(x, rewards, rule, tmp_path, seed=0)
    assert d.challenger is not None and d.challenger.name == "rule_regime_arm", d.reason
    assert d.promote, d.reason
    assert d.challenger.kind == "rule" and d.lineage()["kind"] == "rule"


@pytest.mark.parametrize("seed", range(6))
def test_a_rule_fitted_on_shuffled_labels_is_not_promoted(seed: int, tmp_path: Path) -> None:
    """The same world, the table fitted with each fit row's rewards moved to a random other
    row: the cells carry no information about the rewards, and the rule must not ship."""
    x, rewards = _world(seed=10 + seed)
    half = len(x) // 2
    perm = np.random.default_rng(seed).permutation(half)
    placebo = RegimeArmRule().fit(x[:half], rewards[:half][perm], NAMES)
    d = _judge(x, rewards, placebo, tmp_path, seed=seed)
    assert not (d.promote and d.challenger is not None and d.challenger.name == "rule_regime_arm")
    table = d.table.set_index("candidate")
    # and the honest fit on the same rows does beat the placebo on the held-out bars
    honest = RegimeArmRule().fit(x[:half], rewards[:half], NAMES)
    r_ho = rewards[half:]
    assert chosen_rewards(honest.predict(x[half:]), r_ho).mean() > (
        table.loc["rule_regime_arm", "mean_test (bps)"] / 1e4
    )


def test_a_rows_cell_does_not_change_when_later_bars_change(tmp_path: Path) -> None:
    """Look-ahead: bars after a cut are replaced by another path (prices scaled by a random
    walk from the cut on); the features, the cells and the exported graph's output of every
    row before the cut are unchanged, and rows after it do change."""
    synth = load_config().data.synthetic.model_copy(update={"n_bars": 1500})
    bars = generate_bars(synth, seed=4)
    cut = bars["ts"].sort_values().iloc[int(0.7 * len(bars))]
    later = bars.copy()
    after = (later["ts"] >= cut).to_numpy()
    rng = np.random.default_rng(9)
    walk = np.exp(np.cumsum(rng.normal(0.0, 0.01, int(after.sum()))))
    for col in ("open", "high", "low", "close"):
        later.loc[after, col] = later.loc[after, col].to_numpy() * walk
    a, b = featurize(bars).frame, featurize(later).frame
    xa = a[list(NAMES)].to_numpy(np.float32)
    xb = b[list(NAMES)].to_numpy(np.float32)
    before = (a["ts"] < cut).to_numpy()
    assert (a[["ts", "symbol"]].to_numpy() == b[["ts", "symbol"]].to_numpy()).all()
    rewards = np.random.default_rng(1).normal(0.0, 1e-3, (len(xa), N_ARMS))
    rule = RegimeArmRule(min_rows=10).fit(xa, rewards, NAMES)
    np.testing.assert_array_equal(
        rule_cells(xa, rule.columns_)[before], rule_cells(xb, rule.columns_)[before]
    )
    path = regime_arm_export(rule, xa, tmp_path / "rule.onnx", 17).path
    (va,) = run(make_session(path), xa[before])
    (vb,) = run(make_session(path), xb[before])
    np.testing.assert_array_equal(va, vb)
    # the change reached the rows after the cut (so the check above could have failed)
    assert (rule_cells(xa, rule.columns_)[~before] != rule_cells(xb, rule.columns_)[~before]).any()
