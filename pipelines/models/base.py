"""The seam every model plugs into: what a trainer receives, the stages it implements, what
it hands back.

A trainer is four stages (``prepare -> fit -> evaluate -> export``), each a method of a
small class that follows :class:`Trainer`. :func:`run_trainer` runs them in order and then
judges the result with the model's gate rule from ``pipelines.evaluation.gates`` plus the
shared ONNX parity gate: trainers measure, gates judge. ``pipelines.models.specs`` lists
one :class:`ModelSpec` per model; the flow, the MLflow logging, the report and the
benchmarks iterate over it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from pipelines.evaluation.gates import Gate, GateRule, evaluate
from pipelines.export.onnx import OnnxExport
from pipelines.interrupt import checkpoint, training
from pipelines.models.champion import FALLBACK, Champion, ChampionDecision
from pipelines.seeding import Streams

logger = logging.getLogger(__name__)


class NotTrainable(ValueError):
    """The data cannot support this model (too little history, a class that never occurs):
    an expected outcome that skips the model with one line, not a crash."""


@dataclass(frozen=True)
class TrainInputs:
    """What every trainer may read; computed once per run and shared.

    ``bars`` is the bar contract, ``features`` is ``featurize(bars).frame`` (``ts``,
    ``symbol``, the 43 features), ``signals`` the 12 arms' signals row-aligned with ``bars``
    (``compute_signals(bars)``). ``upstream`` holds the results of the models a spec runs
    after (its ``after``), by name.
    """

    bars: pd.DataFrame
    features: pd.DataFrame
    signals: pd.DataFrame
    upstream: Mapping[str, ModelResult] = field(default_factory=dict)
    events: pd.DataFrame | None = None  # the bot's joined decisions + outcomes (docs/events.md)
    # what is live per slot (pipelines/models/champion.py); None: no champion stage (tests and
    # benchmarks that judge a model alone), a slot missing from the map: the bot's fallback
    champions: Mapping[str, Champion] | None = None


@dataclass
class Evaluation:
    """A trainer's measurements on held-out data.

    ``metrics`` holds every figure and its baselines under flat, prefixed keys
    (``holdout/…``, ``baseline/<name>/…``, ``lift/…`` with ``_ci_low``/``_ci_high``);
    ``artifacts`` maps a short name to a file under the model's folder (plots as PNG,
    tables as CSV or JSON); ``params`` are the resolved settings worth recording.
    """

    metrics: dict[str, float]
    artifacts: dict[str, Path] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def is_timing(key: str) -> bool:
    """Whether a metric is a wall-clock measurement (differs run to run by nature)."""
    return key.startswith("time/") or "seconds" in key or key.endswith("steps_per_s")


@dataclass
class ModelResult:
    """A trained, evaluated, exported and judged model."""

    model: str
    export: OnnxExport
    metrics: dict[str, float]
    gates: list[Gate]
    artifacts: dict[str, Path] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    champion: ChampionDecision | None = None

    @property
    def passed(self) -> bool:
        """Whether this run ships something for the slot: with a champion stage, whether the
        challenger replaces the champion; without one, whether the model passed its gates."""
        if self.champion is not None:
            return self.champion.promote
        return all(g.passed for g in self.gates)

    @property
    def shipped_export(self) -> OnnxExport:
        """The ONNX this run would publish: the challenger's when a champion stage chose one,
        else the trained model's."""
        if self.champion is not None and self.champion.challenger is not None:
            return self.champion.challenger.export
        return self.export

    @property
    def publish_gates(self) -> list[Gate]:
        """The gates the publish decision rests on (the champion stage's, then the model's own
        gates as evidence), in the order the report and the manifest show them."""
        if self.champion is None:
            return list(self.gates)
        return [*self.champion.gates, *self.gates]

    def deterministic_metrics(self) -> dict[str, float]:
        """Every metric but wall-clock timings: equal for equal inputs, config and seed."""
        return {k: v for k, v in self.metrics.items() if not is_timing(k)}

    @property
    def onnx_path(self) -> Path:
        return self.export.path

    @property
    def onnx_max_abs_diff(self) -> float:
        return self.export.max_abs_diff

    @property
    def input_names(self) -> list[str]:
        return self.export.graph.input_names

    @property
    def input_shape(self) -> list[int | str]:
        """``["N", width]``: any batch size, a fixed feature width."""
        return ["N", self.export.graph.input_width]

    @property
    def output_names(self) -> list[str]:
        return self.export.graph.output_names

    @property
    def opset(self) -> int | None:
        return self.export.graph.opset


class Trainer(Protocol):
    """The four stages of a model. State flows through the return values only.

    ``prepare`` builds the model's data and its time splits from the shared inputs; ``fit``
    trains on the training span; ``evaluate`` measures the model and its baselines on the
    held-out span and writes plots and tables under ``out_dir``; ``export`` writes the ONNX
    graph and measures its parity against the framework's own output.
    """

    def prepare(self, inputs: TrainInputs, cfg: Any, streams: Streams) -> Any: ...

    def fit(self, data: Any, cfg: Any, streams: Streams) -> Any: ...

    def evaluate(
        self, data: Any, fitted: Any, cfg: Any, streams: Streams, out_dir: Path
    ) -> Evaluation: ...

    def export(self, data: Any, fitted: Any, cfg: Any, out_dir: Path) -> OnnxExport: ...

    def extras(self, data: Any, fitted: Any) -> dict[str, Any]:
        """What downstream consumers of this run may reuse (e.g. the bandit's choices)."""
        ...


class NoExtras:
    """Mixin for trainers that hand nothing downstream."""

    def extras(self, data: Any, fitted: Any) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry: its name, config section, trainer, gates and baselines.

    ``after`` names models whose results this one reads from ``TrainInputs.upstream``;
    ``min_rows`` is the fewest labelled feature rows per symbol it can train on (a shorter
    history skips the model with one line instead of failing it).
    """

    name: str
    section: str
    trainer: type
    gate_rule: GateRule
    baselines: tuple[str, ...]
    description: str
    after: tuple[str, ...] = ()
    min_rows: int = 0

    def config(self, settings: Any) -> Any:
        return getattr(settings, self.section)

    def make_trainer(self) -> Trainer:
        trainer: Trainer = self.trainer()
        return trainer

    def skip_reason(self, features: pd.DataFrame) -> str | None:
        """Why this model cannot train on ``features`` (too little history), or None."""
        if self.min_rows <= 0:
            return None
        counts = features.groupby("symbol").size() if len(features) else pd.Series(dtype=int)
        if counts.empty:
            return f"{self.name}: needs >= {self.min_rows:,} feature rows per symbol, got none"
        short = counts[counts < self.min_rows]
        if len(short) == len(counts):
            worst = short.sort_values().index[0]
            return (
                f"{self.name}: needs >= {self.min_rows:,} feature rows per symbol, "
                f"got {int(short.max()):,} (shortest: {worst}, {int(short.min()):,})"
            )
        return None


def run_trainer(
    spec: ModelSpec,
    inputs: TrainInputs,
    cfg: Any,
    streams: Streams,
    out_dir: Path,
    parity_tolerance: float,
) -> ModelResult:
    """prepare -> fit -> evaluate -> export, then the gates; returns the judged result."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = spec.make_trainer()
    with training():
        t0 = time.perf_counter()
        checkpoint()
        data = trainer.prepare(inputs, cfg, streams)
        t1 = time.perf_counter()
        checkpoint()
        fitted = trainer.fit(data, cfg, streams)
        t2 = time.perf_counter()
        checkpoint()
        evaluation = trainer.evaluate(data, fitted, cfg, streams, out_dir)
        t3 = time.perf_counter()
        checkpoint()
        export = trainer.export(data, fitted, cfg, out_dir)
        t4 = time.perf_counter()
    metrics = dict(evaluation.metrics)
    metrics["onnx_max_abs_diff"] = export.max_abs_diff
    metrics.update(
        {
            "time/prepare_seconds": t1 - t0,
            "time/fit_seconds": t2 - t1,
            "time/evaluate_seconds": t3 - t2,
            "time/export_seconds": t4 - t3,
        }
    )
    gates = evaluate(spec.gate_rule, metrics, cfg, export.max_abs_diff, parity_tolerance)
    artifacts = dict(evaluation.artifacts)
    extras = trainer.extras(data, fitted)
    decision = None
    stage = getattr(trainer, "challenge", None)
    if inputs.champions is not None and stage is not None:
        champion = inputs.champions.get(spec.name, FALLBACK)
        decision = stage(
            data, fitted, cfg, streams, out_dir, export, gates, champion, parity_tolerance
        )
        metrics.update(decision.metrics)
        table = out_dir / "champion.csv"
        decision.table.to_csv(table, index=False, float_format="%.6g")
        artifacts["champion_table"] = table
        if decision.promote:
            extras.update(decision.extras)
        logger.info("%s: %s", spec.name, decision.reason)
    logger.info(
        "%s: %s in %.1fs (parity %.2e)",
        spec.name,
        "gates passed" if all(g.passed for g in gates) else "gates FAILED",
        t4 - t0,
        export.max_abs_diff,
    )
    return ModelResult(
        model=spec.name,
        export=export,
        metrics=metrics,
        gates=gates,
        artifacts=artifacts,
        params=evaluation.params,
        extras=extras,
        champion=decision,
    )
