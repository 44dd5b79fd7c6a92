from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch

from configs.settings import load_config
from pipelines.data.synthetic import generate_bars
from pipelines.export.onnx import make_session, run
from pipelines.features import FEATURE_NAMES, featurize
from pipelines.models.bandit import build_dataset
from pipelines.models.bandit.train import forward_mean
from pipelines.models.specs import SPECS, train_one
from pipelines.strategies import ARM_NAMES

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demo_like() -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": 1400})
    bars = generate_bars(cfg, seed=11)
    return bars, featurize(bars).frame


def _cfg():  # tiny budget
    return load_config().bandit.model_copy(
        update={"epochs": 4, "hidden": [128, 64], "n_bootstrap": 60, "patience": 4}
    )


def test_build_dataset_joins_and_drops_incomplete(demo_like) -> None:
    bars, feats = demo_like
    data = build_dataset(bars, feats, _cfg())
    assert data.feature_names == tuple(FEATURE_NAMES)
    assert len(data.frame) == len(feats) - 2 * _cfg().reward_horizon
    assert data.frame[data.reward_columns].notna().all().all()
    assert "true_regime" in data.frame and "proxy_regime" in data.frame


def test_forward_mean_labels_by_hand() -> None:
    ts = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": ["A"] * 4 + ["B"] * 3,
            "ts": list(ts) + list(ts[:3]),
            "r": [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0],
        }
    )
    # each row: itself and the next rows of its own symbol, never the other symbol's
    assert forward_mean(frame, ["r"], 2).ravel().tolist() == [1.5, 2.5, 3.5, 4.0, 15.0, 25.0, 30.0]
    assert forward_mean(frame, ["r"], 3).ravel().tolist() == [2.0, 3.0, 3.5, 4.0, 20.0, 25.0, 30.0]
    assert forward_mean(frame, ["r"], 1).ravel().tolist() == frame["r"].tolist()
    # a frame's own index order is kept (a filtered, non-contiguous index)
    sub = frame.iloc[[0, 1, 2, 4, 5]]
    assert forward_mean(sub, ["r"], 2).ravel().tolist() == [1.5, 2.5, 3.0, 15.0, 20.0]
    with pytest.raises(ValueError, match="sorted by ts"):
        forward_mean(frame.iloc[::-1], ["r"], 2)
    with pytest.raises(ValueError, match="window"):
        forward_mean(frame, ["r"], 0)


@pytest.mark.slow
def test_train_bandit_outcome(demo_like, tmp_path: Path) -> None:
    bars, feats = demo_like
    out = train_one(SPECS["bandit"], bars, feats, _cfg(), seed=3, out_dir=tmp_path / "a")
    assert out.model == "bandit"
    assert out.input_names == ["features"] and out.output_names == ["arm_values"]
    assert out.input_shape == ["N", 43]
    assert out.onnx_max_abs_diff <= 1e-5
    for name in ("arm_choices", "ope_estimates", "ope_table", "thompson", "arms"):
        assert out.artifacts[name].exists() and out.artifacts[name].stat().st_size > 0
    m = out.metrics
    for pol in ("bandit", "bandit_ts", "beta_ts", "best_arm", "uniform"):
        for est in ("ips", "snips", "dr"):
            assert m[f"ope/{pol}/{est}_ci_low"] <= m[f"ope/{pol}/{est}"]
            assert m[f"ope/{pol}/{est}"] <= m[f"ope/{pol}/{est}_ci_high"]
    assert "lift/bandit_vs_best_arm/dr_ci_low" in m
    assert m["truth/oracle_hindsight"] >= m["truth/oracle_regime"] >= m["truth/best_arm"] - 1e-12
    assert m["regret/bandit_vs_oracle_regime"] == pytest.approx(
        m["truth/oracle_regime"] - m["truth/bandit"]
    )
    gates = {g.name: g for g in out.gates}
    key = "lift/bandit_vs_best_arm/exact"
    for name, k, span in (
        ("bandit_lift_lower_bound", key, "test"),
        ("bandit_lift_lower_bound_confirmation", f"confirm/{key}", "confirm"),
    ):
        lift = gates[name]  # the one-sided 95% lower bound of the exact lift, in bps
        assert lift.span == span and lift.unit == "bps" and lift.direction == ">"
        assert lift.value == pytest.approx(m[f"{k}_ci_low"] * 1e4)
        assert lift.estimate == pytest.approx(m[k] * 1e4)
        assert lift.ci_high == pytest.approx(m[f"{k}_ci_high"] * 1e4)
        assert lift.passed == (lift.value > 0.0)
    # the exact lift is the paired difference of every decision's known reward, per span
    hold_value = m["value/bandit/exact"] - m["value/best_arm/exact"]
    assert m[key] == pytest.approx(hold_value, abs=1e-12)
    assert m["confirm/value/bandit/exact"] - m["confirm/value/best_arm/exact"] == pytest.approx(
        m[f"confirm/{key}"], abs=1e-12
    )
    contextual = gates["bandit_lift_vs_regime_arm"]
    assert contextual.value == pytest.approx(m["lift/bandit_vs_regime_arm/exact"] * 1e4)
    assert gates["bandit_lift_vs_regime_arm_confirmation"].span == "confirm"
    # the power figure is read from the exact lift's test-span interval the gate uses
    z = NormalDist().inv_cdf(0.95)
    sd = (m[f"{key}_ci_high"] - m[f"{key}_ci_low"]) / (2 * z) * 1e4
    assert m["power/lift_sd_bps"] == pytest.approx(sd)
    assert 0 < m["power/mde_bps"] and np.isfinite(m["power/dr_mde_bps"])
    assert m["ope/regime_arm/dr"] == m["ope/regime_arm/dr"]
    assert gates["onnx_max_abs_diff"].passed
    table = pd.read_csv(out.artifacts["ope_table"])
    assert {"bandit", "best_arm", "uniform", "lift/bandit"} <= set(table["policy"])
    # the exported graph is the policy: its argmax matches the arm-choice decisions
    x = feats[list(FEATURE_NAMES)].to_numpy(np.float32)[-50:]
    values = run(make_session(out.onnx_path), x)[0]
    assert values.shape == (50, len(ARM_NAMES))
    # same seed, same inputs -> same outcome
    again = train_one(SPECS["bandit"], bars, feats, _cfg(), seed=3, out_dir=tmp_path / "b")
    assert again.metrics.keys() == out.metrics.keys()
    for k, v in out.metrics.items():
        if "seconds" not in k:
            assert again.metrics[k] == pytest.approx(v, rel=0, abs=0), k


@pytest.mark.slow
def test_train_bandit_logged_feedback_and_safe_rule(demo_like, tmp_path: Path) -> None:
    bars, feats = demo_like
    cfg = _cfg().model_copy(update={"training_feedback": "logged", "n_bootstrap": 50})
    out = train_one(SPECS["bandit"], bars, feats, cfg, seed=4, out_dir=tmp_path)
    m = out.metrics
    assert out.params["training_feedback"] == "logged"
    assert 0.0 <= m["holdout/deviation_share"] <= 1.0
    z = NormalDist().inv_cdf(cfg.safety_level) * np.sqrt(cfg.reward_horizon)
    assert m["train/safety_z"] == pytest.approx(z, rel=1e-9)
    # the exported values are conservative advantages: the default arm scores exactly 0
    x = feats[list(FEATURE_NAMES)].to_numpy(np.float32)[-200:]
    values = run(make_session(out.onnx_path), x)[0]
    default = int(m["train/default_arm_index"])
    assert np.all(np.abs(values[:, default]) <= 1e-7)
    assert out.onnx_max_abs_diff <= 1e-5
