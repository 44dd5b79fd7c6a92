"""The contract every model of the spec list keeps, read from its spec: the shipped models
(``test_specs_contract.py``) and one added from a test package (``test_adding_a_model.py``)
are held to the same checks, so a new model needs no line of these tests."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np

from pipelines.export.onnx import make_session, run
from pipelines.models.base import ModelResult, ModelSpec

ROOT = Path(__file__).resolve().parents[2]
#: A row of a gate table: ``| `model` | `gate` | ...``.
GATE_ROW = re.compile(r"^\| `(\w+)` \| `(\w+)` \|", flags=re.M)


def docs_page(spec: ModelSpec) -> Path:
    """The file the spec's ``docs`` names (``path#anchor``, from the repository root)."""
    return ROOT / spec.docs.partition("#")[0]


def documented_gates(spec: ModelSpec) -> list[str]:
    """The spec's gates, in order, from the gate table in docs/models.md and in its own docs
    page (a model documents them in either)."""
    pages = dict.fromkeys([ROOT / "docs" / "models.md", docs_page(spec)])
    return [
        gate
        for page in pages
        for model, gate in GATE_ROW.findall(page.read_text(encoding="utf-8"))
        if model == spec.name
    ]


def check_spec(spec: ModelSpec) -> None:
    """What a spec promises without training: its docs page (and anchor) exists and documents
    its gates, its trainer resolves to a class with the four stages, its shapes are sane."""
    page = docs_page(spec)
    assert page.is_file(), f"{spec.name}: docs page {spec.docs} is missing"
    _, _, anchor = spec.docs.partition("#")
    if anchor:
        headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
        slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
        assert anchor in slugs, f"{spec.name}: {spec.docs}: no heading #{anchor}"
    assert documented_gates(spec), f"{spec.name}: no gate table rows in {spec.docs}"
    cls = type(spec.make_trainer())
    for stage in ("prepare", "fit", "evaluate", "export", "extras"):
        assert callable(getattr(cls, stage, None)), f"{spec.name}: trainer has no {stage}"
    assert spec.input_width > 0 and spec.output_shapes
    assert 0 <= spec.one_hot_inputs <= spec.input_width


def check_candidates(spec: ModelSpec) -> None:
    """A spec names candidates exactly when its trainer runs a champion stage: the flow reads
    the live champion of the slots with candidates only."""
    module, _, name = spec.trainer.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert hasattr(cls, "challenge") == bool(spec.candidates), spec.name
    assert len(set(spec.candidates)) == len(spec.candidates), spec.name


def check_interface(spec: ModelSpec, result: ModelResult) -> None:
    """The exported ONNX takes ``[N, input_width]`` and gives the spec's output shapes per
    row, finite on valid rows (the one-hot columns, where there are any, hold one 1)."""
    assert result.model == spec.name
    assert result.input_shape == ["N", spec.input_width]
    x = spec.sample_input(17, np.random.default_rng(0))
    outputs = run(make_session(result.onnx_path), x)
    assert [o.shape[1:] for o in outputs] == list(spec.output_shapes)
    for o in outputs:
        assert o.shape[0] == 17 and np.isfinite(o).all()


def check_parity_and_gates(spec: ModelSpec, result: ModelResult, tolerance: float) -> None:
    """Parity within the tolerance, and the gates its docs document, in that order, the
    parity gate last; every gate says in words what it asks."""
    assert 0 <= result.onnx_max_abs_diff <= tolerance
    assert [g.name for g in result.gates] == documented_gates(spec)
    parity = result.gates[-1]
    assert parity.name == "onnx_max_abs_diff" and parity.passed
    for gate in result.gates:
        assert gate.passed == (np.isfinite(gate.value) and gate.passed)
        assert gate.direction in (">=", "<=", ">", "<") and gate.description
