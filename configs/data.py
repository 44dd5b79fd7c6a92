"""Data sections: where bars come from and how strictly they are checked."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from configs.base import Section


class RegimeParams(Section):
    """Per-bar dynamics of one synthetic regime (log-return units).

    Regimes differ in return dynamics only: drift, how strongly volatility clusters
    (GARCH ``alpha``/``beta``), its long-run level, jumps and level mean reversion. Volume
    follows the conditional volatility through one mapping shared by every regime.
    """

    drift: float = Field(description="Mean log return per bar (before jumps).")
    vol: float = Field(
        gt=0, description="Long-run per-bar volatility the regime's GARCH(1,1) reverts to."
    )
    garch_alpha: float = Field(
        default=0.05, ge=0, lt=1, description="GARCH(1,1) ARCH term: reaction to the last shock."
    )
    garch_beta: float = Field(
        default=0.93, ge=0, lt=1, description="GARCH(1,1) GARCH term: persistence of variance."
    )
    jump_prob: float = Field(ge=0, le=1, description="Probability of a jump on a bar.")
    jump_mean: float = Field(description="Mean jump size (log return).")
    jump_std: float = Field(ge=0, description="Std of the jump size.")
    half_life: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Mean reversion in level: half-life in bars of the AR(1) deviation x of the log "
            "price from the regime's anchor (x_t = phi x_{t-1} + e_t, phi = 0.5**(1/half_life)); "
            "None = random walk (no reversion)."
        ),
    )
    stay: float = Field(gt=0, lt=1, description="Probability of staying in the regime next bar.")

    @model_validator(mode="after")
    def _stationary(self) -> RegimeParams:
        if self.garch_alpha + self.garch_beta >= 1.0:
            raise ValueError(
                f"garch_alpha + garch_beta must be < 1 (stationary variance), got "
                f"{self.garch_alpha} + {self.garch_beta}"
            )
        return self


def _default_regimes() -> dict[str, RegimeParams]:
    # Hourly bars, 24x7: annualized Sharpe = drift / vol * sqrt(8766) ~ 93.6 drift / vol.
    # TREND_UP ~ +1.9, TREND_DOWN (drift + jumps) ~ -1.9, PANIC ~ -2.0, RANGE 0.
    return {
        "TREND_UP": RegimeParams(
            drift=0.0001,
            vol=0.005,
            garch_alpha=0.05,
            garch_beta=0.93,
            jump_prob=0.0,
            jump_mean=0.0,
            jump_std=0.0,
            stay=0.997,
        ),
        "TREND_DOWN": RegimeParams(
            drift=-0.00011,
            vol=0.006,
            garch_alpha=0.06,
            garch_beta=0.92,
            jump_prob=0.002,
            jump_mean=-0.005,
            jump_std=0.01,
            stay=0.997,
        ),
        "RANGE": RegimeParams(
            drift=0.0,
            vol=0.0045,
            garch_alpha=0.04,
            garch_beta=0.94,
            jump_prob=0.0,
            jump_mean=0.0,
            jump_std=0.0,
            half_life=36.0,
            stay=0.995,
        ),
        "PANIC": RegimeParams(
            drift=-0.00018,
            vol=0.013,
            garch_alpha=0.10,
            garch_beta=0.85,
            jump_prob=0.01,
            jump_mean=-0.01,
            jump_std=0.015,
            stay=0.985,
        ),
    }


class NullWorldParams(Section):
    """The null world: one GARCH(1,1)-t process, no drift, no regimes (placebo data)."""

    vol: float = Field(default=0.006, gt=0, description="Long-run per-bar volatility.")
    garch_alpha: float = Field(default=0.05, ge=0, lt=1, description="GARCH(1,1) ARCH term.")
    garch_beta: float = Field(default=0.93, ge=0, lt=1, description="GARCH(1,1) GARCH term.")

    @model_validator(mode="after")
    def _stationary(self) -> NullWorldParams:
        if self.garch_alpha + self.garch_beta >= 1.0:
            raise ValueError("garch_alpha + garch_beta must be < 1 (stationary variance)")
        return self


class DriftParams(Section):
    """Concept drift: the regime -> best-arm map changes over time (docs/generator.md).

    Off by default, so the stationary world (and the demo's bars) is unchanged. When on, the
    timeline is cut into periods of ``period_bars`` bars; in every other period the trend
    regimes revert in level (half-life ``trend_half_life``: moves overshoot and come back, so
    the fades win inside a trend) while RANGE walks freely (the fades lose there). A policy
    frozen in one period plays the wrong arms in the next; one retrained on recent bars need
    not. The rate of change is one swap per ``period_bars`` bars.
    """

    enabled: bool = Field(default=False, description="Turn concept drift on.")
    period_bars: int = Field(
        default=3000, gt=0, description="Bars per period; the dynamics swap at each boundary."
    )
    trend_half_life: float = Field(
        default=12.0,
        gt=0,
        description="Half-life in bars of the trend regimes' level reversion in swapped periods.",
    )


class SyntheticConfig(Section):
    """The embedded default source: a seeded regime-switching generator."""

    symbols: list[str] = Field(
        default=["SYN1", "SYN2"],
        min_length=1,
        description="Symbols to generate, each with its own seed stream.",
    )
    n_bars: int = Field(default=5000, gt=0, description="Bars per symbol (prefix-stable in n).")
    start: datetime = Field(
        default=datetime.fromisoformat("2024-01-01T00:00:00+00:00"),
        description="UTC timestamp of the first bar.",
    )
    interval: str = Field(default="1h", description="Bar interval as a pandas offset alias.")
    tail_df: float = Field(
        default=5.0,
        gt=2,
        description="Degrees of freedom of the Student-t innovations (unit variance); fat tails.",
    )
    vol_cap: float = Field(
        default=4.0,
        gt=1,
        description="Conditional vol is capped at this multiple of the bar's regime long-run vol.",
    )
    volume_vol_elasticity: float = Field(
        default=0.5,
        ge=0,
        description="Log volume moves by this times the log of conditional vol over its mean.",
    )
    volume_noise: float = Field(
        default=0.45, ge=0, description="Std of the persistent log-volume noise."
    )
    volume_persistence: float = Field(
        default=0.7, ge=0, lt=1, description="AR(1) coefficient of the log-volume noise."
    )
    regimes: dict[str, RegimeParams] = Field(
        default_factory=_default_regimes, description="Dynamics per regime name."
    )
    null: NullWorldParams = Field(
        default_factory=NullWorldParams, description="Parameters of generate_null_bars."
    )
    drift: DriftParams = Field(
        default_factory=DriftParams,
        description="Concept drift (off by default): the regimes' dynamics swap every "
        "period_bars bars, so the best arm per regime changes over time.",
    )

    @field_validator("regimes")
    @classmethod
    def _all_regimes(cls, v: dict[str, RegimeParams]) -> dict[str, RegimeParams]:
        expected = {"TREND_UP", "TREND_DOWN", "RANGE", "PANIC"}
        if set(v) != expected:
            raise ValueError(f"must define exactly {sorted(expected)}, got {sorted(v)}")
        return v


class FilesConfig(Section):
    """How CSV/Parquet files (local or on S3) are read: the dialects broker exports come in."""

    separator: Literal["auto", ",", ";", "\t", "|"] = Field(
        default="auto",
        description="CSV field separator; 'auto' sniffs ',', ';', tab or '|' from the header.",
    )
    decimal: Literal["auto", ".", ","] = Field(
        default="auto",
        description="CSV decimal mark; 'auto' takes ',' only for ';'/tab files whose numbers "
        "are written 1,5 and never 1.5.",
    )
    epoch_unit: Literal["auto", "s", "ms", "us", "ns"] = Field(
        default="auto",
        description="Unit of numeric (epoch) timestamps; 'auto' tells s/ms/us/ns apart by "
        "magnitude (dates 1973-2286) and logs which it took.",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone (e.g. Europe/Berlin, America/New_York, UTC) of naive "
        "date-times; unset: naive date-times are refused.",
    )
    close_column: Literal["auto", "close", "adj close"] = Field(
        default="auto",
        description="Which close to use when a file has 'Close' and 'Adj Close' (Yahoo): "
        "'adj close' also scales open/high/low by adj/close; 'auto' uses close (and logs it).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name, e.g. Europe/Berlin)"
            ) from None
        return v


class ChecksConfig(Section):
    """How strictly incoming bars are checked."""

    max_gap_intervals: float = Field(
        default=1.5, gt=1, description="A gap longer than this many bar intervals is reported."
    )
    fail_on_gaps: bool = Field(
        default=False, description="Treat gaps as fatal (default: report and count)."
    )
    stale_after: str = Field(
        default="0s",
        description="Newest bar older than this (pandas Timedelta) is stale; '0s' disables.",
    )
    calendar: Literal["auto", "24x7", "24x5", "exchange"] = Field(
        default="auto",
        description="When bars are expected, for gap checks: '24x7' always; '24x5' FX week "
        "(closed Fri 21:00 to Sun 22:00 UTC); 'exchange' weekdays during the hours the data "
        "trades; 'auto' infers weekdays and hours from the data (4+ weeks, else 24x7). With "
        "closed days, one missing trading day (a holiday) is not a gap.",
    )
    max_quarantine_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Stop the run when more than this fraction of a file's rows is quarantined.",
    )


class ExogenousSeries(Section):
    """One exogenous series (a volatility index, a rate, a spread): its file(s), columns, timing.

    Read with the same readers and options as bars (``data.files``) and checked by the same
    checks module; joined to the bars as of their publication (docs/exogenous.md).
    """

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_]+$",
        description="Feature-name stem (letters, digits, _); unset: each file's stem. Must be "
        "unset when path is a folder of several files.",
    )
    path: Path | None = Field(default=None, description="A CSV/Parquet file or a folder of them.")
    s3_uri: str | None = Field(
        default=None, description="s3://bucket/prefix of CSV/Parquet objects (instead of path)."
    )
    timestamp_column: str | None = Field(
        default=None,
        description="Column holding the observation time; unset: ts|timestamp|datetime|date|time.",
    )
    columns: list[str] = Field(
        default_factory=list,
        description="Value columns (case-insensitive); empty: every column but the timestamp.",
    )
    frequency: str | None = Field(
        default=None,
        description="Observation spacing (pandas Timedelta, e.g. 1D); unset: the median spacing.",
    )
    lag: str | None = Field(
        default=None,
        description="Publication lag: a value stamped ts is known at ts + lag (pandas Timedelta, "
        "e.g. 1D for a daily close stamped at its date). Unset: one frequency.",
    )
    max_age: str | None = Field(
        default=None,
        description="A published value older than this at a bar is masked (late series); "
        "unset: five frequencies.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> ExogenousSeries:
        import pandas as pd  # here, not at import: loading the config stays light

        if (self.path is None) == (self.s3_uri is None):
            raise ValueError("set exactly one of path and s3_uri")
        for key in ("frequency", "lag", "max_age"):
            text = getattr(self, key)
            if text is None:
                continue
            try:
                value = pd.Timedelta(text)
            except ValueError:
                raise ValueError(f"{key} {text!r} is not a pandas Timedelta (e.g. 1D)") from None
            if value < pd.Timedelta(0) or (key != "lag" and value == pd.Timedelta(0)):
                raise ValueError(f"{key} must be {'>= 0' if key == 'lag' else '> 0'}, got {text}")
        return self


class CrossAssetConfig(Section):
    """Cross-asset features across the configured symbols (docs/features.md); off by default."""

    enabled: bool = Field(default=False, description="Add the cross-asset features.")
    benchmark: str | None = Field(
        default=None,
        description="Symbol every other symbol is compared to; unset: the equal-weighted mean "
        "of the other symbols (the benchmark symbol itself is always compared to that).",
    )
    window: int = Field(
        default=72, ge=10, le=200, description="Bars in the correlation/beta/lead-lag windows."
    )


class DataConfig(Section):
    """Where bars come from."""

    source: Literal["synthetic", "files", "sample", "s3"] = Field(
        default="synthetic", description="Bar source; 'synthetic' is the embedded default."
    )
    path: Path | None = Field(
        default=None, description="files: a CSV/Parquet file or a folder of them."
    )
    sample: list[Literal["GOOG", "EURUSD", "BTCUSD"]] = Field(
        default=["EURUSD"], description="sample: bar sets shipped by the 'backtesting' package."
    )
    s3_uri: str | None = Field(
        default=None, description="s3: s3://bucket/prefix of CSV/Parquet objects."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="s3: endpoint (MinIO, moto); else AWS."
    )
    interval: str | None = Field(
        default=None, description="Bar interval; inferred from the data when not set."
    )
    files: FilesConfig = Field(default_factory=FilesConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    exogenous: list[ExogenousSeries] = Field(
        default_factory=list,
        description="Exogenous series joined to the bars as of their publication (off when "
        "empty): docs/exogenous.md.",
    )
    cross_asset: CrossAssetConfig = Field(default_factory=CrossAssetConfig)
