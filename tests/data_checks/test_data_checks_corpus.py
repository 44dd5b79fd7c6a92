"""The bad-input corpus (tests/data/bad): one file per problem, exact messages and counts."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pandas as pd
import pytest

from configs.data import ChecksConfig, FilesConfig
from pipelines.data.checks import QUARANTINE_FILE, check_bars
from pipelines.data.errors import DataError
from pipelines.data.sources import read_files

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
GOOD = Path(__file__).resolve().parents[1] / "data" / "good"
LENIENT = ChecksConfig(max_quarantine_fraction=0.5)


def _origin(name: str) -> str:
    return str(BAD / name)


FATAL = {
    "empty.csv": "file is empty (no header, no rows)",
    "header_only.csv": "no data rows (header only)",
    "missing_column.csv": (
        "column 'volume': missing required column (found: ts, open, high, low, close)"
    ),
    "wrong_schema.parquet": "column 'open': missing required column (found: time, price, qty)",
    "naive_ts.csv": (
        "column 'ts', row 1: missing time zone (got '2024-01-02 00:00:00'); write timestamps "
        "with a UTC offset, e.g. 2024-01-02T15:00:00Z, or set data.files.timezone "
        "(e.g. Europe/Berlin) to the zone they are written in"
    ),
    "naive_ts.parquet": (
        "column 'ts', row 1: missing time zone: timestamps are naive (got '2024-01-02 00:00:00');"
        " store them time-zone aware, e.g. UTC, or set data.files.timezone (e.g. Europe/Berlin)"
        " to the zone they are written in"
    ),
    "mixed_offsets.csv": (
        "column 'ts', row 7: mixed time zones: offset '+02:00' differs from '+00:00' in row 1; "
        "convert the file to one zone (UTC)"
    ),
    "mixed_naive.csv": (
        "column 'ts', row 5: mixed time zones: no UTC offset here (got '2024-01-02 04:00:00') "
        "but row 1 has 'Z'"
    ),
    "invalid_ts.csv": "column 'ts', row 4: invalid timestamp (got '2024-13-45T00:00:00Z')",
    "not_iso_ts.csv": "column 'ts', row 2: not an ISO 8601 timestamp (got 'yesterday')",
    "non_numeric.csv": (
        "column 'high', row 3 (ts 2024-01-02T02:00:00+00:00): not a number (got 'abc')"
    ),
}


@pytest.mark.parametrize("name", sorted(FATAL))
def test_data_checks_fatal_message(name: str) -> None:
    with pytest.raises(DataError) as info:
        check_bars(read_files(BAD / name), ChecksConfig())
    assert str(info.value) == f"{_origin(name)}: {FATAL[name]}"
    assert "\n" not in str(info.value)


# name -> (reason, column, row, ts, detail)
ROW_LEVEL = {
    "nan_value.csv": ("missing_value", "close", 5, "2024-01-02T04:00:00+00:00", "empty cell"),
    "inf_value.csv": (
        "non_finite",
        "open",
        8,
        "2024-01-02T07:00:00+00:00",
        "value must be finite (got inf)",
    ),
    "negative_price.csv": (
        "non_positive_price",
        "close",
        7,
        "2024-01-02T06:00:00+00:00",
        "price must be > 0 (got -3.5)",
    ),
    "negative_volume.csv": (
        "negative_volume",
        "volume",
        10,
        "2024-01-02T09:00:00+00:00",
        "volume must be >= 0 (got -10)",
    ),
    "high_below_low.csv": (
        "inconsistent_ohlc",
        "high",
        4,
        "2024-01-02T03:00:00+00:00",
        "high 100.07 < low 100.62",
    ),
    "close_outside_range.csv": (
        "inconsistent_ohlc",
        "close",
        9,
        "2024-01-02T08:00:00+00:00",
        "close 102.66 outside [low 100.81, high 101.66]",
    ),
    "duplicate_ts.csv": (
        "duplicate_ts",
        "ts",
        6,
        "2024-01-02T04:00:00+00:00",
        "duplicate ts 2024-01-02T04:00:00+00:00",
    ),
}


@pytest.mark.parametrize("name", sorted(ROW_LEVEL))
def test_data_checks_row_problem_over_limit_is_fatal(name: str) -> None:
    reason, column, row, ts, detail = ROW_LEVEL[name]
    with pytest.raises(DataError) as info:
        check_bars(read_files(BAD / name), ChecksConfig())  # 1 of 12 rows > 5 %
    assert str(info.value) == (
        f"{_origin(name)}: column '{column}', row {row} (ts {ts}): {detail}; "
        f"1 of 12 rows quarantined (8.3%: {reason}: 1), more than max_quarantine_fraction=0.05"
    )


@pytest.mark.parametrize("name", sorted(ROW_LEVEL))
def test_data_checks_row_problem_quarantined(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reason, column, row, _, detail = ROW_LEVEL[name]
    with caplog.at_level(logging.WARNING, logger="pipelines.data.checks"):
        out = check_bars(read_files(BAD / name), LENIENT, quarantine_dir=tmp_path)
    # the log names the bad value (a scheduled collect logged only "quarantined 1 rows")
    said = f"quarantined 1 row(s); first: {_origin(name)}: column '{column}', row {row}: {detail}"
    assert said in caplog.text
    rep = out.report
    assert rep.quarantined == {reason: 1}
    assert (rep.rows_in, rep.rows_out) == (12, 11)
    assert rep.files[0].quarantined == {reason: 1} and rep.files[0].kept == 11
    q = pd.read_csv(tmp_path / QUARANTINE_FILE, dtype=str)
    assert rep.quarantine_path == str(tmp_path / QUARANTINE_FILE)
    assert len(q) == 1
    rec = q.iloc[0]
    assert (rec["origin"], int(rec["row"]), rec["reason"], rec["column"], rec["detail"]) == (
        _origin(name),
        row,
        reason,
        column,
        detail,
    )
    # The raw cells are kept as written in the file.
    raw = pd.read_csv(BAD / name, dtype=str, keep_default_na=False).iloc[row - 1]
    assert rec["raw_ts"] == raw["ts"]
    assert out.bars["ts"].is_unique and out.bars["ts"].is_monotonic_increasing


def test_data_checks_unsorted_rows_sorted_and_counted() -> None:
    out = check_bars(read_files(BAD / "unsorted.csv"), ChecksConfig())
    assert out.report.unsorted == 1 and out.report.files[0].unsorted == 1
    assert out.bars["ts"].is_monotonic_increasing
    assert out.report.quarantined == {} and out.report.rows_out == 12
    raw = pd.read_csv(BAD / "unsorted.csv")
    assert not pd.to_datetime(raw["ts"]).is_monotonic_increasing  # the file stays as it was


def test_data_checks_gap_counted_or_fatal() -> None:
    out = check_bars(read_files(BAD / "gap.csv"), ChecksConfig())
    assert out.report.gap_count == 1
    gap = out.report.gaps[0]
    assert (gap.row, gap.after, gap.before, gap.intervals) == (
        9,
        "2024-01-02T07:00:00+00:00",
        "2024-01-02T13:00:00+00:00",
        6.0,
    )
    assert out.report.symbols[0].interval == "1h"
    with pytest.raises(DataError) as info:
        check_bars(read_files(BAD / "gap.csv"), ChecksConfig(fail_on_gaps=True))
    assert str(info.value) == (
        f"{_origin('gap.csv')}: column 'ts', row 9 (ts 2024-01-02T13:00:00+00:00): gap of 6 "
        "intervals after 2024-01-02T07:00:00+00:00 (more than max_gap_intervals=1.5)"
    )
    # With a configured 4 h interval the 6 h spacing is 1.5 intervals: not a gap.
    relaxed = check_bars(read_files(BAD / "gap.csv"), ChecksConfig(), interval="4h")
    assert relaxed.report.gap_count == 0


def _hashes(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def test_data_checks_never_modify_raw_files(tmp_path: Path) -> None:
    before = _hashes(BAD), _hashes(GOOD)
    for f in sorted(BAD.iterdir()):
        try:
            check_bars(read_files(f), LENIENT, quarantine_dir=tmp_path / f.stem)
        except DataError:
            pass
    check_bars(read_files(GOOD, FilesConfig(timezone="Europe/Berlin")), ChecksConfig())
    assert (_hashes(BAD), _hashes(GOOD)) == before


def test_data_checks_good_demo_file() -> None:
    out = check_bars(read_files(GOOD / "DEMO.csv"), ChecksConfig())
    assert out.report.rows_out == 2000 and out.report.quarantined_total == 0
    assert list(out.bars.columns) == ["ts", "symbol", "open", "high", "low", "close", "volume"]
    assert set(out.bars["symbol"]) == {"DEMO"}
    assert str(out.bars["ts"].dtype) == "datetime64[us, UTC]"
    assert out.report.gap_count == 0


def test_data_checks_folder_with_many_files_fails_on_first_fatal() -> None:
    # Files are read in name order; the first bad one stops the read and is named.
    with pytest.raises(DataError, match=r"^.*/empty\.csv: file is empty"):
        check_bars(read_files(BAD), ChecksConfig())
