"""Exogenous series as a source: read like bars, checked by the same checks module.

An exogenous series is a table with one timestamp column and one or more value columns (a
volatility index's close, a rate, a spread) that the bars' features are joined to **as of
publication**: a value stamped ``ts`` is known from ``ts + lag`` on
(:mod:`pipelines.features.exogenous`). ``data.exogenous`` lists them (docs/exogenous.md).

Reading reuses :mod:`pipelines.data.sources` (files, folders, S3; every ``data.files`` dialect
option), and checking reuses :mod:`pipelines.data.checks`: timestamps follow the same time-zone
rules, a malformed cell is fatal with one line naming file, column and row, and row-level
problems (an empty cell, inf, a repeated timestamp) are quarantined to
``<quarantine_dir>/exogenous-<name>/quarantine.csv``; more than
``data.checks.max_quarantine_fraction`` of a file quarantined stops the run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from configs.data import ChecksConfig, DataConfig, ExogenousSeries
from pipelines.data import checks
from pipelines.data.errors import DataError
from pipelines.data.sources import RawFrame, read_files, read_s3

logger = logging.getLogger(__name__)

#: Quarantine reasons of a series row, in the order they are tested.
SERIES_REASONS = ("missing_value", "non_finite", "duplicate_ts")
#: Default ``max_age`` in frequencies (a daily series over a long weekend is ~4 days old).
DEFAULT_MAX_AGE_PERIODS = 5
_UNSAFE = re.compile(r"[^0-9a-z]+")


def feature_key(text: str) -> str:
    """Lower-case ``[0-9a-z_]`` form of a series or column name, for feature names."""
    key = _UNSAFE.sub("_", str(text).strip().lower()).strip("_")
    return key or "x"


@dataclass(frozen=True)
class ExogenousData:
    """One checked series.

    Attributes
    ----------
    name:
        Feature-name stem (``exo_<name>_<column>``).
    origin:
        The file or ``s3://`` object it was read from.
    frame:
        ``ts`` (UTC, sorted, unique) and the value columns (float64, finite), named by
        :func:`feature_key`.
    frequency, lag, max_age:
        Observation spacing, publication lag and the age beyond which a value is masked.
    report:
        Rows read, kept and quarantined (per reason), and the quarantine file if any.
    """

    name: str
    origin: str
    frame: pd.DataFrame
    frequency: pd.Timedelta
    lag: pd.Timedelta
    max_age: pd.Timedelta
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """Value columns, in file order."""
        return tuple(c for c in self.frame.columns if c != "ts")


def _ts_column(raw: RawFrame, spec: ExogenousSeries) -> str:
    by_lower = {str(c).strip().lower(): str(c) for c in raw.frame.columns}
    wanted = [spec.timestamp_column.strip().lower()] if spec.timestamp_column else checks.TS_ALIASES
    for alias in wanted:
        if alias in by_lower:
            return by_lower[alias]
    found = ", ".join(map(str, raw.frame.columns)) or "none"
    hint = "set timestamp_column" if spec.timestamp_column is None else "check timestamp_column"
    raise DataError(
        raw.origin,
        f"missing timestamp column (found: {found}); {hint} of this exogenous series",
        column=spec.timestamp_column or "ts",
    )


def _value_columns(raw: RawFrame, spec: ExogenousSeries, ts_col: str) -> list[str]:
    by_lower = {str(c).strip().lower(): str(c) for c in raw.frame.columns}
    if not spec.columns:
        cols = [str(c) for c in raw.frame.columns if str(c) != ts_col]
        cols = [c for c in cols if c.strip().lower() != "symbol"]
        if not cols:
            raise DataError(raw.origin, "no value columns besides the timestamp", column=ts_col)
        return cols
    out = []
    for name in spec.columns:
        if name.strip().lower() not in by_lower:
            found = ", ".join(map(str, raw.frame.columns))
            raise DataError(raw.origin, f"missing value column (found: {found})", column=name)
        out.append(by_lower[name.strip().lower()])
    return out


def check_series(
    raw: RawFrame,
    spec: ExogenousSeries,
    name: str,
    cfg: ChecksConfig,
    *,
    quarantine_dir: Path | None = None,
) -> ExogenousData:
    """Check one raw series table (fatal problems raise :class:`DataError`)."""
    frame = raw.frame
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(raw.origin, "no data rows (header only)" if frame.shape[1] else "empty")
    ts_col = _ts_column(raw, spec)
    value_cols = _value_columns(raw, spec, ts_col)
    notes: list[str] = []
    ts = checks._parse_ts(
        frame[ts_col].reset_index(drop=True), raw.origin, ts_col, raw.options, notes
    )
    for note in dict.fromkeys(notes):
        logger.info("%s", note)
    df = pd.DataFrame({"ts": ts})
    keys: dict[str, str] = {}
    for col in value_cols:
        key = feature_key(col)
        if key in keys:
            raise DataError(
                raw.origin, f"columns {keys[key]!r} and {col!r} share a name", column=col
            )
        keys[key] = col
        df[key] = checks._parse_number(frame[col].reset_index(drop=True), raw.origin, col, ts)
    df[checks._FILE] = 0
    df[checks._ROW] = np.arange(1, len(df) + 1, dtype="int64")

    n = len(df)
    reason = np.full(n, "", dtype=object)
    column = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, why: str, col: str, text: str) -> None:
        new = np.flatnonzero(mask & (reason == ""))
        reason[new], column[new], detail[new] = why, col, text

    flag(df["ts"].isna().to_numpy(), "missing_value", ts_col, "empty cell")
    for key, col in keys.items():
        flag(df[key].isna().to_numpy(), "missing_value", col, "empty cell")
    for key, col in keys.items():
        flag(np.isinf(df[key].to_numpy()), "non_finite", col, "value must be finite")
    valid = reason == ""
    dup = df[valid].duplicated(subset=["ts"], keep="first").reindex(df.index, fill_value=False)
    flag(dup.to_numpy(dtype=bool), "duplicate_ts", ts_col, "duplicate ts")

    reasons = pd.Series(reason, index=df.index)
    bad = pd.DataFrame({"reason": reason, "column": column, "detail": detail})[reasons != ""]
    q_path = None
    if len(bad) and quarantine_dir is not None:
        q_path = checks._write_quarantine([raw], df, bad, quarantine_dir / f"exogenous-{name}")
        logger.warning("quarantined %d rows of exogenous series %r -> %s", len(bad), name, q_path)
    counts = bad["reason"].value_counts()
    quarantined = {r: int(counts[r]) for r in SERIES_REASONS if r in counts.index}
    file_report = checks.FileReport(
        origin=raw.origin, rows=n, kept=n - len(bad), quarantined=quarantined, unsorted=0
    )
    checks._enforce_quarantine_limit([file_report], df, bad, cfg.max_quarantine_fraction)

    kept = df[reasons == ""].sort_values("ts", kind="stable", ignore_index=True)
    if kept.empty:
        raise DataError(raw.origin, "no valid rows left after quarantine")
    kept = kept[["ts", *keys]]
    frequency = _timedelta(spec.frequency) or _median_step(kept["ts"], raw.origin)
    lag = _timedelta(spec.lag)
    max_age = _timedelta(spec.max_age) or frequency * DEFAULT_MAX_AGE_PERIODS
    report = {
        "name": name,
        "origin": raw.origin,
        "rows_in": n,
        "rows_out": len(kept),
        "quarantined": quarantined,
        "quarantine_path": None if q_path is None else str(q_path),
        "first_ts": kept["ts"].iloc[0].isoformat(),
        "last_ts": kept["ts"].iloc[-1].isoformat(),
        "frequency": str(frequency),
        "lag": str(frequency if lag is None else lag),
        "max_age": str(max_age),
    }
    return ExogenousData(
        name=name,
        origin=raw.origin,
        frame=kept.reset_index(drop=True),
        frequency=frequency,
        lag=frequency if lag is None else lag,
        max_age=max_age,
        report=report,
    )


def _timedelta(text: str | None) -> pd.Timedelta | None:
    return None if text is None else pd.Timedelta(text)


def _median_step(ts: pd.Series, origin: str) -> pd.Timedelta:
    if len(ts) < 2:
        raise DataError(origin, "one row only: set frequency of this exogenous series", column="ts")
    return pd.Timedelta(ts.diff().dropna().median())


def read_series(spec: ExogenousSeries, cfg: DataConfig, s3_client: Any = None) -> list[RawFrame]:
    """The raw tables of one configured series (a file, a folder's files, an S3 prefix)."""
    if spec.path is not None:
        return read_files(spec.path, cfg.files)
    if s3_client is None:
        raise ValueError("an exogenous series on S3 needs an S3 client (pass s3_client)")
    assert spec.s3_uri is not None  # the config allows exactly one of path and s3_uri
    return read_s3(spec.s3_uri, s3_client, cfg.files)


def load_exogenous(
    cfg: DataConfig, *, s3_client: Any = None, quarantine_dir: Path | None = None
) -> list[ExogenousData]:
    """Every configured series, read and checked (empty when ``data.exogenous`` is)."""
    out: list[ExogenousData] = []
    for spec in cfg.exogenous:
        raws = read_series(spec, cfg, s3_client)
        if spec.name is not None and len(raws) > 1:
            where = spec.path if spec.path is not None else spec.s3_uri
            raise DataError(
                str(where),
                f"name {spec.name!r} is set but this exogenous source holds {len(raws)} files; "
                "leave name unset (each file's stem names its series) or point at one file",
            )
        for raw in raws:
            name = feature_key(spec.name or raw.symbol)
            if any(d.name == name for d in out):
                raise DataError(raw.origin, f"a second exogenous series named {name!r}")
            out.append(check_series(raw, spec, name, cfg.checks, quarantine_dir=quarantine_dir))
    return out
