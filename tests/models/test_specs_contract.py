"""One contract over every model of the spec list: deterministic per seed (also when the
models train concurrently on threads), finite outputs of the documented shapes, ONNX parity,
and the gate names that docs/models.md documents."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs import Settings, load_config
from pipelines.data.synthetic import generate_bars
from pipelines.export.onnx import make_session, run
from pipelines.features import featurize
from pipelines.models.base import ModelResult, TrainInputs, run_trainer
from pipelines.models.specs import MODEL_NAMES, SPECS
from pipelines.seeding import Streams
from pipelines.strategies import compute_signals

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "e2e" / "tiny.yaml"
#: model -> (input width, output shapes per row)
SHAPES = {
    "regime": (43, [(), (4,)]),
    "bandit": (43, [(12,)]),
    "sizer": (44, [(1,)]),
    "metalabel": (55, [(1,)]),
}


def documented_gates() -> dict[str, list[str]]:
    """``model -> [gate, ...]`` from the gate table in docs/models.md."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    out: dict[str, list[str]] = {}
    for model, gate in re.findall(r"^\| `(\w+)` \| `(\w+)` \|", text, flags=re.M):
        out.setdefault(model, []).append(gate)
    return out


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
    assert set(SHAPES) == set(SPECS)
    for spec in SPECS.values():
        assert all(dep in SPECS and dep != spec.name for dep in spec.after)
        assert spec.baselines, f"{spec.name} names no baseline"


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
    assert [g.as_dict() for g in a.gates] == [g.as_dict() for g in b.gates]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_outputs_are_finite_with_documented_shapes(
    name: str, sequential: dict[str, ModelResult], inputs: TrainInputs
) -> None:
    result = sequential[name]
    width, shapes = SHAPES[name]
    assert result.model == name
    assert result.input_shape == ["N", width]
    x = np.random.default_rng(0).normal(0, 1, (17, width)).astype(np.float32)
    if name == "metalabel":  # the last 12 columns are a one-hot arm
        x[:, 43:] = np.eye(12, dtype=np.float32)[np.arange(17) % 12]
    outputs = run(make_session(result.onnx_path), x)
    assert [o.shape[1:] for o in outputs] == shapes
    for o in outputs:
        assert o.shape[0] == 17 and np.isfinite(o).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parity_holds_and_gates_are_the_documented_ones(
    name: str, sequential: dict[str, ModelResult], settings: Settings
) -> None:
    result = sequential[name]
    assert 0 <= result.onnx_max_abs_diff <= settings.training.parity_tolerance
    assert [g.name for g in result.gates] == documented_gates()[name]
    parity = result.gates[-1]
    assert parity.name == "onnx_max_abs_diff" and parity.passed
    for gate in result.gates:
        assert gate.passed == (np.isfinite(gate.value) and gate.passed)
        assert gate.direction in (">=", "<=", ">", "<") and gate.description


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
