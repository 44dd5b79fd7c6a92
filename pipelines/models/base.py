"""The seam every model plugs into: what a trainer receives, the stages it implements, what
it hands back.

A trainer is four stages (``prepare -> fit -> evaluate -> export``), each a method of a
small class that follows :class:`Trainer`. :func:`run_trainer` runs them in order and then
judges the result with the model's gate rule from ``pipelines.evaluation.gates`` plus the
shared ONNX parity gate: trainers measure, gates judge. ``pipelines.models.specs`` lists
one :class:`ModelSpec` per model; the flow, the MLflow logging, the report, the pre-check and
the benchmarks iterate over it. A spec names its trainer as ``"module:Class"`` and imports it
on first use, so reading the facts of a model (its minimum history, its ONNX interface, its
docs) costs no torch, SB3 or LightGBM import.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.evaluation.gates import Gate, GateRule, evaluate
from pipelines.interrupt import checkpoint, training
from pipelines.seeding import Streams

if TYPE_CHECKING:  # onnxruntime and the champion stage load with the first training only
    from pipelines.evaluation.importance import Importance
    from pipelines.export.onnx import OnnxExport
    from pipelines.models.champion import Champion, ChampionDecision

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


@cache
def _import_trainer(path: str) -> type:
    """The class a spec's ``"module:Class"`` names, imported once per process."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"a trainer is named 'module:Class', got {path!r}")
    trainer: type = getattr(importlib.import_module(module), name)
    return trainer


@dataclass(frozen=True)
class ModelSpec:
    """Every fact about one model that code outside its package needs, in one entry.

    ``trainer`` names the class that follows :class:`Trainer` as ``"module:Class"``; it is
    imported on first use (:meth:`make_trainer`), so the pre-check, the CLI and the report
    read specs without loading torch, SB3 or LightGBM. ``after`` names models whose results
    this one reads from ``TrainInputs.upstream``; ``min_rows`` is the fewest labelled feature
    rows per symbol it can train on (a shorter history skips the model with one line instead
    of failing it). ``input_width`` and ``output_shapes`` are the exported ONNX graph's
    interface (one float32 input of ``[N, input_width]``; each output's shape per row) with
    the 43 own-bar features (configured cross-asset and exogenous columns widen the input by
    their count, inserted after the 43: docs/features.md), and
    ``one_hot_inputs`` how many of the last input columns are a one-hot (the meta-labeler's
    arm), which a valid input row sets to exactly one 1. ``candidates`` are the policies the
    slot's champion stage judges (empty: the model is judged alone), ``baselines`` what its
    gates compare it with, ``docs`` the page that documents it (``path#anchor`` from the
    repository root). ``default_config`` makes the model's settings while ``Settings`` has no
    section for it (a new model's defaults live in its package; a profile can set them once
    ``configs/settings.py`` gives it a section). ``title`` is the model in a few words, as the
    CLI's help names it (empty: the name).
    """

    name: str
    section: str
    trainer: str
    gate_rule: GateRule
    baselines: tuple[str, ...]
    description: str
    input_width: int
    output_shapes: tuple[tuple[int, ...], ...]
    docs: str
    after: tuple[str, ...] = ()
    min_rows: int = 0
    one_hot_inputs: int = 0
    candidates: tuple[str, ...] = ()
    default_config: Callable[[], Any] | None = None
    title: str = ""

    def config(self, settings: Any) -> Any:
        """The model's settings: the profile's section, else the spec's ``default_config``."""
        section = getattr(settings, self.section, None)
        if section is not None:
            return section
        if self.default_config is None:
            raise AttributeError(
                f"settings have no section {self.section!r} for model {self.name!r}, "
                "and its spec names no default_config"
            )
        return self.default_config()

    def make_trainer(self) -> Trainer:
        trainer: Trainer = _import_trainer(self.trainer)()
        return trainer

    def sample_input(self, rows: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        """``rows`` valid inputs for the ONNX graph: standard normal features, and a one-hot
        that cycles through its columns where the interface has one."""
        x = rng.normal(0, 1, (rows, self.input_width)).astype(np.float32)
        if self.one_hot_inputs:
            hot = np.eye(self.one_hot_inputs, dtype=np.float32)
            x[:, self.input_width - self.one_hot_inputs :] = hot[
                np.arange(rows) % self.one_hot_inputs
            ]
        return x

    def skip_reason(self, features: pd.DataFrame) -> str | None:
        """Why this model cannot train on ``features`` (too little history), or None."""
        counts = features.groupby("symbol").size() if len(features) else pd.Series(dtype=int)
        return self.history_reason({str(s): int(n) for s, n in counts.items()})

    def history_reason(self, feature_rows: Mapping[str, int]) -> str | None:
        """Why this model cannot train on symbols with these feature-row counts, or None: the
        one rule behind :meth:`skip_reason` and the pre-check, which counts rows from the
        stored bars before anything is featurized."""
        if self.min_rows <= 0:
            return None
        if not feature_rows:
            return f"{self.name}: needs >= {self.min_rows:,} feature rows per symbol, got none"
        if max(feature_rows.values()) >= self.min_rows:
            return None
        worst = min(sorted(feature_rows), key=lambda s: feature_rows[s])
        return (
            f"{self.name}: needs >= {self.min_rows:,} feature rows per symbol, got "
            f"{max(feature_rows.values()):,} (shortest: {worst}, {feature_rows[worst]:,})"
        )


def _importance(
    spec: ModelSpec,
    trainer: Trainer,
    data: Any,
    fitted: Any,
    cfg: Any,
    streams: Streams,
    export: OnnxExport,
    out_dir: Path,
) -> tuple[Importance, Path, Path, tuple[Importance, Path, Path] | None] | None:
    """Permutation importance of the exported graph on the held-out span, for a trainer that
    says how to score it (``importance_inputs``); its table and plot; and, for a trainer whose
    fitted model is a LightGBM one (``tree_model``), TreeSHAP on the same rows. Not a gate:
    which features carry the value is reported (the run's report, MLflow), never judged."""
    inputs_of = getattr(trainer, "importance_inputs", None)
    if inputs_of is None:
        return None
    from pipelines.evaluation.importance import onnx_predict, permutation_importance
    from pipelines.plots import plot_importance

    inputs = inputs_of(data, fitted, cfg)
    found = permutation_importance(onnx_predict(export.path), inputs, streams.seed("importance"))
    table = found.write(out_dir / "importance.csv")
    title = f"{spec.title or spec.name}: permutation importance, {found.rows:,} held-out rows"
    plot = plot_importance(found.table, out_dir / "importance.png", title, found.what, found.level)
    shap = None
    tree_of = getattr(trainer, "tree_model", None)
    tree = tree_of(fitted) if tree_of is not None else None
    if tree is not None:
        from pipelines.evaluation.importance import tree_shap

        got = tree_shap(tree, inputs, streams.seed("shap"))
        shap_title = f"{spec.title or spec.name}: TreeSHAP, {got.rows:,} held-out rows"
        shap_plot = plot_importance(
            got.table, out_dir / "shap.png", shap_title, got.what, got.level, xlabel=got.what
        )
        shap = (got, got.write(out_dir / "shap.csv"), shap_plot)
    return found, table, plot, shap


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
        checkpoint()
        importance = _importance(spec, trainer, data, fitted, cfg, streams, export, out_dir)
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
    if importance is not None:
        found, table, plot, shap = importance
        metrics.update(found.metrics())
        metrics["time/importance_seconds"] = found.seconds
        artifacts["importance"], artifacts["importance_plot"] = table, plot
        if shap is not None:
            metrics.update(shap[0].metrics("shap"))
            metrics["time/shap_seconds"] = shap[0].seconds
            artifacts["shap"], artifacts["shap_plot"] = shap[1], shap[2]
    extras = trainer.extras(data, fitted)
    decision = None
    stage = getattr(trainer, "challenge", None)
    if inputs.champions is not None and stage is not None:
        from pipelines.models.champion import FALLBACK

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
