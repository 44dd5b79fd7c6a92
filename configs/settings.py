"""The one typed settings model and ``load_config``: file -> environment -> overrides.

Config is built once at the entry point and passed down; nothing reads the environment later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from configs.bandit import BanditConfig
from configs.base import Section
from configs.data import DataConfig
from configs.events import EventsConfig
from configs.metalabel import MetaLabelConfig
from configs.recommendation import RecommendationConfig
from configs.regime import RegimeConfig
from configs.registry import RegistryConfig
from configs.sizer import SizerConfig

ENV_PREFIX = "EDGEFLOW_"
CONFIG_DIR = Path(__file__).resolve().parent
#: The ONNX parity tolerance's default (``training.parity_tolerance``): code that trains outside
#: a flow (``pipelines.models.specs.train_one``) defaults to it too, so the two cannot drift.
PARITY_TOLERANCE = 1e-5


class MLflowConfig(Section):
    """Experiment tracking."""

    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default: sqlite under the workdir."
    )
    experiment: str = Field(
        default="edgeflow-default",
        description="MLflow experiment name; default edgeflow-<profile>, so each profile has "
        "its own runs and its own registered models and 'champion' aliases.",
    )

    def registered_model_name(self, model: str) -> str:
        """Registered model name of ``model`` in this experiment (``edgeflow-demo-regime``).

        Aliases such as ``champion`` live on registered models, so the names carry the
        experiment: two profiles never move each other's aliases.
        """
        return f"{self.experiment}-{model}"


class TrainingConfig(Section):
    """When a scheduled run trains, and where its tasks run."""

    min_new_bars: int = Field(
        default=0,
        ge=0,
        description="Train only when this many new bars arrived since the last publish.",
    )
    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="'threads': the three trainings in one process; 'dask': on a Dask cluster "
        "(prefect-dask), local unless dask_address is set.",
    )
    concurrency: int = Field(
        default=4,
        ge=1,
        le=8,
        description="'threads': trainings that run at once. Each model draws from its own "
        "named random streams, so concurrent trainings give the same results as sequential "
        "ones; 'dask' runs them in separate processes instead.",
    )
    parity_tolerance: float = Field(
        default=PARITY_TOLERANCE,
        gt=0,
        description="Every model's ONNX export must match the framework's own output to this "
        "max absolute difference (the one parity gate).",
    )
    champions: bool = Field(
        default=True,
        description="Judge each slot's candidates (the learned model and its rule policies) "
        "against the live champion on the test and the confirmation span, and publish a "
        "challenger only when its lift over the champion is confirmed on both (docs/models.md, "
        "'Champion and challenger'); False: publish the learned model on its own gates.",
    )
    dask_workers: int = Field(default=2, ge=1, description="Local Dask cluster: worker processes.")
    dask_address: str | None = Field(
        default=None,
        description="Existing Dask scheduler (tcp://host:8786) instead of a local one.",
    )
    state_uri: str | None = Field(
        default=None,
        description="s3://bucket/prefix: the workdir's data/ and state/ are pulled from "
        "<prefix>/state/ before a run and pushed back after it (stateless cloud runs).",
    )


class Settings(Section):
    """Everything a run needs. Seeds live here so the same inputs give the same outputs."""

    profile: str = Field(default="default", description="Name of the profile (for reports).")
    environment: Literal["dev", "production"] = Field(
        default="dev", description="'production' refuses the auto-created dev signing key."
    )
    seed: int = Field(default=7, ge=0, description="Root seed for every random stream.")
    workdir: Path = Field(default=Path(".edgeflow"), description="Holds everything a run writes.")
    data: DataConfig = Field(default_factory=DataConfig, validate_default=True)
    events: EventsConfig = Field(default_factory=EventsConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    regime: RegimeConfig = Field(default_factory=RegimeConfig)
    bandit: BanditConfig = Field(default_factory=BanditConfig)
    sizer: SizerConfig = Field(default_factory=SizerConfig)
    metalabel: MetaLabelConfig = Field(default_factory=MetaLabelConfig)
    recommendation: RecommendationConfig = Field(default_factory=RecommendationConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    mlflow: MLflowConfig = Field(default_factory=MLflowConfig)

    @field_validator("data")
    @classmethod
    def _no_synthetic_bars_in_production(cls, v: DataConfig, info: ValidationInfo) -> DataConfig:
        """A production run must train on real bars: generated ones would ship a toy model."""
        if info.data.get("environment") == "production" and v.source == "synthetic":
            raise ValueError(
                "environment 'production' refuses data.source 'synthetic'; "
                "set data.source to s3 or files (configs/cloud.yaml reads bars from S3)"
            )
        return v

    @model_validator(mode="before")
    @classmethod
    def _experiment_per_profile(cls, data: Any) -> Any:
        """``mlflow.experiment`` defaults to ``edgeflow-<profile>`` (not one shared name)."""
        if not isinstance(data, dict):
            return data
        mlflow = data.get("mlflow")
        if mlflow is None or (isinstance(mlflow, dict) and "experiment" not in mlflow):
            profile = data.get("profile", "default")
            data = {**data, "mlflow": {**(mlflow or {}), "experiment": f"edgeflow-{profile}"}}
        return data


class ConfigError(ValueError):
    """A config that does not validate; the message lists every bad field with its path."""


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    parts = [p for p in dotted.split(".") if p]
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``EDGEFLOW_DATA__SOURCE=files`` -> ``{"data": {"source": "files"}}``.

    Only names whose first part is a settings field are taken, so secrets such as
    ``EDGEFLOW_HMAC_KEYS`` never enter the (logged) config. Values parse as YAML scalars.
    """
    merged: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        if path.split(".")[0] not in Settings.model_fields:
            continue
        merged = _deep_merge(merged, _nest(path, yaml.safe_load(raw) if raw else raw))
    return merged


def format_validation_error(err: ValidationError, source: str) -> str:
    """One message listing every bad field by its dotted path."""
    lines = [f"{source}: invalid configuration ({err.error_count()} problem(s)):"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  - {path}: {e['msg']}{shown}")
    return "\n".join(lines)


def resolve_profile(path: str | Path) -> Path:
    """A path, or a bare profile name (``demo``) resolved against the shipped configs."""
    p = Path(path)
    if p.exists():
        return p
    shipped = CONFIG_DIR / f"{p.stem if p.suffix else p.name}.yaml"
    if not p.suffix and shipped.exists():
        return shipped
    if not p.is_absolute() and p.parent == Path("configs") and p.name == shipped.name:
        # ``configs/demo.yaml`` (the CLI's default) typed outside a checkout: the shipped file.
        if shipped.exists():
            return shipped
    raise ConfigError(f"{path}: config file not found")


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge YAML file, then ``EDGEFLOW_*`` environment, then dotted overrides; validate once."""
    source = "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        file = resolve_profile(path)
        source = str(file)
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{file}: top level must be a mapping, got {type(loaded).__name__}")
        data = loaded or {}
    data = _deep_merge(data, env_overrides(os.environ if environ is None else environ))
    for dotted, value in (overrides or {}).items():
        data = _deep_merge(data, _nest(dotted, value))
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
