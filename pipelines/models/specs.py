"""The spec list: one :class:`ModelSpec` per model. Everything that loops over models
(the training flow, the pre-check, MLflow logging, the report, the benchmarks, the contract
tests) loops over :data:`SPECS`; adding a model is adding its package, one entry here and its
docs page (docs/models.md, "Adding a model").

Importing this module imports no trainer: a spec names its trainer as ``"module:Class"`` and
the first training imports it, so the pre-check reads the minimum history from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from configs.settings import PARITY_TOLERANCE
from pipelines.evaluation import gates
from pipelines.models.base import ModelResult, ModelSpec, TrainInputs, run_trainer
from pipelines.seeding import Streams

if TYPE_CHECKING:
    from pipelines.models.champion import Champion

_ALL = (
    ModelSpec(
        name="regime",
        section="regime",
        trainer="pipelines.models.regime.train:RegimeTrainer",
        gate_rule=gates.regime_gates,
        baselines=("majority", "two_input_logistic", "persistence"),
        description="P(TREND_UP, TREND_DOWN, RANGE, PANIC) from the 43 features, with BOCD "
        "changepoint probability and conformal sets (adaptive conformal inference by default)",
        title="regime classifier",
        input_width=43,
        output_shapes=((), (4,)),
        docs="docs/regime.md",
        min_rows=1000,
        candidates=("classifier", "persistence"),
    ),
    ModelSpec(
        name="bandit",
        title="strategy bandit",
        section="bandit",
        trainer="pipelines.models.bandit.train:BanditTrainer",
        gate_rule=gates.bandit_gates,
        baselines=("best_arm", "regime_arm", "uniform", "beta_ts"),
        description="expected net reward of each of the 12 strategy arms from the 43 features "
        "(NeuralLinear); the bot trades the argmax of the safe scores",
        input_width=43,
        output_shapes=((12,),),
        docs="docs/bandit.md",
        min_rows=500,
        candidates=("neural_linear", "best_arm", "rule_regime_arm"),
    ),
    ModelSpec(
        name="sizer",
        title="CVaR-PPO sizer",
        section="sizer",
        trainer="pipelines.models.sizer.train:SizerTrainer",
        gate_rule=gates.sizer_gates,
        baselines=("constant", "vol_target", "fixed_1x", "rule", "ppo"),
        description="position multiplier in [0.1, 2.0] from the features and the arm's signal "
        "(PPO with a CVaR constraint), on the arm stream the bot trades",
        input_width=44,
        output_shapes=((1,),),
        docs="docs/sizer.md",
        after=("bandit",),
        min_rows=500,
        candidates=("cvar_ppo", "vol_target"),
    ),
    ModelSpec(
        name="metalabel",
        title="meta-labeler",
        section="metalabel",
        trainer="pipelines.models.metalabel.train:MetaLabelTrainer",
        gate_rule=gates.metalabel_gates,
        baselines=("base_rate", "unfiltered_arm"),
        description="calibrated P(the arm's trade is profitable net of costs) from the 43 "
        "features and the arm; filters trades below the chosen threshold",
        input_width=55,
        output_shapes=((1,),),
        docs="docs/models.md#the-meta-labeler",
        min_rows=1000,
        one_hot_inputs=12,
        candidates=("lightgbm", "per_arm_filter"),
    ),
)

#: name -> spec, in training order (the flow trains, and the report lists, in this order).
SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to :data:`SPECS` (every entry above comes in this way), refusing a spec the
    flow could not run: a name already taken, an ``after`` that is not registered before it, a
    trainer not named ``"module:Class"``, an interface with no width or a one-hot wider than it.
    The trainer is not imported here (that waits for its first training)."""
    problems = []
    if spec.name in SPECS:
        problems.append(f"the name {spec.name!r} is taken")
    problems += [
        f"it runs after {u!r}, which is not registered" for u in spec.after if u not in SPECS
    ]
    module, _, cls = spec.trainer.partition(":")
    if not module or not cls:
        problems.append(f"trainer {spec.trainer!r} is not 'module:Class'")
    if spec.input_width <= 0 or not 0 <= spec.one_hot_inputs <= spec.input_width:
        problems.append(
            f"input width {spec.input_width} with {spec.one_hot_inputs} one-hot columns"
        )
    if not spec.output_shapes or not spec.docs:
        problems.append("it names no output shapes or no docs page")
    if problems:
        raise ValueError(f"model spec {spec.name!r} refused: " + "; ".join(problems))
    SPECS[spec.name] = spec
    return spec


for _spec in _ALL:
    register(_spec)

#: The shipped models' names, in training order.
MODEL_NAMES: tuple[str, ...] = tuple(SPECS)


def train_one(
    spec: ModelSpec,
    bars: pd.DataFrame,
    features: pd.DataFrame,
    cfg: Any,
    seed: int,
    out_dir: Path,
    signals: pd.DataFrame | None = None,
    parity_tolerance: float = PARITY_TOLERANCE,
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
