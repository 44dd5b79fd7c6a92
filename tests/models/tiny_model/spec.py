"""The tiny model's one spec entry. A shipped model's entry is one more ``ModelSpec`` in
``_ALL`` of ``pipelines/models/specs.py``; from outside the package it goes through
:func:`pipelines.models.specs.register`, the same path those entries take."""

from __future__ import annotations

from pipelines.models.base import ModelSpec
from tiny_model.trainer import TinyConfig, tiny_gates

SPEC = ModelSpec(
    name="tiny",
    section="tiny",
    trainer="tiny_model.trainer:TinyTrainer",
    gate_rule=tiny_gates,
    baselines=("zero",),
    description="ridge forecast of the next bar's return from the 43 features",
    input_width=43,
    output_shapes=((1,),),
    docs="tests/models/tiny_model/README.md",
    min_rows=100,
    default_config=TinyConfig,
)
