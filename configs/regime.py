"""Regime classifier section (owned by the regime model)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from configs.base import Section, confirm_fraction_field

CandidateName = Literal["lightgbm", "random_forest", "logistic"]


class LightGBMParams(Section):
    """Small gradient-boosted trees: enough for 43 features, fast on 2 cores."""

    n_estimators: int = Field(default=150, gt=0, description="Boosting rounds.")
    learning_rate: float = Field(default=0.05, gt=0, le=1, description="Shrinkage per round.")
    num_leaves: int = Field(default=15, ge=2, description="Leaves per tree.")
    min_child_samples: int = Field(default=50, ge=1, description="Minimum rows in a leaf.")
    subsample: float = Field(default=0.8, gt=0, le=1, description="Row fraction per round.")
    colsample_bytree: float = Field(
        default=0.8, gt=0, le=1, description="Feature fraction per tree."
    )
    reg_lambda: float = Field(default=1.0, ge=0, description="L2 penalty on leaf values.")


class RandomForestParams(Section):
    """A shallow forest: a robust, low-variance second opinion to boosting."""

    n_estimators: int = Field(default=60, gt=0, description="Trees in the forest.")
    max_depth: int = Field(default=10, gt=0, description="Maximum tree depth.")
    min_samples_leaf: int = Field(default=20, ge=1, description="Minimum rows in a leaf.")
    max_features: float = Field(
        default=0.3, gt=0, le=1, description="Fraction of features tried per split."
    )
    max_samples: float = Field(
        default=0.5, gt=0, le=1, description="Bootstrap sample per tree, as a fraction of rows."
    )


class LogisticParams(Section):
    """Standardized multinomial logistic regression: the linear reference candidate."""

    C: float = Field(default=1.0, gt=0, description="Inverse L2 regularization strength.")
    max_iter: int = Field(default=500, gt=0, description="Solver iterations.")


class BOCDConfig(Section):
    """Bayesian online changepoint detection (Adams & MacKay 2007) on 1-bar log returns."""

    hazard: float = Field(
        default=1 / 200, gt=0, lt=1, description="Constant prior probability of a change per bar."
    )
    max_run_length: int = Field(
        default=300, ge=2, description="Run lengths kept (R); cost is O(T*R)."
    )
    window: int = Field(
        default=24,
        ge=1,
        description="Changepoint prob at t = P(current run started within the last `window` bars).",
    )
    kappa0: float = Field(default=1.0, gt=0, description="Prior pseudo-count on the mean.")
    alpha0: float = Field(default=2.0, gt=0, description="Prior shape of the precision (NIG).")
    reduce_threshold: float = Field(
        default=0.7, gt=0, lt=1, description="Changepoint prob above which positions are reduced."
    )
    exit_threshold: float = Field(
        default=0.9, gt=0, lt=1, description="Changepoint prob above which positions are exited."
    )

    @model_validator(mode="after")
    def _ordered(self) -> BOCDConfig:
        if self.exit_threshold < self.reduce_threshold:
            raise ValueError("exit_threshold must be >= reduce_threshold")
        return self


class RegimeConfig(Section):
    """Regime classifier: labels, candidates, selection, calibration."""

    label_horizon: int = Field(
        default=24, gt=0, description="Bars ahead used by the real-data label rule."
    )
    label_trend_z: float = Field(
        default=1.0,
        gt=0,
        description="Rule labels: |forward return| / (ref vol * sqrt(h)) above this is a trend.",
    )
    label_panic_vol_ratio: float = Field(
        default=2.0,
        gt=1,
        description="Rule labels: forward realized vol above this multiple of ref vol is PANIC.",
    )
    label_vol_window: int = Field(
        default=720,
        ge=2,
        description="Rule labels: bars of the trailing robust (median) vol used as the reference.",
    )
    use_true_regime: bool = Field(
        default=True,
        description="Train on the generator's true `regime` column when the bars carry it.",
    )
    candidates: list[CandidateName] = Field(
        default=["lightgbm", "random_forest", "logistic"],
        min_length=1,
        description="Candidate models compared by walk-forward validation.",
    )
    selection_metric: Literal["log_loss", "balanced_accuracy"] = Field(
        default="log_loss", description="Walk-forward metric that picks the candidate."
    )
    n_folds: int = Field(default=3, ge=1, description="Walk-forward folds (expanding window).")
    purge_bars: int | None = Field(
        default=None,
        ge=0,
        description="Bars before validation whose rows leave training; default: label_horizon.",
    )
    embargo_bars: int | None = Field(
        default=None,
        ge=0,
        description="Extra bars skipped between training and validation; default: label_horizon.",
    )
    confirm_fraction: float = confirm_fraction_field()
    holdout_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Later span held out for the final evaluation."
    )
    calibration_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Latest share of the training span used for conformal calibration.",
    )
    conformal_coverage: float = Field(
        default=0.9, gt=0, lt=1, description="Target coverage of the conformal prediction sets."
    )
    conformal_method: Literal["split", "rolling", "aci", "aci_rolling"] = Field(
        default="aci",
        description="Conformal sets the coverage gate judges (every method is measured each "
        "run, docs/regime.md): split (calibration quantiles, fixed), rolling (quantiles of the "
        "latest `conformal_window` revealed scores per class), aci (adaptive conformal "
        "inference: each class's level follows its revealed misses with step "
        "`conformal_gamma`), aci_rolling (both).",
    )
    conformal_gamma: float = Field(
        default=0.005,
        gt=0,
        lt=1,
        description="ACI step gamma: alpha_{t+1} = alpha_t + gamma (alpha - err_t) per revealed "
        "label of a class (0.005: Gibbs & Candes 2021).",
    )
    conformal_window: int = Field(
        default=200,
        ge=10,
        description="Revealed scores kept per class by the rolling methods (200: the quantile "
        "at 0.9 resolves 1/201 of coverage).",
    )
    baseline_window: int = Field(
        default=24, ge=2, description="Bars of return and realized vol fed to the 2-input baseline."
    )
    n_jobs: int = Field(
        default=1,
        ge=1,
        description="Threads for LightGBM and the forest (OpenMP spins on busy small hosts).",
    )
    lightgbm: LightGBMParams = Field(default_factory=LightGBMParams)
    random_forest: RandomForestParams = Field(default_factory=RandomForestParams)
    logistic: LogisticParams = Field(default_factory=LogisticParams)
    bocd: BOCDConfig = Field(default_factory=BOCDConfig)
    min_log_loss_lift: float = Field(
        default=0.0,
        description="Gate: the one-sided 95% lower bound of (strongest baseline's held-out log "
        "loss - the model's), nats per row, must exceed this. Negative values let a model that "
        "loses to a baseline publish: for tests of the publish path only.",
    )
    n_bootstrap: int = Field(default=400, ge=50, description="Block-bootstrap resamples.")
    bootstrap_block: int = Field(
        default=48, ge=1, description="Block length in held-out rows (time-ordered)."
    )
    ci_level: float = Field(
        default=0.9, gt=0, lt=1, description="Two-sided CI level; its lower end is one-sided 95%."
    )
    coverage_tolerance: float = Field(
        default=0.03, gt=0, lt=1, description="Allowed |empirical - target| conformal coverage."
    )
    onnx_opset: int = Field(
        default=15, ge=9, le=15, description="ONNX opset (onnxmltools refuses 17 for LightGBM)."
    )

    @property
    def purge(self) -> int:
        """Effective purge in bars (never below the label horizon)."""
        return self.label_horizon if self.purge_bars is None else self.purge_bars

    @property
    def embargo(self) -> int:
        """Effective embargo in bars (never below the label horizon)."""
        return self.label_horizon if self.embargo_bars is None else self.embargo_bars

    @model_validator(mode="after")
    def _gaps_cover_label_horizon(self) -> RegimeConfig:
        for name in ("purge_bars", "embargo_bars"):
            value = getattr(self, name)
            if value is not None and value < self.label_horizon:
                raise ValueError(
                    f"{name} ({value}) must be >= label_horizon ({self.label_horizon}): "
                    "a shorter gap leaks the label window into validation"
                )
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"candidates must be unique, got {self.candidates}")
        return self
