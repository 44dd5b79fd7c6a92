"""Where raw bars come from: local files, package sample bars, S3 prefixes, the generator.

Every reader returns :class:`RawFrame` objects: the table as read (CSV timestamps kept as text,
and every cell as text when a column does not parse as numbers, so that
:mod:`pipelines.data.checks` can say which cell was malformed) together with its
origin (a file path or ``s3://`` URI) and the symbol to use when the table has no symbol
column (the file's stem). Column matching, time-zone rules and every other validation live in
the checks, so all sources get the same rules and the same error messages.

Readers never modify, move or delete what they read.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pandas as pd

from configs.data import DataConfig, FilesConfig
from pipelines.data.errors import DataError
from pipelines.data.synthetic import generate_bars

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger(__name__)

#: File name endings read as CSV / Parquet (lower-cased comparison).
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")

#: Sample bar sets shipped by the ``backtesting`` package (CSV files in ``backtesting/test``).
SAMPLE_NAMES = ("GOOG", "EURUSD", "BTCUSD")


@dataclass(frozen=True)
class RawFrame:
    """One table as read, plus where it came from.

    Attributes
    ----------
    origin:
        File path, ``s3://bucket/key`` or ``synthetic:<symbol>``; errors name it.
    frame:
        The table as read. Its index is the 0-based data-row position in the origin.
    symbol:
        Symbol for rows when the table has no ``symbol`` column (the file's stem).
    options:
        How the file's cells are to be read (epoch unit, zone of naive times, which close):
        the checks apply them, so every source gets the same rules.
    """

    origin: str
    frame: pd.DataFrame
    symbol: str
    options: FilesConfig = field(default_factory=FilesConfig)


def file_kind(name: str) -> str | None:
    """``"csv"``, ``"parquet"`` or ``None`` (not a data file), from the name's ending."""
    low = name.lower()
    if low.endswith(CSV_SUFFIXES):
        return "csv"
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _stem(name: str) -> str:
    """File name without its data suffix: ``ES.csv.gz`` -> ``ES``."""
    base = PurePosixPath(name).name
    for suffix in sorted(CSV_SUFFIXES + PARQUET_SUFFIXES, key=len, reverse=True):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


#: Columns kept as text when reading CSV (lower-cased names): timestamps must reach the checks
#: as written, so missing or mixed time zones can be reported instead of silently converted.
TEXT_COLUMNS = ("ts", "timestamp", "datetime", "date", "time", "symbol")


#: Separators sniffed by ``separator: auto``, in order of preference on a tie.
SEPARATORS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 64 * 1024
_COMMA_DECIMAL = re.compile(r"(?:^|[;\t])\s*-?\d+,\d+\s*(?=[;\t]|$)", re.MULTILINE)
_POINT_DECIMAL = re.compile(r"(?:^|[;\t])\s*-?\d+\.\d+\s*(?=[;\t]|$)", re.MULTILINE)


def _sample_text(source: Any, compression: str | None) -> str:
    """The first bytes of a CSV as text (decompressed), to sniff its dialect."""
    if hasattr(source, "read"):
        raw = source.read(_SAMPLE_BYTES)
        source.seek(0)
        if compression == "gzip" or raw[:2] == b"\x1f\x8b":
            try:
                raw = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(_SAMPLE_BYTES)
            except (OSError, EOFError):
                pass  # truncated sample: what was decompressed is lost; sniff the header only
    else:
        path = Path(source)
        opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            raw = fh.read(_SAMPLE_BYTES)
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return text.lstrip("\ufeff")


def sniff_separator(sample: str) -> str:
    """The separator that splits the header and the next rows into the same, largest count.

    A header such as ``Date;Open;High;Low;Close;Volume`` has 5 ``;`` and no ``,``; the rows
    must agree (a decimal comma in the rows does not change the header's count).
    """
    lines = [ln for ln in sample.splitlines()[:20] if ln.strip()]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the sample may cut the last line short
    if not lines:
        return ","
    scores = []
    for rank, sep in enumerate(SEPARATORS):
        fields = lines[0].count(sep) + 1
        rows_agree = all(ln.count(sep) + 1 == fields for ln in lines[1:])
        scores.append((fields > 1 and rows_agree, fields, -rank, sep))
    return max(scores)[3] if max(scores)[1] > 1 else ","


def _dialect(source: Any, compression: str | None, options: FilesConfig, origin: str) -> dict:
    """``sep`` and ``decimal`` for :func:`pandas.read_csv`, configured or sniffed (and logged)."""
    sample = _sample_text(source, compression)
    sep = sniff_separator(sample) if options.separator == "auto" else options.separator
    if options.separator == "auto" and sep != ",":
        logger.info("%s: separator %r (sniffed; set data.files.separator to override)", origin, sep)
    decimal = options.decimal
    if decimal == "auto":
        comma = sep != "," and bool(_COMMA_DECIMAL.search(sample.replace(sep, ";")))
        decimal = "," if comma and not _POINT_DECIMAL.search(sample.replace(sep, ";")) else "."
        if decimal == ",":
            logger.info("%s: decimal comma (sniffed; set data.files.decimal to override)", origin)
    return {"sep": sep, "decimal": decimal}


def _read_csv(
    source: Any, compression: str | None, options: FilesConfig | None = None, origin: str = ""
) -> pd.DataFrame:
    """CSV via pyarrow (fast, typed numbers), falling back to all-text cells.

    The separator (and decimal mark) is sniffed unless configured. Timestamp and symbol
    columns are always read as text. When pyarrow cannot type a column (text in a price
    column beyond its inference block), the file is re-read with every cell as text; the
    checks then name the offending cell.
    """
    options = options or FilesConfig()
    dialect = _dialect(source, compression, options, origin)
    kw: dict[str, Any] = {"compression": compression or "infer", "sep": dialect["sep"]}
    header = pd.read_csv(source, nrows=0, **kw)
    text = {c: str for c in header.columns if str(c).strip().lower() in TEXT_COLUMNS}
    if hasattr(source, "seek"):
        source.seek(0)
    if dialect["decimal"] == ".":
        try:
            return pd.read_csv(source, engine="pyarrow", dtype=text, **kw)
        except (ValueError, TypeError) as exc:
            logger.debug("pyarrow CSV read failed (%s); re-reading as text", exc)
        if hasattr(source, "seek"):
            source.seek(0)
        return pd.read_csv(source, dtype=str, skipinitialspace=True, **kw)
    # Decimal comma: the C parser converts "1,5" itself; cells it cannot convert stay text.
    return pd.read_csv(source, dtype=text, decimal=",", skipinitialspace=True, **kw)


def _read_table(
    source: Any,
    kind: str,
    origin: str,
    compression: str | None = None,
    options: FilesConfig | None = None,
) -> pd.DataFrame:
    """Read one CSV or Parquet table; unreadable input is a DataError."""
    try:
        if kind == "csv":
            frame = _read_csv(source, compression, options, origin)
        else:
            frame = pd.read_parquet(source, engine="pyarrow")
    except pd.errors.EmptyDataError:
        raise DataError(origin, "file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(origin, f"cannot read {kind.upper()} file: {first}") from None
    return frame.reset_index(drop=True)


def read_file(path: Path | str, options: FilesConfig | None = None) -> RawFrame:
    """Read one CSV or Parquet file."""
    p = Path(path)
    kind = file_kind(p.name)
    if kind is None:
        raise DataError(str(p), "not a CSV or Parquet file (expected .csv, .csv.gz or .parquet)")
    if not p.is_file():
        raise DataError(str(p), "file does not exist")
    opts = options or FilesConfig()
    frame = _read_table(p, kind, str(p), options=opts)
    return RawFrame(origin=str(p), frame=frame, symbol=_stem(p.name), options=opts)


def read_files(path: Path | str, options: FilesConfig | None = None) -> list[RawFrame]:
    """A CSV/Parquet file, or every CSV/Parquet file directly inside a folder (sorted by name).

    Other files in the folder are skipped (and logged); a folder without any data file is an
    error, because a run on no data would otherwise look like a run on unchanged data.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(str(p), "path does not exist")
    if p.is_file():
        return [read_file(p, options)]
    files = sorted(f for f in p.iterdir() if f.is_file() and file_kind(f.name) is not None)
    skipped = sorted(f.name for f in p.iterdir() if f.is_file() and file_kind(f.name) is None)
    if skipped:
        logger.info("%s: skipping %d non-data files: %s", p, len(skipped), ", ".join(skipped))
    if not files:
        raise DataError(str(p), "folder holds no CSV or Parquet files")
    return [read_file(f, options) for f in files]


def read_sample(names: Iterable[str]) -> list[RawFrame]:
    """Real bars shipped by the ``backtesting`` package, read offline from its CSV files.

    The package's timestamps are naive. We assume **UTC** for all of them:

    * ``GOOG`` (NASDAQ daily, 2004-2013) is labelled by session date; like any date-only file
      here, a date is taken as that day's 00:00 UTC.
    * ``EURUSD`` (hourly, 2017-04 to 2018-02) is UTC: the FX week opens at Sunday 21:00 in
      summer and 22:00 in winter, which is 17:00 New York in both, as UTC predicts.
    * ``BTCUSD`` (monthly, 2012-2024) is date-labelled, treated like ``GOOG``.

    The origin is the package's CSV file, so row numbers in errors match that file.
    """
    import backtesting.test as bt_test

    folder = Path(bt_test.__file__).parent
    out = []
    for name in names:
        if name not in SAMPLE_NAMES:
            raise DataError(
                f"sample:{name}", f"unknown sample; choose from {', '.join(SAMPLE_NAMES)}"
            )
        path = folder / f"{name}.csv"
        frame = pd.read_csv(path, index_col=0, parse_dates=True)
        ts = pd.DatetimeIndex(frame.index).tz_localize("UTC")
        frame = frame.reset_index(drop=True)
        frame.insert(0, "ts", ts)
        out.append(RawFrame(origin=str(path), frame=frame, symbol=name))
    return out


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise DataError(uri, "not an s3:// URI (expected s3://bucket/prefix)")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise DataError(uri, "missing bucket name")
    return bucket, prefix


def read_s3(uri: str, client: Any, options: FilesConfig | None = None) -> list[RawFrame]:
    """Every CSV/Parquet object under an S3 prefix (sorted by key, sub-"folders" included).

    Uses a boto3 client passed in (endpoint, credentials and retries are the caller's), so it
    works the same against AWS, MinIO or a moto server on loopback.
    """
    bucket, prefix = parse_s3_uri(uri)
    keys: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    data_keys = sorted(k for k in keys if file_kind(k) is not None)
    if not data_keys:
        raise DataError(uri, f"no CSV or Parquet objects under this prefix ({len(keys)} others)")
    out = []
    for key in data_keys:
        origin = f"s3://{bucket}/{key}"
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        kind = file_kind(key)
        assert kind is not None  # filtered above
        compression = "gzip" if key.lower().endswith(".gz") else None
        opts = options or FilesConfig()
        frame = _read_table(io.BytesIO(body), kind, origin, compression, opts)
        out.append(RawFrame(origin=origin, frame=frame, symbol=_stem(key), options=opts))
    return out


def read_synthetic(cfg: DataConfig, seed: int) -> list[RawFrame]:
    """The seeded generator's bars, one frame per symbol (keeps the true ``regime`` column)."""
    bars = generate_bars(cfg.synthetic, seed)
    return [
        RawFrame(origin=f"synthetic:{sym}", frame=group.reset_index(drop=True), symbol=str(sym))
        for sym, group in bars.groupby("symbol", sort=True)
    ]


def load_source(cfg: DataConfig, seed: int, s3_client: Any = None) -> list[RawFrame]:
    """Raw frames from the configured source (``cfg.source``).

    ``s3_client`` is required for ``s3``: pipelines code never builds network clients itself
    (the task builds one from ``cfg.s3_endpoint_url``).
    """
    if cfg.source == "synthetic":
        return read_synthetic(cfg, seed)
    if cfg.source == "files":
        if cfg.path is None:
            raise DataError("config", "data.path must be set when data.source is 'files'")
        return read_files(cfg.path, cfg.files)
    if cfg.source == "sample":
        return read_sample(cfg.sample)
    if cfg.source == "s3":
        if cfg.s3_uri is None:
            raise DataError("config", "data.s3_uri must be set when data.source is 's3'")
        if s3_client is None:
            raise ValueError("data.source 's3' needs an S3 client (pass s3_client)")
        return read_s3(cfg.s3_uri, s3_client, cfg.files)
    raise DataError("config", f"unknown data.source {cfg.source!r}")
