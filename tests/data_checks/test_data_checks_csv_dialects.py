"""CSV dialects of real exports: separators, decimal commas, epoch units, local times,
Yahoo's Adj Close, and gap checks that know when a market is closed."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs.data import ChecksConfig, DataConfig, FilesConfig
from pipelines.data.checks import check_bars, sessions_for
from pipelines.data.errors import DataError
from pipelines.data.sources import load_source, read_files, sniff_separator

GOOD = Path(__file__).resolve().parents[1] / "data" / "good"
BAD = Path(__file__).resolve().parents[1] / "data" / "bad"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_data_checks_sniffs_separator() -> None:
    assert sniff_separator("a;b;c\n1,5;2;3\n") == ";"
    assert sniff_separator("a\tb\tc\n1\t2\t3\n") == "\t"
    assert sniff_separator("a,b,c\n1,2,3\n") == ","
    assert sniff_separator("a|b|c\n1|2|3\n") == "|"
    assert sniff_separator("just one column\n") == ","


def test_data_checks_semicolon_decimal_comma_berlin_local_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = GOOD / "BERLIN_semicolon.csv"
    before = _sha(path)
    opts = FilesConfig(timezone="Europe/Berlin")
    with caplog.at_level(logging.INFO):
        out = check_bars(read_files(path, opts), ChecksConfig())
    bars = out.bars
    assert len(bars) == 12 and out.report.quarantined_total == 0
    assert bars["open"].iloc[0] == pytest.approx(100.0)
    assert bars["close"].iloc[1] == pytest.approx(100.75)  # "100,75": decimal comma
    # 20:00 CEST (+02:00) is 18:00 UTC; the repeated 02:00 (DST fall-back) is 00:00 and 01:00 UTC.
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-10-26T18:00:00Z")
    assert bars["ts"].is_monotonic_increasing and bars["ts"].is_unique
    assert set(bars["ts"].diff().dropna()) == {pd.Timedelta("1h")}
    assert "separator ';'" in caplog.text and "decimal comma" in caplog.text
    assert _sha(path) == before


def test_data_checks_naive_without_timezone_names_the_option() -> None:
    with pytest.raises(DataError, match=r"set data\.files\.timezone"):
        check_bars(read_files(GOOD / "BERLIN_semicolon.csv"), ChecksConfig())


def test_data_checks_semicolon_file_read_as_comma_says_separator() -> None:
    raws = read_files(GOOD / "BERLIN_semicolon.csv", FilesConfig(separator=","))
    with pytest.raises(DataError, match=r"the header is one column: set data\.files\.separator"):
        check_bars(raws, ChecksConfig())


def test_data_checks_nonexistent_local_time_is_fatal_with_row() -> None:
    raws = read_files(BAD / "nonexistent_local.csv", FilesConfig(timezone="Europe/Berlin"))
    with pytest.raises(DataError) as info:
        check_bars(raws, ChecksConfig())
    assert "row 2" in str(info.value) and "Europe/Berlin" in str(info.value)


def test_data_checks_unknown_timezone_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        FilesConfig(timezone="Mars/Base")


def test_data_checks_epoch_ms_tab_separated_auto(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        out = check_bars(read_files(GOOD / "EPOCH_ms.txt"), ChecksConfig())
    assert out.bars["ts"].iloc[0] == pd.Timestamp("2024-03-01T00:00:00Z")
    assert out.report.symbols[0].interval == "5min"
    assert "epoch timestamps in ms" in caplog.text


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_data_checks_epoch_units_auto_and_explicit(tmp_path: Path, unit: str, scale: int) -> None:
    start = 1_700_000_000
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{(start + 3600 * i) * scale},1,2,0.5,1.5,10" for i in range(5)]
    path = tmp_path / "E.csv"
    path.write_text("\n".join(lines) + "\n")
    expected = pd.Timestamp(start, unit="s", tz="UTC")
    for chosen in ("auto", unit):
        bars = check_bars(read_files(path, FilesConfig(epoch_unit=chosen)), ChecksConfig()).bars
        assert bars["ts"].iloc[0] == expected
        assert bars["ts"].iloc[1] - bars["ts"].iloc[0] == pd.Timedelta("1h")


def test_data_checks_epoch_parquet_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "ts": np.array([1_700_000_000_000 + 60_000 * i for i in range(4)], dtype="int64"),
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": 1.5,
            "volume": 3.0,
        }
    )
    frame.to_parquet(tmp_path / "P.parquet")
    bars = check_bars(read_files(tmp_path / "P.parquet"), ChecksConfig()).bars
    assert bars["ts"].iloc[3] == pd.Timestamp("2023-11-14T22:16:20Z")


def test_data_checks_bad_cell_in_epoch_column_names_its_row(tmp_path: Path) -> None:
    lines = ["timestamp;open;high;low;close;volume"]
    lines += [f"{1_704_067_200_000 + 3_600_000 * i};1;2;0.5;1.5;10" for i in range(40)]
    lines[30] = "notatime;1;2;0.5;1.5;10"  # data row 30
    path = tmp_path / "E.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        check_bars(read_files(path), ChecksConfig())
    message = str(info.value)
    assert "column 'timestamp', row 30" in message and "'notatime'" in message, message


def test_data_checks_epoch_of_no_unit_is_fatal() -> None:
    with pytest.raises(DataError) as info:
        check_bars(read_files(BAD / "epoch_unknown_unit.csv"), ChecksConfig())
    assert "column 'ts', row 1" in str(info.value)
    assert "set data.files.epoch_unit" in str(info.value)


def test_data_checks_wrong_epoch_unit_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "E.csv"
    path.write_text("ts,open,high,low,close,volume\n1700000000000000,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match="out of range in unit 's'"):
        check_bars(read_files(path, FilesConfig(epoch_unit="s")), ChecksConfig())


def test_data_checks_yahoo_adj_close_auto_uses_close_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = GOOD / "YAHOO_daily.csv"
    with caplog.at_level(logging.INFO):
        bars = check_bars(read_files(path), ChecksConfig()).bars
    assert bars["close"].iloc[0] == pytest.approx(50.0)
    assert caplog.text.count("using 'Close'") == 1


def test_data_checks_yahoo_adj_close_chosen_scales_ohlc() -> None:
    raws = read_files(GOOD / "YAHOO_daily.csv", FilesConfig(close_column="adj close"))
    out = check_bars(raws, ChecksConfig())
    first = out.bars.iloc[0]
    assert first["close"] == pytest.approx(45.0)
    assert first["open"] == pytest.approx(49.5 * 0.9)
    assert first["high"] == pytest.approx(51 * 0.9) and first["low"] == pytest.approx(49 * 0.9)
    assert out.report.quarantined_total == 0  # the scaled bar stays consistent


def test_data_checks_adj_close_missing_when_chosen_names_option(tmp_path: Path) -> None:
    raws = read_files(GOOD / "DEMO.csv", FilesConfig(close_column="adj close"))
    with pytest.raises(DataError, match=r"data\.files\.close_column is 'adj close'"):
        check_bars(raws, ChecksConfig())


def test_data_checks_only_adj_close_is_used_as_close(tmp_path: Path) -> None:
    path = tmp_path / "A.csv"
    path.write_text("date,open,high,low,adj_close,volume\n2024-01-02,1,2,0.5,1.5,10\n")
    bars = check_bars(read_files(path), ChecksConfig()).bars
    assert bars["close"].iloc[0] == pytest.approx(1.5)
    with pytest.raises(DataError, match=r"to use 'adj_close' set data\.files\.close_column"):
        check_bars(read_files(path, FilesConfig(close_column="close")), ChecksConfig())


def test_data_checks_files_options_reach_load_source() -> None:
    cfg = DataConfig(
        source="files",
        path=GOOD / "BERLIN_semicolon.csv",
        files=FilesConfig(timezone="Europe/Berlin"),
    )
    raws = load_source(cfg, seed=0)
    assert raws[0].options.timezone == "Europe/Berlin"
    assert len(check_bars(raws, cfg.checks).bars) == 12


# --------------------------------------------------------------------------- calendars


def _write_daily_weekdays(path: Path, days: pd.DatetimeIndex) -> None:
    lines = ["date,open,high,low,close,volume"]
    lines += [f"{d.date()},10,11,9,10.5,100" for d in days]
    path.write_text("\n".join(lines) + "\n")


def test_data_checks_daily_equity_weekends_and_holiday_are_not_gaps(tmp_path: Path) -> None:
    days = pd.bdate_range("2024-01-02", "2024-06-28")
    holidays = [pd.Timestamp("2024-01-15"), pd.Timestamp("2024-05-27")]
    outage = pd.bdate_range("2024-03-11", "2024-03-14")  # four trading days missing
    days = days.drop([*holidays, *outage])
    _write_daily_weekdays(tmp_path / "EQ.csv", days)
    raws = read_files(tmp_path / "EQ.csv")
    strict = check_bars(raws, ChecksConfig(calendar="24x7")).report
    assert strict.gap_count > 20  # every weekend counted
    for calendar in ("auto", "exchange"):
        report = check_bars(raws, ChecksConfig(calendar=calendar)).report
        assert report.gap_count == 1, calendar  # only the 4-day outage
        assert report.gaps[0].after == "2024-03-08T00:00:00+00:00"
        sym = report.symbols[0]
        assert sym.closed_market_breaks == strict.gap_count - 1
        assert "Mon,Tue,Wed,Thu,Fri" in sym.sessions


def _intraday_equity(days: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """30-minute bars 14:30-20:30 UTC (the NYSE day in winter) on the given days."""
    stamps = [
        d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(minutes=30 * k)
        for d in days
        for k in range(13)
    ]
    return pd.DatetimeIndex(stamps, tz="UTC")


def test_data_checks_intraday_sessions_inferred_nights_not_gaps(tmp_path: Path) -> None:
    days = pd.bdate_range("2024-01-08", "2024-03-01")
    stamps = _intraday_equity(days)
    stamps = stamps.drop(stamps[95:99])  # two hours missing inside one session
    lines = ["ts,open,high,low,close,volume"]
    lines += [f"{t.isoformat()},10,11,9,10.5,100" for t in stamps]
    (tmp_path / "NY.csv").write_text("\n".join(lines) + "\n")
    raws = read_files(tmp_path / "NY.csv")
    report = check_bars(raws, ChecksConfig()).report
    assert report.gap_count == 1
    assert report.symbols[0].sessions == "inferred (Mon,Tue,Wed,Thu,Fri 14:30-21:00 UTC)"
    assert report.symbols[0].closed_market_breaks == len(days) - 1
    assert check_bars(raws, ChecksConfig(calendar="24x7")).report.gap_count == len(days)


def test_data_checks_fx_24x5_weekend_not_gap_but_weekday_hole_is() -> None:
    stamps = pd.date_range("2024-01-07T22:00Z", "2024-02-02T20:00Z", freq="1h")
    weekday, hour = stamps.dayofweek, stamps.hour
    open_ = ~((weekday == 4) & (hour >= 21)) & (weekday != 5) & ~((weekday == 6) & (hour < 22))
    stamps = stamps[open_].delete(slice(50, 53))
    ts = pd.Series(stamps)
    sessions = sessions_for(ts, pd.Timedelta("1h"), "24x5")
    assert sessions.label == "24x5" and sessions.closed_days
    frame = pd.DataFrame(
        {"ts": stamps, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0}
    )
    from pipelines.data.sources import RawFrame

    raws = [RawFrame(origin="fx", frame=frame, symbol="EURUSD")]
    report = check_bars(raws, ChecksConfig(calendar="24x5")).report
    assert report.gap_count == 1 and report.symbols[0].closed_market_breaks == 3
    assert check_bars(raws, ChecksConfig(calendar="24x7")).report.gap_count == 4


def test_data_checks_short_data_stays_strict() -> None:
    ts = pd.Series(pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC"))
    assert sessions_for(ts, pd.Timedelta("1h"), "auto").grid is None
