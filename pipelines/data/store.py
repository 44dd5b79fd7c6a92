"""The bar store: a Parquet dataset partitioned by symbol, appended to incrementally.

Layout under ``root``::

    _watermarks.json                     the commit record (written atomically, last)
    symbol=SYN1/part-00000.parquet       immutable parts, one per append that added rows
    symbol=SYN1/part-00001.parquet

``_watermarks.json`` holds, per symbol, the watermark (newest stored ts), the row count and the
list of committed part files. It is the single source of truth: an append writes its part
files first (each via a temporary name + ``os.replace``), then replaces the JSON in one
``os.replace``. A crash before that leaves part files nobody lists; readers ignore them (and
never return rows beyond a watermark), and the next append deletes them before writing. So the
store is always at the last completed append, and re-running an append adds nothing twice.

One writer at a time (the collect flow); readers may run concurrently with it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, TRUE_REGIME_COLUMN
from pipelines.workdir import atomic_write_text

logger = logging.getLogger(__name__)

WATERMARK_FILE = "_watermarks.json"
_FORMAT = 1
_PART_RE = re.compile(r"^part-(\d+)\.parquet$")


@dataclass(frozen=True)
class AppendResult:
    """What one append did, per symbol."""

    added: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, str] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)

    @property
    def rows_added(self) -> int:
        """Rows added over all symbols."""
        return sum(self.added.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON types only)."""
        return {
            "added": dict(self.added),
            "skipped": dict(self.skipped),
            "watermarks": dict(self.watermarks),
            "parts": list(self.parts),
            "rows_added": self.rows_added,
        }


def _symbol_dir(symbol: str) -> str:
    """Partition folder name; the symbol is percent-encoded so ``EUR/USD`` stays one folder."""
    return f"symbol={quote(symbol, safe='')}"


def _load_state(root: Path) -> dict[str, Any]:
    path = root / WATERMARK_FILE
    if not path.exists():
        return {"format": _FORMAT, "symbols": {}}
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if state.get("format") != _FORMAT:
        raise ValueError(f"{path}: unsupported store format {state.get('format')!r}")
    return state


def _write_state(root: Path, state: dict[str, Any]) -> None:
    atomic_write_text(root / WATERMARK_FILE, json.dumps(state, sort_keys=True, indent=1))


def watermarks(root: Path | str) -> dict[str, pd.Timestamp]:
    """Newest stored ts per symbol (empty for a new store)."""
    state = _load_state(Path(root))
    return {s: pd.Timestamp(v["watermark"]) for s, v in sorted(state["symbols"].items())}


def _validate(bars: pd.DataFrame) -> None:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing}")
    if getattr(bars["ts"].dtype, "tz", None) is None:
        raise ValueError("bars 'ts' must be a time-zone aware (UTC) datetime column")
    if bars["symbol"].isna().any():
        raise ValueError("bars 'symbol' has missing values")


def _remove_orphans(folder: Path, committed: Iterable[str]) -> None:
    """Delete part files (and temporaries) of a crashed append: listed nowhere, read by none."""
    keep = {Path(p).name for p in committed}
    for f in folder.iterdir():
        orphan = (_PART_RE.match(f.name) and f.name not in keep) or f.name.endswith(".tmp")
        if f.is_file() and orphan:
            logger.warning("removing uncommitted part %s", f)
            f.unlink()


def _next_part(folder: Path) -> int:
    used = [int(m.group(1)) for f in folder.iterdir() if (m := _PART_RE.match(f.name))]
    return max(used, default=-1) + 1


#: Every part file's columns and types, whatever the source handed over: prices and volume
#: float64, ``ts`` microseconds UTC, the true regime int8 (the generator's). The folder is the
#: symbol. One schema across parts is what lets ``pandas.read_parquet(root)`` read the store:
#: an int64 volume in one append and a float64 one in the next ("Float value 0.5 was
#: truncated converting to int64"), or a symbol column in the file as well as in the folder
#: ("Field symbol has incompatible types"), made it fail.
PART_SCHEMA: Final = pa.schema(
    [pa.field("ts", pa.timestamp("us", tz="UTC"))]
    + [pa.field(c, pa.float64()) for c in NUMERIC_COLUMNS]
)
_REGIME_FIELD: Final = pa.field(TRUE_REGIME_COLUMN, pa.int8())


def _part_schema(with_regime: bool) -> pa.Schema:
    return PART_SCHEMA.append(_REGIME_FIELD) if with_regime else PART_SCHEMA


def _write_part(path: Path, frame: pd.DataFrame) -> None:
    """One part in :data:`PART_SCHEMA` (nanosecond stamps are cut to microseconds)."""
    schema = _part_schema(TRUE_REGIME_COLUMN in frame)
    table = pa.Table.from_pandas(frame[schema.names], preserve_index=False)
    table = table.cast(schema, safe=False).replace_schema_metadata(None)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _canonical_parts(root: Path, state: dict[str, Any]) -> list[Path]:
    """Rewrite committed parts that an older writer left in another schema (a symbol column
    in the file, an int volume, nanosecond stamps) as new parts in :data:`PART_SCHEMA`, and
    list those in ``state`` instead; returns the files they replace, for the caller to delete
    once ``state`` is committed. Their rows are kept as they are, up to the watermark."""
    replaced: list[Path] = []
    for sym, entry in state["symbols"].items():
        parts = []
        for rel in entry["parts"]:
            path = root / rel
            have = pq.read_schema(path).remove_metadata()
            want = _part_schema(TRUE_REGIME_COLUMN in have.names)
            if have.equals(want):
                parts.append(rel)
                continue
            frame = pq.read_table(path).to_pandas()
            folder = path.parent
            new_rel = f"{_symbol_dir(sym)}/part-{_next_part(folder):05d}.parquet"
            _write_part(root / new_rel, frame.drop(columns="symbol", errors="ignore"))
            logger.info("%s: rewrote %s as %s (one schema for every part)", root, rel, new_rel)
            parts.append(new_rel)
            replaced.append(path)
        entry["parts"] = parts
    return replaced


def append_bars(root: Path | str, bars: pd.DataFrame) -> AppendResult:
    """Add the rows newer than each symbol's watermark; idempotent.

    Rows at or before a symbol's watermark are skipped (counted), repeats of (symbol, ts)
    within ``bars`` keep the first. Extra columns other than the true ``regime`` are dropped.
    Parts are written in :data:`PART_SCHEMA`; committed parts an older writer left in another
    schema are rewritten in it by the next append (committed with the new rows).
    """
    root = Path(root)
    _validate(bars)
    root.mkdir(parents=True, exist_ok=True)
    state = _load_state(root)
    for sym, entry in state["symbols"].items():
        # before any rewrite: a crashed append's leftovers go, what is listed stays
        _remove_orphans(root / _symbol_dir(sym), entry["parts"])
    replaced = _canonical_parts(root, state)
    columns = [*BAR_COLUMNS] + ([TRUE_REGIME_COLUMN] if TRUE_REGIME_COLUMN in bars else [])
    ts_utc = bars["ts"].dt.tz_convert("UTC")
    frame = bars.assign(ts=ts_utc, symbol=bars["symbol"].astype("str"))[columns]
    added: dict[str, int] = {}
    skipped: dict[str, int] = {}
    parts: list[str] = []
    for symbol, group in frame.groupby("symbol", sort=True):
        sym = str(symbol)
        entry = state["symbols"].get(sym)
        mark = pd.Timestamp(entry["watermark"]) if entry else None
        new = group if mark is None else group[group["ts"] > mark]
        new = new.drop_duplicates(subset=["ts"], keep="first").sort_values("ts", kind="stable")
        skipped[sym] = len(group) - len(new)
        added[sym] = len(new)
        if new.empty:
            continue
        folder = root / _symbol_dir(sym)
        folder.mkdir(exist_ok=True)
        if entry is None:
            _remove_orphans(folder, [])  # a new symbol's folder left by a crashed append
        rel = f"{_symbol_dir(sym)}/part-{_next_part(folder):05d}.parquet"
        # The folder name is the symbol (hive partitioning): a symbol column in the file too
        # made `pandas.read_parquet(root)` fail ("Field symbol has incompatible types").
        _write_part(root / rel, new.drop(columns="symbol").reset_index(drop=True))
        parts.append(rel)
        state["symbols"][sym] = {
            "watermark": new["ts"].iloc[-1].isoformat(),
            "rows": (entry["rows"] if entry else 0) + len(new),
            "parts": [*(entry["parts"] if entry else []), rel],
        }
    if parts or replaced:
        _write_state(root, state)  # the commit point
    for path in replaced:
        path.unlink(missing_ok=True)  # listed nowhere now
    marks = {s: v["watermark"] for s, v in sorted(state["symbols"].items())}
    logger.debug("appended %d rows in %d parts to %s", sum(added.values()), len(parts), root)
    return AppendResult(added=added, skipped=skipped, watermarks=marks, parts=parts)


def read_bars(root: Path | str, symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """Committed bars sorted by (symbol, ts), unique per (symbol, ts).

    Reads only the parts listed in the commit record, and never a row beyond a watermark.
    Unknown symbols are an error (a typo must not look like "no data").
    """
    root = Path(root)
    try:
        return _read_committed(root, _load_state(root), symbols)
    except FileNotFoundError:
        # an append committed between reading the record and a part, and deleted a part it
        # had rewritten (``_canonical_parts``): the new record lists its replacement
        return _read_committed(root, _load_state(root), symbols)


def _read_committed(
    root: Path, state: dict[str, Any], symbols: Iterable[str] | None
) -> pd.DataFrame:
    stored = state["symbols"]
    wanted = sorted(stored) if symbols is None else sorted(set(symbols))
    unknown = [s for s in wanted if s not in stored]
    if unknown:
        raise ValueError(
            f"{root}: no bars stored for {', '.join(unknown)} (stored: {', '.join(sorted(stored))})"
        )
    frames = []
    for sym in wanted:
        mark = pd.Timestamp(stored[sym]["watermark"])
        for rel in stored[sym]["parts"]:
            part = pq.read_table(root / rel).to_pandas()
            # parts written before the partition folder alone held the symbol carry it too
            part = part.assign(symbol=sym) if "symbol" not in part else part
            frames.append(part[part["ts"] <= mark][list(dict.fromkeys(["ts", "symbol", *part]))])
    if not frames:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS})
        empty["ts"] = pd.Series(dtype="datetime64[us, UTC]")
        empty["symbol"] = pd.Series(dtype="str")
        return empty
    out = pd.concat(frames, ignore_index=True)
    out["symbol"] = out["symbol"].astype("str")
    out = out.drop_duplicates(subset=["symbol", "ts"], keep="first")
    return out.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
