"""Adding a model touches its package, one spec entry and its docs page, nothing else: a tiny
model from a test package (``tiny_model/``) is registered through the public path and runs
through the real train -> gate -> ONNX export -> contract checks the shipped models pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from spec_contract import (
    ROOT,
    check_candidates,
    check_interface,
    check_parity_and_gates,
    check_spec,
)

from configs import Settings, load_config
from pipelines.data.precheck import history_skip_reason
from pipelines.data.synthetic import generate_bars
from pipelines.features import featurize
from pipelines.models.base import ModelResult, ModelSpec
from pipelines.models.specs import SPECS, register, train_one

TINY = ROOT / "tests" / "e2e" / "tiny.yaml"
PACKAGE = Path(__file__).resolve().parent / "tiny_model"


@pytest.fixture(scope="module")
def spec() -> Iterator[ModelSpec]:
    from tiny_model.spec import SPEC

    register(SPEC)
    try:
        yield SPECS["tiny"]
    finally:
        del SPECS["tiny"]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_config(TINY)


@pytest.fixture(scope="module")
def trained(
    spec: ModelSpec, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModelResult, object]:
    bars = generate_bars(settings.data.synthetic, settings.seed)
    features = featurize(bars).frame
    out = tmp_path_factory.mktemp("tiny")
    result = train_one(
        spec,
        bars,
        features,
        spec.config(settings),
        settings.seed,
        out,
        parity_tolerance=settings.training.parity_tolerance,
    )
    return result, features


def test_the_spec_list_takes_it_and_every_loop_over_models_sees_it(
    spec: ModelSpec, trained: tuple[ModelResult, object]
) -> None:
    from tasks.champions import challenged_slots
    from tasks.train import plan_models

    _, features = trained
    assert list(SPECS)[-1] == "tiny"
    plan = plan_models(features)  # the flow trains what this plans
    assert "tiny" in plan and plan["tiny"] is None
    assert "tiny" not in challenged_slots()  # no candidates: judged alone
    short = {"A": 50}
    assert "tiny: needs >= 100 feature rows per symbol, got 50" in (
        history_skip_reason(short) or ""
    )
    check_spec(spec)
    check_candidates(spec)


def test_it_trains_gates_exports_and_keeps_the_contract(
    spec: ModelSpec, trained: tuple[ModelResult, object], settings: Settings
) -> None:
    result, _ = trained
    check_interface(spec, result)
    check_parity_and_gates(spec, result, settings.training.parity_tolerance)
    assert [g.name for g in result.gates] == ["mse_vs_zero", "onnx_max_abs_diff"]
    gate = result.gates[0]
    assert gate.value == pytest.approx(
        result.metrics["baseline/zero/mse"] - result.metrics["holdout/mse"]
    )
    assert result.artifacts["holdout_table"].is_file()


def test_a_spec_the_flow_could_not_run_is_refused(spec: ModelSpec) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="the name 'tiny' is taken"):
        register(spec)
    with pytest.raises(ValueError, match=r"runs after 'nothing'.*'module:Class'"):
        register(replace(spec, name="tiny2", after=("nothing",), trainer="tiny_model.trainer"))
    assert "tiny2" not in SPECS


def test_nothing_outside_its_package_names_it() -> None:
    """The shipped code (flow, tasks, pre-check, report, configs) names no model it loops
    over: the tiny model needed no line outside ``tiny_model/``."""
    for folder in ("pipelines", "tasks", "flows", "configs"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "tiny_model" not in text and "TinyTrainer" not in text, path
    named = [
        p.relative_to(ROOT)
        for p in (ROOT / "tests").rglob("*.py")
        if "tiny_model" in p.read_text(encoding="utf-8") and PACKAGE not in p.parents
    ]
    assert named == [Path("tests/models/test_adding_a_model.py")]
