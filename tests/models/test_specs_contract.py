"""One contract over every model of the spec list: deterministic per seed (also when the
models train concurrently on threads), finite outputs of the shapes its spec declares, ONNX
parity, and the gate names its docs document (``tests/models/spec_contract.py``, which a model
added from outside the package passes too: ``test_adding_a_model.py``)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from spec_contract import (
    ROOT,
    check_candidates,
    check_interface,
    check_parity_and_gates,
    check_spec,
)

from configs import Settings, load_config
from pipelines.data.synthetic import generate_bars
from pipelines.features import featurize
from pipelines.models.base import ModelResult, TrainInputs, run_trainer
from pipelines.models.specs import MODEL_NAMES, SPECS
from pipelines.seeding import Streams
from pipelines.strategies import compute_signals

TINY = ROOT / "tests" / "e2e" / "tiny.yaml"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_config(TINY, overrides={"metalabel.n_estimators": 30, "metalabel.n_bootstrap": 60})


@pytest.fixture(scope="module")
def inputs(settings: Settings) -> TrainInputs:
    bars = generate_bars(settings.data.synthetic, settings.seed)
    return TrainInputs(bars, featurize(bars).frame, compute_signals(bars))


def _train(name: str, inputs: TrainInputs, settings: Settings, out: Path) -> ModelResult:
    spec = SPECS[name]
    return run_trainer(
        spec,
        inputs,
        spec.config(settings),
        Streams(settings.seed).child(name),
        out / name,
        settings.training.parity_tolerance,
    )


@pytest.fixture(scope="module")
def sequential(
    inputs: TrainInputs, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ModelResult]:
    out = tmp_path_factory.mktemp("sequential")
    return {name: _train(name, inputs, settings, out) for name in MODEL_NAMES}


@pytest.fixture(scope="module")
def concurrent(
    inputs: TrainInputs, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ModelResult]:
    out = tmp_path_factory.mktemp("concurrent")
    with ThreadPoolExecutor(max_workers=len(MODEL_NAMES)) as pool:
        futures = {n: pool.submit(_train, n, inputs, settings, out) for n in MODEL_NAMES}
        return {n: f.result() for n, f in futures.items()}


def test_registry_lists_every_model_once() -> None:
    assert MODEL_NAMES == ("regime", "bandit", "sizer", "metalabel")
    for spec in SPECS.values():
        assert all(dep in SPECS and dep != spec.name for dep in spec.after)
        assert spec.baselines, f"{spec.name} names no baseline"
        check_spec(spec)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_concurrent_training_is_identical_to_sequential(
    name: str, sequential: dict[str, ModelResult], concurrent: dict[str, ModelResult]
) -> None:
    a, b = sequential[name], concurrent[name]
    assert a.deterministic_metrics() == pytest.approx(
        b.deterministic_metrics(), nan_ok=True, rel=0, abs=0
    )
    assert a.onnx_path.read_bytes() == b.onnx_path.read_bytes()
    assert _gate_dicts(a) == _gate_dicts(b)


def _gate_dicts(result: ModelResult) -> list[dict[str, object]]:
    """Gates as dicts with NaN spelt out (two NaN floats never compare equal)."""
    return [
        {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in g.as_dict().items()}
        for g in result.gates
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_outputs_are_finite_with_documented_shapes(
    name: str, sequential: dict[str, ModelResult], inputs: TrainInputs
) -> None:
    check_interface(SPECS[name], sequential[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parity_holds_and_gates_are_the_documented_ones(
    name: str, sequential: dict[str, ModelResult], settings: Settings
) -> None:
    check_parity_and_gates(SPECS[name], sequential[name], settings.training.parity_tolerance)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_importance_and_tree_shap_go_with_the_result(
    name: str, sequential: dict[str, ModelResult]
) -> None:
    """Every trainer that says how to score its graph gets permutation importance; one whose
    fitted model is a LightGBM one gets TreeSHAP on the same rows too: metrics, table, plot."""
    result, trainer = sequential[name], SPECS[name].make_trainer()
    if not hasattr(trainer, "importance_inputs"):
        return
    assert result.artifacts["importance_plot"].exists()
    tree = getattr(trainer, "tree_model", None)
    shap_keys = [k for k in result.metrics if k.startswith("shap/")]
    if tree is None:
        assert not shap_keys and "shap" not in result.artifacts
        return
    table = pd.read_csv(result.artifacts["shap"])
    assert result.artifacts["shap_plot"].exists()
    assert len(shap_keys) == 3 * len(table) and (table["importance"] >= 0).all()
    assert table["importance"].max() > 0
    assert "time/shap_seconds" in result.metrics


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_spec_names_candidates_exactly_when_its_trainer_has_a_champion_stage(
    name: str,
) -> None:
    check_candidates(SPECS[name])


def test_a_short_history_is_a_skip_with_the_minimum_named(inputs: TrainInputs) -> None:
    short = inputs.features.groupby("symbol").head(300)
    for spec in SPECS.values():
        reason = spec.skip_reason(short)
        if spec.min_rows > 300:
            assert reason is not None and f"{spec.min_rows:,}" in reason and "got 300" in reason
    assert all(spec.skip_reason(inputs.features) is None for spec in SPECS.values())


def test_seed_streams_differ_by_name_and_not_by_order() -> None:
    root = Streams(7)
    a = root.child("bandit").seed("network")
    assert a == Streams(7).child("bandit").seed("network")
    assert a != root.child("sizer").seed("network") != root.child("bandit").seed("other")
    assert Streams(8).child("bandit").seed("network") != a
    x = root.numpy("x").normal(size=3)
    np.testing.assert_array_equal(x, Streams(7).numpy("x").normal(size=3))


def test_features_frame_is_the_shared_input(inputs: TrainInputs) -> None:
    assert isinstance(inputs.features, pd.DataFrame)
    assert inputs.signals.index.equals(inputs.bars.index)


@pytest.mark.parametrize("name", ["regime", "bandit", "metalabel"])
def test_trainers_never_touch_torchs_global_generator(
    name: str, inputs: TrainInputs, settings: Settings, tmp_path: Path
) -> None:
    """Concurrent reproducibility rests on this: SB3 (the sizer) is the only user of torch's
    global generator, so any other trainer drawing from it would shift the sizer's draws."""
    import torch

    torch.manual_seed(123)
    before = torch.get_rng_state()
    _train(name, inputs, settings, tmp_path)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_an_interrupt_stops_each_training_inside_its_fit(
    name: str, inputs: TrainInputs, settings: Settings
) -> None:
    """Ctrl-C sets ``STOP``; every trainer's own loop (epochs, PPO steps, walk-forward folds)
    must raise at its next step instead of training to the end on its thread."""
    from pipelines.interrupt import STOP, StopRequested

    spec = SPECS[name]
    cfg, streams = spec.config(settings), Streams(settings.seed).child(name)
    trainer = spec.make_trainer()
    data = trainer.prepare(inputs, cfg, streams)
    STOP.set()
    try:
        with pytest.raises(StopRequested):
            trainer.fit(data, cfg, streams)
    finally:
        STOP.clear()
