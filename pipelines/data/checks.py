"""Checks that turn raw frames from any source into bars that honour the bar contract.

Two kinds of problem, handled differently:

* **Fatal** (raise :class:`DataError` naming file, column and 1-based data row): empty input,
  missing columns, malformed cells (text in a price column, an unparsable timestamp), missing
  or mixed time zones, gaps when ``fail_on_gaps``, stale data, and a file whose quarantined
  fraction exceeds ``max_quarantine_fraction``. These mean the file is not what we think it is.
* **Row-level** (quarantined and counted): empty cells, inf, non-positive prices, negative
  volume, inconsistent OHLC (high < low, open/close outside [low, high]) and repeated
  (symbol, ts). The rows are written, with their origin, row number and reason, to a
  quarantine CSV so nothing is lost; the run goes on without them.

Unsorted rows are sorted in the checked output (and counted); inputs are never modified.

Time-zone rules (the same for every source):

* Text timestamps must be ISO 8601 and carry a UTC offset (``Z``, ``UTC``, ``+02:00``, ...);
  all rows of one file must carry the same offset (a file mixing offsets is refused; convert
  DST-shifting local times to UTC first).
* A column of dates only (``2024-01-02``) is accepted as daily bars at 00:00 UTC: a date has
  no time zone to miss, and shifting it would move the bar to another day.
* Naive date-times (no offset) are refused as "missing time zone": guessing a zone silently
  misaligns bars by hours. ``data.files.timezone`` (an IANA name) says which zone they are in;
  they are then converted to UTC, DST fall-back hours told apart by their order.
* Numbers are epoch timestamps (UTC): ``data.files.epoch_unit`` s/ms/us/ns, or ``auto``, which
  takes the unit whose 1973-2286 range holds every value and logs it.
* Parquet/pandas timestamp columns must be time-zone aware (or ``data.files.timezone`` set);
  they are converted to UTC.

Gaps are judged against the market's sessions (``data.checks.calendar``): a spacing longer
than ``max_gap_intervals`` is a gap only when the missing bars include trading time, so
nights, weekends and (for markets with closed days) a one-day holiday are not gaps. ``auto``
reads the sessions off the data's own weekday x time-of-day pattern.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from configs.data import ChecksConfig, FilesConfig
from pipelines.data.errors import DataError
from pipelines.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, PRICE_COLUMNS, TRUE_REGIME_COLUMN
from pipelines.data.sources import RawFrame

logger = logging.getLogger(__name__)

#: Accepted names (lower-cased) of the timestamp column, in order of preference.
TS_ALIASES = ("ts", "timestamp", "datetime", "date", "time")

#: Quarantine reasons in the order they are tested; a row gets the first that applies.
QUARANTINE_REASONS = (
    "missing_value",
    "non_finite",
    "non_positive_price",
    "negative_volume",
    "inconsistent_ohlc",
    "duplicate_ts",
)

#: Name of the quarantine file written under ``quarantine_dir``.
QUARANTINE_FILE = "quarantine.csv"

#: How many gaps are listed in the report (all are counted).
MAX_LISTED_GAPS = 50

_TS_RE = re.compile(
    r"^(?P<body>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?)"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
_TS_UNIT = "us"
_FILE = "_file"
_ROW = "_row"


# --------------------------------------------------------------------------- report types


@dataclass(frozen=True)
class GapInfo:
    """A spacing between consecutive bars longer than ``max_gap_intervals`` intervals."""

    symbol: str
    origin: str
    row: int
    after: str
    before: str
    intervals: float


@dataclass(frozen=True)
class FileReport:
    """What the checks did to one input file."""

    origin: str
    rows: int
    kept: int
    quarantined: dict[str, int]
    unsorted: int


@dataclass(frozen=True)
class SymbolReport:
    """The checked bars of one symbol."""

    symbol: str
    rows: int
    first_ts: str
    last_ts: str
    interval: str | None
    gaps: int
    sessions: str = "24x7"
    closed_market_breaks: int = 0


@dataclass(frozen=True)
class CheckReport:
    """JSON-serialisable summary of a check, for MLflow and the run report."""

    rows_in: int
    rows_out: int
    quarantined: dict[str, int]
    unsorted: int
    gap_count: int
    stale_checked: bool
    quarantine_path: str | None
    files: list[FileReport] = field(default_factory=list)
    symbols: list[SymbolReport] = field(default_factory=list)
    gaps: list[GapInfo] = field(default_factory=list)

    @property
    def quarantined_total(self) -> int:
        """Rows quarantined over all files and reasons."""
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON types only)."""
        return asdict(self)

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class CheckedBars:
    """Bars that passed the checks (sorted, unique per (symbol, ts)) and the report."""

    bars: pd.DataFrame
    report: CheckReport


# --------------------------------------------------------------------------- standardise


#: Names (lower-cased, ``_`` as space) of an adjusted close column (Yahoo writes ``Adj Close``).
ADJ_CLOSE_ALIASES = ("adj close", "adjclose", "adj. close", "adjusted close")
ADJ_CLOSE = "adj close"


def _column_key(col: object) -> str:
    return " ".join(str(col).strip().lower().replace("_", " ").split())


def _missing_hint(raw: RawFrame, missing: str, mapping: dict[str, str]) -> str:
    """What to do about a missing column (a one-column header usually means a separator)."""
    if missing == "ts":
        if len(raw.frame.columns) == 1 and any(s in str(raw.frame.columns[0]) for s in ";\t|,"):
            return "; the header is one column: set data.files.separator (; tab | ,)"
        return "; name the time column ts, timestamp, datetime, date or time"
    if missing == "close" and ADJ_CLOSE in mapping:
        return f"; to use '{mapping[ADJ_CLOSE]}' set data.files.close_column: adj close"
    return ""


def _match_columns(raw: RawFrame) -> dict[str, str]:
    """Map contract names to the frame's own column names (case-insensitive).

    ``adj close`` is mapped too when the file has one; which close is used is
    :func:`_choose_close`'s decision.
    """
    by_lower: dict[str, str] = {}
    for col in raw.frame.columns:
        key = str(col).strip().lower()
        if key in by_lower:
            raise DataError(
                raw.origin, f"two columns match '{key}' ({by_lower[key]!r}, {col!r})", column=key
            )
        by_lower[key] = str(col)
    mapping: dict[str, str] = {}
    ts_col = next((alias for alias in TS_ALIASES if alias in by_lower), None)
    if ts_col is not None:
        mapping["ts"] = by_lower[ts_col]
    for name in (*NUMERIC_COLUMNS, "symbol", TRUE_REGIME_COLUMN):
        if name in by_lower:
            mapping[name] = by_lower[name]
    adj = [str(c) for c in raw.frame.columns if _column_key(c) in ADJ_CLOSE_ALIASES]
    if adj:
        mapping[ADJ_CLOSE] = adj[0]
    choice = raw.options.close_column
    if choice == "adj close" and ADJ_CLOSE not in mapping:
        found = ", ".join(str(c) for c in raw.frame.columns)
        raise DataError(
            raw.origin,
            f"data.files.close_column is 'adj close' but there is no Adj Close column "
            f"(found: {found})",
            column=ADJ_CLOSE,
        )
    have_close = "close" in mapping or (ADJ_CLOSE in mapping and choice != "close")
    missing = [c for c in ("ts", *NUMERIC_COLUMNS) if c not in mapping]
    if have_close and "close" in missing:
        missing.remove("close")
    if missing:
        found = ", ".join(str(c) for c in raw.frame.columns) or "none"
        hint = _missing_hint(raw, missing[0], mapping)
        raise DataError(
            raw.origin, f"missing required column (found: {found}){hint}", column=missing[0]
        )
    return mapping


def _ts_error(origin: str, column: str, pos: int, problem: str) -> DataError:
    return DataError(origin, problem, column=column, row=pos + 1)


#: Epoch magnitudes per unit for ``epoch_unit: auto``: dates from 1973 to 2286 in each unit.
EPOCH_RANGES = {"s": (1e8, 1e10), "ms": (1e11, 1e13), "us": (1e14, 1e16), "ns": (1e17, 1e19)}
_EPOCH_RE = re.compile(r"^-?\d+(?:\.\d+)?$")
_TZ_HINT = "or set data.files.timezone (e.g. Europe/Berlin) to the zone they are written in"


def _localize(naive: pd.Series, tz: str, origin: str, column: str, shown: pd.Series) -> pd.Series:
    """Naive wall-clock times in zone ``tz`` to UTC; DST-ambiguous or missing times are fatal.

    Fall-back hours (written twice) are told apart by their order (``ambiguous="infer"``).
    """
    try:
        local = naive.dt.tz_localize(tz, ambiguous="infer", nonexistent="NaT")
    except (ValueError, TypeError):  # pandas raises its AmbiguousTimeError (a ValueError)
        local = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    bad = naive.notna().to_numpy() & local.isna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise _ts_error(
            origin,
            column,
            pos,
            f"local time '{shown.iloc[pos]}' is ambiguous or does not exist in {tz} "
            "(daylight-saving change); write these rows with a UTC offset",
        )
    return local.dt.tz_convert("UTC").dt.as_unit(_TS_UNIT)


def _ts_from_datetimes(
    values: pd.Series, origin: str, column: str, tz: str | None = None
) -> pd.Series:
    if getattr(values.dtype, "tz", None) is None:
        if tz is not None:
            return _localize(values, tz, origin, column, values.astype("str"))
        first = int(np.flatnonzero(values.notna().to_numpy())[0]) if values.notna().any() else 0
        raise _ts_error(
            origin,
            column,
            first,
            f"missing time zone: timestamps are naive (got '{values.iloc[first]}'); "
            f"store them time-zone aware, e.g. UTC, {_TZ_HINT}",
        )
    return values.dt.tz_convert("UTC").dt.as_unit(_TS_UNIT)


def _epoch_unit(numbers: pd.Series, origin: str, column: str, unit: str, notes: list[str]) -> str:
    """The configured unit, or the one whose 1973-2286 range holds every value (logged)."""
    if unit != "auto":
        return unit
    mags = numbers.abs().to_numpy(dtype="float64")
    present = ~np.isnan(mags)
    for name, (lo, hi) in EPOCH_RANGES.items():
        if bool(((mags >= lo) & (mags < hi))[present].all()):
            notes.append(
                f"{origin}: column '{column}' holds epoch timestamps in {name} (told by their "
                "magnitude; set data.files.epoch_unit to override)"
            )
            return name
    pos = int(np.flatnonzero(present)[0])
    raise _ts_error(
        origin,
        column,
        pos,
        f"numeric timestamps of no single epoch unit (got {numbers.iloc[pos]}; s, ms, us and "
        "ns epochs of dates 1973-2286 are recognised): set data.files.epoch_unit, or write ISO "
        "8601 text",
    )


def _ts_from_epoch(
    numbers: pd.Series, origin: str, column: str, unit: str, notes: list[str]
) -> pd.Series:
    """Epoch numbers (UTC by definition) to timestamps."""
    chosen = _epoch_unit(numbers, origin, column, unit, notes)
    try:
        out = pd.to_datetime(numbers, unit=chosen, utc=True)
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        pos = int(np.flatnonzero(numbers.notna().to_numpy())[0])
        raise _ts_error(
            origin,
            column,
            pos,
            f"epoch value {numbers.iloc[pos]} is out of range in unit '{chosen}' "
            "(data.files.epoch_unit)",
        ) from None
    return out.dt.as_unit(_TS_UNIT)


def _as_text(values: pd.Series) -> pd.Series:
    """Cells as stripped text (datetime/date objects as ISO), missing cells kept missing."""
    if pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(
        values.dtype
    ):
        text = values.str.strip()
    else:
        text = values.map(
            lambda v: (
                v if isinstance(v, str) else (v.isoformat() if hasattr(v, "isoformat") else v)
            ),
            na_action="ignore",
        )
        text = text.astype("str").str.strip()
    return text.where(values.notna() & (text != ""))


def _normalise_offset(tz: str) -> str:
    t = tz.upper()
    if t in ("Z", "UTC", "GMT"):
        return "+00:00"
    digits = t[1:].replace(":", "")
    return f"{t[0]}{digits[:2]}:{digits[2:4] or '00'}"


def _ts_fast(text: pd.Series) -> pd.Series | None:
    """Vectorised parse for the common case, one UTC offset on every row; else ``None``."""
    try:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except (ValueError, TypeError):
        return None  # e.g. mixed offsets: the slow path says which row
    if getattr(parsed.dtype, "tz", None) is None or bool((parsed.isna() & text.notna()).any()):
        return None
    return parsed.dt.tz_convert("UTC").dt.as_unit(_TS_UNIT)


def _ts_from_text(
    values: pd.Series,
    origin: str,
    column: str,
    options: FilesConfig | None = None,
    notes: list[str] | None = None,
) -> pd.Series:
    opts = options or FilesConfig()
    text = _as_text(values)
    present = text.notna().to_numpy()
    epoch = present & text.str.match(_EPOCH_RE).fillna(False).to_numpy(dtype=bool)
    if present.any() and bool(epoch[present].all()):
        numbers = pd.to_numeric(text, errors="coerce")
        return _ts_from_epoch(
            numbers, origin, column, opts.epoch_unit, [] if notes is None else notes
        )
    if epoch.sum() * 2 >= present.sum() > 0:
        # Mostly epoch numbers: the column is an epoch column with a few bad cells. Name the
        # first bad cell, not row 1's valid number (which the ISO parser below would refuse).
        pos = int(np.flatnonzero(present & ~epoch)[0])
        raise _ts_error(
            origin, column, pos, f"not an epoch number like the other rows (got '{text.iloc[pos]}')"
        )
    fast = _ts_fast(text)
    if fast is not None:
        return fast
    parts = text.str.extract(_TS_RE)
    unmatched = present & parts["body"].isna().to_numpy()
    if unmatched.any():
        pos = int(np.flatnonzero(unmatched)[0])
        raise _ts_error(origin, column, pos, f"not an ISO 8601 timestamp (got '{text.iloc[pos]}')")
    has_tz = parts["tz"].notna().to_numpy()
    has_time = (parts["body"].str.len() > 10).to_numpy()
    if present.any() and not (has_time & present).any() and not (has_tz & present).any():
        # Dates only: daily bars, taken as 00:00 UTC of that date.
        out = pd.to_datetime(parts["body"], format="%Y-%m-%d", errors="coerce", utc=True)
    else:
        naive = present & ~has_tz
        if naive.all() and opts.timezone is not None:
            parsed = pd.to_datetime(parts["body"], format="ISO8601", errors="coerce")
            bad_parse = present & parsed.isna().to_numpy()
            if bad_parse.any():
                pos = int(np.flatnonzero(bad_parse)[0])
                raise _ts_error(origin, column, pos, f"invalid timestamp (got '{text.iloc[pos]}')")
            return _localize(parsed, opts.timezone, origin, column, text)
        if naive.any():
            pos = int(np.flatnonzero(naive)[0])
            if has_tz.any():
                other = int(np.flatnonzero(has_tz)[0])
                problem = (
                    f"mixed time zones: no UTC offset here (got '{text.iloc[pos]}') but row "
                    f"{other + 1} has '{parts['tz'].iloc[other]}'"
                )
            else:
                problem = (
                    f"missing time zone (got '{text.iloc[pos]}'); write timestamps with a UTC "
                    f"offset, e.g. 2024-01-02T15:00:00Z, {_TZ_HINT}"
                )
            raise _ts_error(origin, column, pos, problem)
        offsets = parts["tz"].where(present).dropna().map(_normalise_offset)
        if offsets.nunique() > 1:
            first = offsets.iloc[0]
            pos = int(offsets.index[(offsets != first).to_numpy()][0])
            raise _ts_error(
                origin,
                column,
                pos,
                f"mixed time zones: offset '{offsets.loc[pos]}' differs from '{first}' in row "
                f"{int(offsets.index[0]) + 1}; convert the file to one zone (UTC)",
            )
        joined = parts["body"] + parts["tz"].map(_normalise_offset, na_action="ignore")
        out = pd.to_datetime(joined, format="ISO8601", errors="coerce", utc=True)
    bad = present & out.isna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise _ts_error(origin, column, pos, f"invalid timestamp (got '{text.iloc[pos]}')")
    return out.dt.as_unit(_TS_UNIT)


def _parse_ts(
    values: pd.Series,
    origin: str,
    column: str,
    options: FilesConfig | None = None,
    notes: list[str] | None = None,
) -> pd.Series:
    """Timestamps to UTC following the module's time-zone rules; NaT where the cell is empty."""
    opts = options or FilesConfig()
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return _ts_from_datetimes(values, origin, column, opts.timezone)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise _ts_error(origin, column, 0, "timestamps must be text, numbers or timestamps")
    if pd.api.types.is_numeric_dtype(values.dtype) and values.notna().any():
        return _ts_from_epoch(
            values, origin, column, opts.epoch_unit, [] if notes is None else notes
        )
    return _ts_from_text(values, origin, column, opts, notes)


def _parse_number(values: pd.Series, origin: str, column: str, ts: pd.Series) -> pd.Series:
    """Cells to float64; NaN where empty; text that is not a number is fatal."""
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(origin, "expected numbers, got booleans", column=column, row=1)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype("float64")
    try:  # fast path: clean numeric text (arrow cast); the slow path finds the bad cell
        return values.astype("float64")
    except (ValueError, TypeError):
        pass
    text = _as_text(values)
    out = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = text.notna().to_numpy() & out.isna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        stamp = ts.iloc[pos] if pd.notna(ts.iloc[pos]) else None
        raise DataError(
            origin, f"not a number (got '{text.iloc[pos]}')", column=column, row=pos + 1, ts=stamp
        )
    return out


def _choose_close(raw: RawFrame, cols: dict[str, str], notes: list[str]) -> str | None:
    """The column used as ``close``; returns the adjusted one when prices are to be scaled.

    With both ``Close`` and ``Adj Close``: ``close_column: auto`` uses ``Close`` (and says so
    once), ``adj close`` uses the adjusted close and scales open, high and low by
    ``adj / close`` (so the bar stays consistent, as Yahoo's adjusted OHLC does). A file with
    only an adjusted close uses it as the close.
    """
    adj = cols.get(ADJ_CLOSE)
    if adj is None:
        return None
    choice = raw.options.close_column
    if "close" not in cols:
        notes.append(f"{raw.origin}: no Close column; using '{adj}' as the close")
        cols["close"] = adj
        return None
    if choice == "adj close":
        return adj
    if choice == "auto":
        notes.append(
            f"{raw.origin}: has '{cols['close']}' and '{adj}'; using '{cols['close']}' (set "
            "data.files.close_column: adj close for split/dividend-adjusted prices)"
        )
    return None


def standardize(raw: RawFrame, file_index: int = 0, notes: list[str] | None = None) -> pd.DataFrame:
    """One raw frame in contract columns and dtypes; empty cells become NaN/NaT.

    Adds ``_file`` (the index of the frame in the input list) and ``_row`` (1-based data row
    in the origin) so later checks can name the row. Raises :class:`DataError` for what is
    fatal at the file level (empty, missing columns, malformed cells, time-zone problems).
    """
    frame = raw.frame
    if frame.shape[1] == 0:
        raise DataError(raw.origin, "file is empty (no columns)")
    if len(frame) == 0:
        raise DataError(raw.origin, "no data rows (header only)")
    notes = [] if notes is None else notes
    cols = _match_columns(raw)
    adjusted = _choose_close(raw, cols, notes)
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    out["ts"] = _parse_ts(
        frame[cols["ts"]].reset_index(drop=True), raw.origin, cols["ts"], raw.options, notes
    )
    if "symbol" in cols:
        sym = _as_text(frame[cols["symbol"]].reset_index(drop=True))
        out["symbol"] = sym.where(sym != "")
    else:
        out["symbol"] = pd.Series(raw.symbol, index=out.index, dtype="str")
    for name in NUMERIC_COLUMNS:
        out[name] = _parse_number(
            frame[cols[name]].reset_index(drop=True), raw.origin, cols[name], out["ts"]
        )
    if adjusted is not None:
        adj = _parse_number(frame[adjusted].reset_index(drop=True), raw.origin, adjusted, out["ts"])
        ratio = adj / out["close"]
        for name in ("open", "high", "low"):
            out[name] = out[name] * ratio
        out["close"] = adj
    if TRUE_REGIME_COLUMN in cols and pd.api.types.is_integer_dtype(
        frame[cols[TRUE_REGIME_COLUMN]]
    ):
        out[TRUE_REGIME_COLUMN] = frame[cols[TRUE_REGIME_COLUMN]].to_numpy().astype("int8")
    out[_FILE] = file_index
    out[_ROW] = np.arange(1, len(frame) + 1, dtype="int64")
    return out


# --------------------------------------------------------------------------- row checks


def _msg(template: str, *values: np.ndarray) -> Callable[[int], str]:
    """Formatter of row ``i``'s detail from ``template`` and the row's values."""
    return lambda i: template.format(*(v[i] for v in values))


def _row_problems(df: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(reason, column, detail) per row; empty string where the row is fine.

    A row gets the first reason that applies (in :data:`QUARANTINE_REASONS` order, columns in
    contract order); details are formatted only for flagged rows, so clean data costs little.
    """
    n = len(df)
    reason = np.full(n, "", dtype=object)
    column = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)

    clean = np.ones(n, dtype=bool)

    def flag(mask: np.ndarray, why: str, col: str, text: Callable[[int], str]) -> None:
        new = np.flatnonzero(mask & clean)
        clean[new] = False
        reason[new] = why
        column[new] = col
        detail[new] = [text(int(i)) for i in new]

    cols = {c: df[c].to_numpy() for c in NUMERIC_COLUMNS}
    for col in ("ts", "symbol", *NUMERIC_COLUMNS):
        flag(df[col].isna().to_numpy(), "missing_value", col, _msg("empty cell"))
    for col in NUMERIC_COLUMNS:
        v = cols[col]
        flag(np.isinf(v), "non_finite", col, _msg("value must be finite (got {0})", v))
    for col in PRICE_COLUMNS:
        v = cols[col]
        flag(v <= 0, "non_positive_price", col, _msg("price must be > 0 (got {0:g})", v))
    vol, hi, lo = cols["volume"], cols["high"], cols["low"]
    flag(vol < 0, "negative_volume", "volume", _msg("volume must be >= 0 (got {0:g})", vol))
    flag(hi < lo, "inconsistent_ohlc", "high", _msg("high {0:g} < low {1:g}", hi, lo))
    for col in ("open", "close"):
        v = cols[col]
        text = _msg(col + " {0:g} outside [low {1:g}, high {2:g}]", v, lo, hi)
        flag((v < lo) | (v > hi), "inconsistent_ohlc", col, text)
    # Repeats of (symbol, ts) among the rows still valid: the first one read is kept, so a
    # duplicate of a row quarantined for another reason is not dropped as well.
    valid = clean.copy()
    repeated = df[valid].duplicated(subset=["symbol", "ts"], keep="first")
    dup = repeated.reindex(df.index, fill_value=False).to_numpy(dtype=bool)
    ts = df["ts"]
    flag(dup, "duplicate_ts", "ts", lambda i: f"duplicate ts {ts.iloc[i].isoformat()}")
    index = df.index
    return (
        pd.Series(reason, index=index),
        pd.Series(column, index=index),
        pd.Series(detail, index=index),
    )


def _raw_cells(raws: Sequence[RawFrame], rows: pd.DataFrame) -> pd.DataFrame:
    """The quarantined rows' original cells, as text, keyed like ``rows``."""
    pieces = []
    for file_index, group in rows.groupby(_FILE, sort=True):
        raw = raws[int(file_index)].frame
        cells = raw.iloc[group[_ROW].to_numpy() - 1].astype("str")
        cells.columns = [f"raw_{str(c).strip().lower()}" for c in cells.columns]
        cells.index = group.index
        pieces.append(cells)
    return pd.concat(pieces).reindex(rows.index) if pieces else pd.DataFrame(index=rows.index)


def _write_quarantine(
    raws: Sequence[RawFrame], df: pd.DataFrame, bad: pd.DataFrame, quarantine_dir: Path
) -> Path:
    """Write quarantined rows (origin, row, reason, column, detail, raw cells) to a CSV."""
    rows = df.loc[bad.index]
    out = pd.DataFrame(
        {
            "origin": [raws[int(i)].origin for i in rows[_FILE]],
            "row": rows[_ROW].to_numpy(),
            "reason": bad["reason"].to_numpy(),
            "column": bad["column"].to_numpy(),
            "detail": bad["detail"].to_numpy(),
        },
        index=rows.index,
    )
    out = pd.concat([out, _raw_cells(raws, rows)], axis=1)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    path = quarantine_dir / QUARANTINE_FILE
    tmp = path.with_suffix(".csv.tmp")
    out.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- series checks


def _count_unsorted(df: pd.DataFrame) -> pd.Series:
    """Per file: rows whose ts is earlier than the previous row's of the same symbol."""
    prev = df.groupby([_FILE, "symbol"], sort=False)["ts"].shift()
    back = (df["ts"] < prev).fillna(False)
    return back.groupby(df[_FILE]).sum()


def _freq_text(step: pd.Timedelta) -> str:
    """``1h`` rather than ``0 days 01:00:00``."""
    try:
        text = str(pd.tseries.frequencies.to_offset(step).freqstr)
        return f"1{text}" if text[:1].isalpha() else text
    except ValueError:
        return str(step)


def _interval(bars: pd.DataFrame, interval: str | None) -> pd.Timedelta | None:
    if interval is not None:
        try:
            return pd.Timedelta(interval)
        except ValueError:
            return pd.Timedelta(pd.tseries.frequencies.to_offset(interval))
    spacing = bars["ts"].diff().dropna()
    if spacing.empty:
        return None
    return pd.Timedelta(spacing.median())


_NS_DAY = 86_400 * 10**9
_NS_MIN = 60 * 10**9
#: Span of data needed before ``calendar: auto`` trusts the weekday/time pattern it sees.
MIN_INFER_SPAN = pd.Timedelta(days=28)
#: Longest gap (in expected bars) tested against the calendar; longer ones are gaps anyway.
MAX_GAP_STAMPS = 200_000
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Sessions:
    """When bars are expected: a weekday x time-of-day grid in UTC (``None``: always).

    ``grid[d, k]`` is True when slot ``k`` (of ``slot_min`` minutes) of weekday ``d``
    (0 = Monday) trades. ``closed_days`` markets also skip holidays: one missing trading day is
    not a gap.
    """

    label: str
    grid: np.ndarray | None = None
    slot_min: int = 1440

    @property
    def closed_days(self) -> bool:
        return self.grid is not None and not bool(self.grid.any(axis=1).all())

    def in_session(self, stamps_ns: np.ndarray) -> np.ndarray:
        """Boolean per UTC epoch-ns timestamp."""
        if self.grid is None:
            return np.ones(len(stamps_ns), dtype=bool)
        days = stamps_ns // _NS_DAY
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
        slot = (stamps_ns - days * _NS_DAY) // (self.slot_min * _NS_MIN)
        return np.asarray(self.grid[weekday, slot], dtype=bool)

    def bars_per_day(self, step: pd.Timedelta) -> int:
        """Most expected bars in one trading day (a holiday's worth)."""
        if self.grid is None:
            return 0
        per_slot = max(1, int(self.slot_min * _NS_MIN // max(1, step.value)))
        return int(self.grid.sum(axis=1).max()) * per_slot


def _slot_minutes(step: pd.Timedelta) -> int:
    minutes = int(step.total_seconds() // 60)
    if step >= pd.Timedelta(days=1):
        return 1440
    if 0 < minutes <= 60 and 1440 % minutes == 0 and step.total_seconds() % 60 == 0:
        return minutes
    return 60


def _describe(grid: np.ndarray, slot_min: int) -> str:
    days = [_DAYS[d] for d in range(7) if grid[d].any()]
    if slot_min == 1440:
        return ",".join(days)
    slots = np.flatnonzero(grid.any(axis=0))
    first, last = int(slots[0]) * slot_min, (int(slots[-1]) + 1) * slot_min
    hours = f"{first // 60:02d}:{first % 60:02d}-{last // 60:02d}:{last % 60:02d} UTC"
    return f"{','.join(days)} {hours}"


def sessions_for(ts: pd.Series, step: pd.Timedelta, calendar: str) -> Sessions:
    """The trading sessions of one symbol's bars, configured or inferred (``auto``)."""
    slot_min = _slot_minutes(step)
    n_slots = 1440 // slot_min
    if calendar == "24x7":
        return Sessions("24x7")
    grid = np.ones((7, n_slots), dtype=bool)
    if calendar == "24x5":
        if slot_min == 1440:
            grid[5:] = False
        else:  # FX week: closed Friday 21:00 to Sunday 22:00 UTC (17:00 New York, DST or not)
            k21, k22 = (21 * 60) // slot_min, (22 * 60) // slot_min
            grid[4, k21:] = False
            grid[5, :] = False
            grid[6, :k22] = False
        return Sessions("24x5", grid, slot_min)
    values = ts.dropna().to_numpy(dtype="datetime64[ns]").astype("int64")
    days = values // _NS_DAY
    weekday = (days + 3) % 7
    slot = (values - days * _NS_DAY) // (slot_min * _NS_MIN)
    counts = np.zeros((7, n_slots), dtype=np.int64)
    np.add.at(counts, (weekday, slot), 1)
    if calendar == "exchange":
        times = counts[:5].sum(axis=0)
        trades = times >= 0.25 * np.median(times[times > 0]) if times.any() else times >= 0
        grid[:] = False
        grid[:5] = trades[None, :] if slot_min < 1440 else True
        return Sessions(f"exchange ({_describe(grid, slot_min)})", grid, slot_min)
    span = pd.Timedelta(int(values.max() - values.min())) if len(values) else pd.Timedelta(0)
    if span < MIN_INFER_SPAN:
        return Sessions("24x7 (too little data to infer sessions)")
    nonzero = counts[counts > 0]
    grid = counts >= 0.25 * float(np.median(nonzero))
    if bool(grid.all()):
        return Sessions("24x7 (inferred)")
    return Sessions(f"inferred ({_describe(grid, slot_min)})", grid, slot_min)


def _real_gap(
    after_ns: int, before_ns: int, step: pd.Timedelta, sessions: Sessions, limit: float
) -> bool:
    """True when the bars missing between two bars include more trading time than allowed."""
    if sessions.grid is None:
        return True
    n = round((before_ns - after_ns) / step.value)
    if n > MAX_GAP_STAMPS:
        return True
    expected = after_ns + step.value * np.arange(1, n, dtype=np.int64)
    missing = int(sessions.in_session(expected).sum())
    if missing + 1 <= limit:
        return False  # only closed-market time is missing (night, weekend)
    holiday = sessions.closed_days and before_ns - after_ns >= _NS_DAY
    return not (holiday and missing <= sessions.bars_per_day(step))


def _gaps(
    bars: pd.DataFrame, raws: Sequence[RawFrame], cfg: ChecksConfig, interval: str | None
) -> tuple[list[GapInfo], dict[str, tuple[pd.Timedelta | None, int, str, int]]]:
    """The first :data:`MAX_LISTED_GAPS` gaps and, per symbol, the interval, gap count,
    sessions label and spacings the calendar explained (nights, weekends, holidays)."""
    gaps: list[GapInfo] = []
    per_symbol: dict[str, tuple[pd.Timedelta | None, int, str, int]] = {}
    for symbol, group in bars.groupby("symbol", sort=True):
        step = _interval(group, interval)
        count, closed, label = 0, 0, "24x7"
        if step is not None and step > pd.Timedelta(0):
            sessions = sessions_for(group["ts"], step, cfg.calendar)
            label = sessions.label
            diff = group["ts"].diff()
            where = np.flatnonzero((diff > step * cfg.max_gap_intervals).to_numpy())
            stamps = group["ts"].to_numpy(dtype="datetime64[ns]").astype("int64")
            real = [
                pos
                for pos in where
                if _real_gap(
                    int(stamps[pos - 1]),
                    int(stamps[pos]),
                    step,
                    sessions,
                    cfg.max_gap_intervals,
                )
            ]
            closed = len(where) - len(real)
            count = len(real)
            ts, files, rows = group["ts"], group[_FILE].to_numpy(), group[_ROW].to_numpy()
            for pos in real[: max(0, MAX_LISTED_GAPS - len(gaps))]:  # listed; all counted
                gaps.append(
                    GapInfo(
                        symbol=str(symbol),
                        origin=raws[int(files[pos])].origin,
                        row=int(rows[pos]),
                        after=ts.iloc[pos - 1].isoformat(),
                        before=ts.iloc[pos].isoformat(),
                        intervals=round(float(diff.iloc[pos] / step), 3),
                    )
                )
        per_symbol[str(symbol)] = (step, count, label, closed)
    return gaps, per_symbol


def _check_stale(
    bars: pd.DataFrame, raws: Sequence[RawFrame], stale_after: pd.Timedelta, now: datetime
) -> None:
    now_ts = pd.Timestamp(now)
    if now_ts.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    last = bars.groupby("symbol", sort=True).tail(1)
    for _, row in last.iterrows():
        age = now_ts - row["ts"]
        if age > stale_after:
            raise DataError(
                raws[int(row[_FILE])].origin,
                f"stale data: newest {row['symbol']} bar is {age} old at {now_ts.isoformat()} "
                f"(stale_after={stale_after})",
                column="ts",
                row=int(row[_ROW]),
                ts=row["ts"],
            )


# --------------------------------------------------------------------------- entry point


def _file_reports(
    raws: Sequence[RawFrame], df: pd.DataFrame, reason: pd.Series, unsorted: pd.Series
) -> list[FileReport]:
    reports = []
    for i, raw in enumerate(raws):
        mine = reason[df[_FILE] == i]
        counts = mine[mine != ""].value_counts()
        quarantined = {r: int(counts[r]) for r in QUARANTINE_REASONS if r in counts.index}
        reports.append(
            FileReport(
                origin=raw.origin,
                rows=len(mine),
                kept=int((mine == "").sum()),
                quarantined=quarantined,
                unsorted=int(unsorted.get(i, 0)),
            )
        )
    return reports


def _enforce_quarantine_limit(
    reports: list[FileReport], df: pd.DataFrame, bad: pd.DataFrame, limit: float
) -> None:
    for i, rep in enumerate(reports):
        n_bad = rep.rows - rep.kept
        if rep.rows == 0 or n_bad / rep.rows <= limit:
            continue
        first = bad[df.loc[bad.index, _FILE] == i].iloc[0]
        row = df.loc[first.name]
        counts = ", ".join(f"{k}: {v}" for k, v in rep.quarantined.items())
        raise DataError(
            rep.origin,
            f"{first['detail']}; {n_bad} of {rep.rows} rows quarantined "
            f"({n_bad / rep.rows:.1%}: {counts}), more than max_quarantine_fraction={limit:g}",
            column=str(first["column"]),
            row=int(row[_ROW]),
            ts=row["ts"] if pd.notna(row["ts"]) else None,
        )


def check_bars(
    raws: Sequence[RawFrame],
    cfg: ChecksConfig,
    *,
    interval: str | None = None,
    now: datetime | None = None,
    quarantine_dir: Path | None = None,
) -> CheckedBars:
    """Validate raw frames and return contract bars plus a :class:`CheckReport`.

    Parameters
    ----------
    raws:
        Frames from :mod:`pipelines.data.sources`, checked in order: of two rows with the
        same (symbol, ts) the first one read is kept.
    cfg:
        Strictness (gaps, staleness, quarantine limit).
    interval:
        Bar interval (pandas alias, e.g. ``"1h"``); inferred per symbol as the median spacing
        when ``None``.
    now:
        Reference time (UTC-aware) for the staleness check; the check is skipped (and the
        report says so) when ``None``, so results never depend on the wall clock by accident.
    quarantine_dir:
        Folder for ``quarantine.csv``; written only when rows are quarantined.
    """
    if not raws:
        raise DataError("input", "no data: the source returned no files")
    notes: list[str] = []
    df = pd.concat(
        [standardize(raw, i, notes) for i, raw in enumerate(raws)], ignore_index=True, copy=False
    )
    for note in dict.fromkeys(notes):  # once each, in order
        logger.info("%s", note)
    reason, column, detail = _row_problems(df)
    unsorted = _count_unsorted(df[reason == ""])
    reports = _file_reports(raws, df, reason, unsorted)
    bad = pd.DataFrame({"reason": reason, "column": column, "detail": detail})[reason != ""]
    q_path = None
    if len(bad) and quarantine_dir is not None:
        q_path = _write_quarantine(raws, df, bad, quarantine_dir)
        # the first bad value by file, column and row: the count alone (all a scheduled
        # collect printed) does not say what to fix
        first = bad.iloc[0]
        logger.warning(
            "quarantined %d row(s); first: %s: column %r, row %d: %s -> %s",
            len(bad),
            raws[int(df.at[first.name, _FILE])].origin,
            first["column"],
            int(df.at[first.name, _ROW]),
            first["detail"],
            q_path,
        )
    _enforce_quarantine_limit(reports, df, bad, cfg.max_quarantine_fraction)

    kept = df[reason == ""].sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    if kept.empty:
        raise DataError(raws[0].origin, "no valid rows left after quarantine")
    gaps, per_symbol = _gaps(kept, raws, cfg, interval)
    if gaps and cfg.fail_on_gaps:
        g = gaps[0]
        raise DataError(
            g.origin,
            f"gap of {g.intervals:g} intervals after {g.after} "
            f"(more than max_gap_intervals={cfg.max_gap_intervals:g})",
            column="ts",
            row=g.row,
            ts=g.before,
        )
    stale_after = pd.Timedelta(cfg.stale_after)
    stale_checked = stale_after > pd.Timedelta(0) and now is not None
    if stale_checked:
        assert now is not None
        _check_stale(kept, raws, stale_after, now)

    counts = reason[reason != ""].value_counts()
    symbols = []
    for sym, group in kept.groupby("symbol", sort=True):
        step, n_gaps, sessions_label, closed = per_symbol[str(sym)]
        symbols.append(
            SymbolReport(
                symbol=str(sym),
                rows=len(group),
                first_ts=group["ts"].iloc[0].isoformat(),
                last_ts=group["ts"].iloc[-1].isoformat(),
                interval=None if step is None else _freq_text(step),
                gaps=n_gaps,
                sessions=sessions_label,
                closed_market_breaks=closed,
            )
        )
    report = CheckReport(
        rows_in=len(df),
        rows_out=len(kept),
        quarantined={r: int(counts[r]) for r in QUARANTINE_REASONS if r in counts.index},
        unsorted=int(unsorted.sum()),
        gap_count=sum(v[1] for v in per_symbol.values()),
        stale_checked=bool(stale_checked),
        quarantine_path=None if q_path is None else str(q_path),
        files=reports,
        symbols=symbols,
        gaps=gaps,
    )
    columns = [*BAR_COLUMNS] + ([TRUE_REGIME_COLUMN] if TRUE_REGIME_COLUMN in kept else [])
    bars = kept[columns].copy()
    bars["symbol"] = bars["symbol"].astype("str")
    return CheckedBars(bars=bars, report=report)
