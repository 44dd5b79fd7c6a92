"""The sizer trainer end to end on a tiny budget, plus the evaluation pieces on hand-made tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from configs.settings import load_config
from configs.sizer import SizerConfig
from pipelines.data.synthetic import generate_bars
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.base import ModelResult as TrainOutcome
from pipelines.models.sizer import SIZERS
from pipelines.models.sizer.data import NEXT_RETURN_COLUMN, SIGNAL_COLUMN, select_arm
from pipelines.models.sizer.evaluate import rule_multipliers, run_sizer
from pipelines.models.specs import SPECS, train_one
from pipelines.strategies import compute_signals

TINY = {
    "total_timesteps": 512,
    "n_envs": 4,
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 2,
    "window": 16,
    "net_arch": [16, 16],
}


@pytest.fixture(scope="module")
def demo_inputs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    settings = load_config("demo")
    bars = generate_bars(settings.data.synthetic.model_copy(update={"n_bars": 1200}), 3)
    return bars, featurize(bars).frame, compute_signals(bars)


def _train(inputs: tuple[pd.DataFrame, ...], out: Path, seed: int = 11) -> TrainOutcome:
    bars, features, signals = inputs
    cfg = SizerConfig.model_validate(TINY)
    return train_one(SPECS["sizer"], bars, features, cfg, seed, out, signals=signals)


@pytest.mark.slow
def test_train_sizer_outcome_export_and_reproducibility(
    demo_inputs: tuple[pd.DataFrame, ...], tmp_path: Path
) -> None:
    first = _train(demo_inputs, tmp_path / "a")
    assert first.model == "sizer"
    assert first.input_names == ["observation"] and first.output_names == ["multiplier"]
    assert first.input_shape == ["N", len(FEATURE_NAMES) + 1]
    assert first.onnx_max_abs_diff <= 1e-5
    assert first.metrics["onnx_max_abs_diff"] == first.onnx_max_abs_diff
    for prefix in ("holdout", "baseline/ppo", "baseline/fixed_1x", "baseline/rule"):
        for key in ("sharpe", "sortino", "max_drawdown", "cvar_bar", "cvar_day", "turnover"):
            assert np.isfinite(first.metrics[f"{prefix}/{key}"]), f"{prefix}/{key}"
    assert first.metrics["eval/ann_factor"] == pytest.approx(8766.0)  # hourly bars
    assert first.metrics["baseline/fixed_1x/mean_multiplier"] == 1.0
    assert first.params["arm"] in list(demo_inputs[2].columns)
    assert [g.name for g in first.gates] == [
        "cvar_cut_vs_constant_lower_bound",
        "cvar_cut_vs_constant_lower_bound_confirmation",
        "cvar_cut_vs_vol_target_lower_bound",
        "cvar_cut_vs_vol_target_lower_bound_confirmation",
        "sharpe_vs_constant",
        "sharpe_positive",
        "onnx_max_abs_diff",
    ]
    # the same-leverage baselines really are at the model's mean leverage
    assert first.metrics["baseline/constant/mean_multiplier"] == pytest.approx(
        first.metrics["holdout/mean_multiplier"], rel=0.05
    )
    m = first.metrics
    for base in ("constant", "vol_target"):
        for key in (f"lift/cvar_cut_vs_{base}", f"confirm/lift/cvar_cut_vs_{base}"):
            assert m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"]
        gates = {g.name: g for g in first.gates}
        conf = gates[f"cvar_cut_vs_{base}_lower_bound_confirmation"]
        assert conf.span == "confirm"
        assert conf.value == pytest.approx(m[f"confirm/lift/cvar_cut_vs_{base}_ci_low"] * 1e4)
    for name in ("equity_curves", "lambda_trajectory_plot", "lambda_trajectory"):
        assert first.artifacts[name].stat().st_size > 0
    traj = pd.read_csv(first.artifacts["lambda_trajectory"])
    assert len(traj) == 2 and {"lambda", "var", "cvar", "bound"} <= set(traj.columns)
    table = pd.read_csv(first.artifacts["holdout_metrics"])
    assert table["sizer"].tolist() == list(SIZERS)

    # The clamp is inside the graph: absurd inputs still give multipliers in [0.1, 2.0].
    sess = ort.InferenceSession(str(first.onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(0, 1e6, (64, len(FEATURE_NAMES) + 1)).astype(np.float32)
    out = sess.run(["multiplier"], {"observation": x})[0]
    assert out.shape == (64, 1) and out.dtype == np.float32
    assert out.min() >= np.float32(0.1) and out.max() <= np.float32(2.0)

    # Same seed and data -> the same evaluation figures, to the last bit.
    again = _train(demo_inputs, tmp_path / "b")
    assert first.deterministic_metrics() == again.deterministic_metrics()
    pd.testing.assert_frame_equal(traj, pd.read_csv(again.artifacts["lambda_trajectory"]))


def _table(signal: list[int], ret: list[float], symbol: str = "A") -> pd.DataFrame:
    n = len(signal)
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"),
            "symbol": symbol,
            SIGNAL_COLUMN: np.asarray(signal, np.float32),
            NEXT_RETURN_COLUMN: ret,
        }
    )


def test_run_sizer_by_hand() -> None:
    t = _table([1, 1, -1], [0.01, -0.02, 0.03])
    run = run_sizer(t, [2.0, 0.5, 1.0], cost=0.001)
    # positions 2, 0.5, -1: P&L 0.02 - 0.002, -0.01 - 0.0015, -0.03 - 0.0015
    np.testing.assert_allclose(run.returns, [0.018, -0.0115, -0.0315])
    with pytest.raises(ValueError):
        run_sizer(t, [2.5, 1.0, 1.0], cost=0.0)
    # two symbols on the same stamps are averaged (equal weight), each starting flat
    two = pd.concat([t, _table([1, 1, 1], [0.0, 0.0, 0.0], "B")], ignore_index=True)
    run2 = run_sizer(two, np.ones(6), cost=0.0)
    np.testing.assert_allclose(run2.returns, [0.005, -0.01, -0.015])


def test_rule_sizer_uses_only_the_past() -> None:
    rng = np.random.default_rng(4)
    n = 200
    t = _table(list(rng.choice([-1, 0, 1], n)), list(rng.normal(0, 0.01, n)))
    base = rule_multipliers(t, window=20, scale=1.0, cost=0.0)
    assert np.all((base >= 0.1) & (base <= 2.0))
    assert np.all(base[:20] == 1.0) and base[20] != 1.0  # 20 realised bars needed
    changed = t.copy()
    changed.loc[150:, NEXT_RETURN_COLUMN] = 0.05  # rewrite the future from bar 150 on
    after = rule_multipliers(changed, window=20, scale=1.0, cost=0.0)
    np.testing.assert_array_equal(base[:151], after[:151])
    assert not np.array_equal(base[151:], after[151:])


def test_select_arm_picks_the_profitable_arm_on_train() -> None:
    rng = np.random.default_rng(5)
    n = 300
    ret = rng.normal(0, 0.01, n)
    t = _table([0] * n, list(ret))
    t["good"] = np.sign(ret).astype(np.int8)  # peeks at the answer, so it must win
    t["bad"] = -t["good"]
    t["flat"] = 0
    arm, scores = select_arm(t, ["bad", "flat", "good"], cost=0.0, ann_factor=1.0)
    assert arm == "good" and scores["good"] > scores["flat"] > scores["bad"]


def test_bandit_choice_picks_the_chosen_arms_signal() -> None:
    from pipelines.models.sizer.train import _apply_bandit_choice

    t = _table([1, 1, 1, 1], [0.0] * 4)
    t["a"] = np.int8(1)
    t["b"] = np.int8(-1)
    choice = t[["ts", "symbol"]].iloc[[1, 3]].assign(arm=["b", "a"])
    sig = _apply_bandit_choice(t.assign(**{SIGNAL_COLUMN: t["a"].astype(np.float32)}), choice)
    # rows without a choice keep the default arm's signal; row 1 follows arm b
    np.testing.assert_array_equal(sig.to_numpy(), [1, -1, 1, 1])


def test_the_envs_of_a_rollout_share_one_observation_array(
    demo_inputs: tuple[pd.DataFrame, ...],
) -> None:
    """n_envs copies of the training span per PPO run were 150 MB on the demo."""
    from pipelines.models.sizer.train import make_env, prepare_data

    bars, features, signals = demo_inputs
    cfg = SizerConfig.model_validate(TINY)
    data = prepare_data(bars, features, signals, cfg)
    envs = make_env(data, cfg).envs
    first = envs[0].unwrapped._obs
    assert first.dtype == np.float32 and first.flags.c_contiguous
    assert all(e.unwrapped._obs is first for e in envs[1:])


def test_training_leaves_no_sb3_log_folders(
    demo_inputs: tuple[pd.DataFrame, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SB3 makes an (empty) ``SB3-<timestamp>`` folder per ``learn`` unless given a logger."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    _train(demo_inputs, tmp_path / "out")
    assert [p.name for p in scratch.iterdir() if p.name.startswith("SB3-")] == []
