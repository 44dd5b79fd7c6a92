"""The spec list: one :class:`ModelSpec` per model. Everything that loops over models
(the training flow, MLflow logging, the report, the benchmarks, the contract tests) loops over
:data:`SPECS`; adding a model is adding its package and one entry here.

Importing this module imports every trainer (torch, SB3, LightGBM): only training code does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.data.precheck import MIN_FEATURE_ROWS
from pipelines.evaluation import gates
from pipelines.models.bandit.train import BanditTrainer
from pipelines.models.base import ModelResult, ModelSpec, TrainInputs, run_trainer
from pipelines.models.champion import Champion
from pipelines.models.metalabel.train import MetaLabelTrainer
from pipelines.models.regime.train import RegimeTrainer
from pipelines.models.sizer.train import SizerTrainer
from pipelines.seeding import Streams

_ALL = (
    ModelSpec(
        name="regime",
        section="regime",
        trainer=RegimeTrainer,
        gate_rule=gates.regime_gates,
        baselines=("majority", "two_input_logistic", "persistence"),
        description="P(TREND_UP, TREND_DOWN, RANGE, PANIC) from the 43 features, with BOCD "
        "changepoint probability and split-conformal sets",
        min_rows=MIN_FEATURE_ROWS["regime"],
    ),
    ModelSpec(
        name="bandit",
        section="bandit",
        trainer=BanditTrainer,
        gate_rule=gates.bandit_gates,
        baselines=("best_arm", "regime_arm", "uniform", "beta_ts"),
        description="expected net reward of each of the 12 strategy arms from the 43 features "
        "(NeuralLinear); the bot trades the argmax of the safe scores",
        min_rows=MIN_FEATURE_ROWS["bandit"],
    ),
    ModelSpec(
        name="sizer",
        section="sizer",
        trainer=SizerTrainer,
        gate_rule=gates.sizer_gates,
        baselines=("constant", "vol_target", "fixed_1x", "rule", "ppo"),
        description="position multiplier in [0.1, 2.0] from the features and the arm's signal "
        "(PPO with a CVaR constraint), on the arm stream the bot trades",
        after=("bandit",),
        min_rows=MIN_FEATURE_ROWS["sizer"],
    ),
    ModelSpec(
        name="metalabel",
        section="metalabel",
        trainer=MetaLabelTrainer,
        gate_rule=gates.metalabel_gates,
        baselines=("base_rate", "unfiltered_arm"),
        description="calibrated P(the arm's trade is profitable net of costs) from the 43 "
        "features and the arm; filters trades below the chosen threshold",
        min_rows=MIN_FEATURE_ROWS["metalabel"],
    ),
)

#: name -> spec, in training order.
SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in _ALL}
MODEL_NAMES: tuple[str, ...] = tuple(SPECS)


def train_one(
    spec: ModelSpec,
    bars: pd.DataFrame,
    features: pd.DataFrame,
    cfg: Any,
    seed: int,
    out_dir: Path,
    signals: pd.DataFrame | None = None,
    parity_tolerance: float = 1e-5,
    upstream: dict[str, ModelResult] | None = None,
    champions: Mapping[str, Champion] | None = None,
) -> ModelResult:
    """One model outside a flow (tests, benchmarks), from the root seed as the flow does.

    ``champions`` turns on the champion stage (a slot missing from it: the bot's fallback);
    None judges the model alone."""
    if signals is None:
        from pipelines.strategies import compute_signals

        signals = compute_signals(bars)
    inputs = TrainInputs(bars, features, signals, upstream or {}, champions=champions)
    streams = Streams(seed).child(spec.name)
    return run_trainer(spec, inputs, cfg, streams, Path(out_dir), parity_tolerance)
