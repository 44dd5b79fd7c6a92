"""Sources (files, package samples, S3 on a real loopback server, synthetic) and their checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pandas as pd
import pytest

from configs.data import ChecksConfig, DataConfig
from configs.settings import load_config
from pipelines.data.checks import check_bars
from pipelines.data.errors import DataError
from pipelines.data.sources import load_source, read_files, read_s3, read_sample

GOOD = Path(__file__).resolve().parents[1] / "data" / "good" / "DEMO.csv"
BAD = Path(__file__).resolve().parents[1] / "data" / "bad"


def _small(n: int = 50, symbols: tuple[str, ...] = ("AAA", "BBB")) -> DataConfig:
    cfg = load_config().data
    syn = cfg.synthetic.model_copy(update={"n_bars": n, "symbols": list(symbols)})
    return cfg.model_copy(update={"synthetic": syn})


def test_data_checks_columns_case_insensitive_and_symbol_column(tmp_path: Path) -> None:
    text = (
        "Symbol,TIMESTAMP,Open,HIGH,low,Close,Volume\n"
        "ES,2024-03-01T10:00:00+02:00,10,11,9,10.5,100\n"
        "NQ,2024-03-01T10:00:00+02:00,20,21,19,20.5,200\n"
        "ES,2024-03-01T11:00:00+02:00,10.5,11,10,10.8,100\n"
    )
    (tmp_path / "mixed.csv").write_text(text)
    bars = check_bars(read_files(tmp_path / "mixed.csv"), ChecksConfig()).bars
    assert list(bars["symbol"]) == ["ES", "ES", "NQ"]
    # +02:00 converted to UTC.
    assert bars["ts"].iloc[0] == pd.Timestamp("2024-03-01T08:00:00Z")


def test_data_checks_date_only_is_utc_midnight(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1.5,2,1,1.2,10\n"
    (tmp_path / "daily.csv").write_text(text)
    out = check_bars(read_files(tmp_path / "daily.csv"), ChecksConfig())
    assert list(out.bars["ts"]) == [
        pd.Timestamp("2024-01-02T00:00:00Z"),
        pd.Timestamp("2024-01-03T00:00:00Z"),
    ]
    assert set(out.bars["symbol"]) == {"daily"}  # from the file's stem
    assert out.report.symbols[0].interval == "24h"


def test_data_checks_folder_and_parquet_roundtrip(tmp_path: Path) -> None:
    bars = check_bars(read_files(GOOD), ChecksConfig()).bars
    folder = tmp_path / "in"
    folder.mkdir()
    bars.iloc[:1000].drop(columns="symbol").to_parquet(folder / "A.parquet")
    bars.iloc[1000:].drop(columns="symbol").to_csv(folder / "B.csv", index=False)
    (folder / "notes.txt.md").write_text("ignored")
    raws = read_files(folder)
    assert [Path(r.origin).name for r in raws] == ["A.parquet", "B.csv"]
    out = check_bars(raws, ChecksConfig())
    assert out.report.symbols[0].symbol == "A" and out.report.symbols[0].rows == 1000
    back = out.bars[out.bars["symbol"] == "B"].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        back.drop(columns="symbol"),
        bars.iloc[1000:].drop(columns="symbol").reset_index(drop=True),
    )


def test_data_checks_duplicates_across_files_keep_first(tmp_path: Path) -> None:
    rows = "ts,symbol,open,high,low,close,volume\n2024-01-01T00:00:00Z,X,1,2,0.5,1,5\n"
    (tmp_path / "a.csv").write_text(rows + "2024-01-01T01:00:00Z,X,1,2,0.5,1.1,5\n")
    (tmp_path / "b.csv").write_text(rows.replace(",1,5", ",1.9,5"))
    out = check_bars(read_files(tmp_path), ChecksConfig(max_quarantine_fraction=1.0))
    assert out.report.quarantined == {"duplicate_ts": 1}
    assert out.report.files[1].quarantined == {"duplicate_ts": 1}
    assert list(out.bars["close"]) == [1.0, 1.1]


def test_data_checks_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope: path does not exist$"):
        read_files(tmp_path / "nope")
    with pytest.raises(DataError, match=r"folder holds no CSV or Parquet files$"):
        read_files(tmp_path)
    cfg = DataConfig(source="files")
    with pytest.raises(DataError, match=r"^config: data.path must be set"):
        load_source(cfg, 0)


def test_data_checks_stale_needs_now_and_is_fatal() -> None:
    cfg = ChecksConfig(stale_after="2h")
    raws = read_files(GOOD)
    last = pd.Timestamp("2024-03-24T07:00:00Z")
    fresh = check_bars(raws, cfg, now=(last + pd.Timedelta("1h")).to_pydatetime())
    assert fresh.report.stale_checked
    assert not check_bars(raws, cfg).report.stale_checked
    with pytest.raises(DataError) as info:
        check_bars(raws, cfg, now=datetime(2024, 3, 25, tzinfo=UTC))
    assert str(info.value) == (
        f"{GOOD}: column 'ts', row 2000 (ts 2024-03-24T07:00:00+00:00): stale data: newest DEMO "
        "bar is 0 days 17:00:00 old at 2024-03-25T00:00:00+00:00 (stale_after=0 days 02:00:00)"
    )


def test_data_checks_sample_bars_are_real_and_utc() -> None:
    raws = read_sample(["GOOG", "EURUSD"])
    out = check_bars(raws, ChecksConfig())
    by_sym = {s.symbol: s for s in out.report.symbols}
    assert by_sym["GOOG"].rows == 2148 and by_sym["EURUSD"].rows == 5000
    assert by_sym["GOOG"].first_ts == "2004-08-19T00:00:00+00:00"
    assert by_sym["EURUSD"].interval == "1h"
    # Assumed UTC: the FX week opens at 17:00 New York, i.e. 21:00 UTC in summer, 22:00 in winter.
    eur = out.bars[out.bars["symbol"] == "EURUSD"]
    reopen = eur["ts"][eur["ts"].diff() > pd.Timedelta("1D")]
    assert set(reopen[reopen.dt.month.isin([6, 7, 8])].dt.hour) == {21}
    assert set(reopen[reopen.dt.month.isin([12, 1, 2])].dt.hour) == {22}
    assert out.report.quarantined_total == 0
    # Sessions inferred from the data: weekends are market closures, not gaps. What is left are
    # multi-day closures (GOOG: 2006-12-29 to 2007-01-03; EURUSD: Christmas and New Year).
    assert by_sym["GOOG"].sessions == "inferred (Mon,Tue,Wed,Thu,Fri)"
    assert (by_sym["GOOG"].gaps, by_sym["EURUSD"].gaps) == (2, 2)
    assert by_sym["GOOG"].closed_market_breaks > 400
    # Counted 24x7, every weekend is a gap: all counted, the first 50 listed.
    strict = check_bars(raws, ChecksConfig(calendar="24x7")).report
    assert strict.gap_count == sum(s.gaps for s in strict.symbols) > 50
    assert len(strict.gaps) == 50
    with pytest.raises(DataError, match="unknown sample"):
        read_sample(["NOPE"])


def test_data_checks_sample_btcusd_is_selectable_and_monthly() -> None:
    cfg = DataConfig(source="sample", sample=["BTCUSD"])
    out = check_bars(read_sample(cfg.sample), ChecksConfig())
    (btc,) = out.report.symbols
    assert btc.symbol == "BTCUSD" and btc.rows == 156
    assert btc.first_ts == "2012-01-31T00:00:00+00:00"
    assert btc.interval == "744h"  # the modal spacing: a 31-day month
    assert out.report.quarantined_total == 0


def test_data_checks_s3_prefix(s3_endpoint: str, s3_bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.put_object(Bucket=s3_bucket, Key="bars/DEMO.csv", Body=GOOD.read_bytes())
    client.put_object(Bucket=s3_bucket, Key="bars/sub/GAP.csv", Body=(BAD / "gap.csv").read_bytes())
    client.put_object(Bucket=s3_bucket, Key="bars/readme.md", Body=b"not data")
    client.put_object(Bucket=s3_bucket, Key="other/X.csv", Body=b"x")
    raws = read_s3(f"s3://{s3_bucket}/bars/", client)
    assert [r.origin for r in raws] == [
        f"s3://{s3_bucket}/bars/DEMO.csv",
        f"s3://{s3_bucket}/bars/sub/GAP.csv",
    ]
    cfg = DataConfig(source="s3", s3_uri=f"s3://{s3_bucket}/bars/")
    out = check_bars(load_source(cfg, 0, s3_client=client), ChecksConfig())
    assert {s.symbol: s.rows for s in out.report.symbols} == {"DEMO": 2000, "GAP": 12}
    with pytest.raises(DataError, match=r"^s3://.*/nothing/: no CSV or Parquet objects"):
        read_s3(f"s3://{s3_bucket}/nothing/", client)
    client.put_object(
        Bucket=s3_bucket, Key="broken/ES.csv", Body=(BAD / "non_numeric.csv").read_bytes()
    )
    with pytest.raises(DataError) as info:
        check_bars(read_s3(f"s3://{s3_bucket}/broken", client), ChecksConfig())
    assert str(info.value).startswith(f"s3://{s3_bucket}/broken/ES.csv: column 'high', row 3 ")
    with pytest.raises(ValueError, match="needs an S3 client"):
        load_source(cfg, 0)


def test_data_checks_synthetic_deterministic_and_keeps_regime() -> None:
    cfg = _small()
    a = check_bars(load_source(cfg, 3), cfg.checks, interval="1h")
    b = check_bars(load_source(cfg, 3), cfg.checks, interval="1h")
    c = check_bars(load_source(cfg, 4), cfg.checks, interval="1h")
    pd.testing.assert_frame_equal(a.bars, b.bars)
    assert a.report.to_json() == b.report.to_json()
    assert not a.bars["close"].equals(c.bars["close"])
    assert "regime" in a.bars and str(a.bars["regime"].dtype) == "int8"
    assert json.loads(a.report.to_json())["rows_out"] == 100


def test_data_checks_bad_cell_beyond_type_inference_block(tmp_path: Path) -> None:
    cfg = _small(30_000, ("LONG",))
    bars = load_source(cfg, 1)[0].frame.drop(columns=["regime", "symbol"])
    text = bars.assign(ts=bars["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).astype({"low": object})
    text.loc[29_000, "low"] = "n/a?"  # far past pyarrow's first 1 MB block
    text.to_csv(tmp_path / "LONG.csv", index=False)
    with pytest.raises(DataError) as info:
        check_bars(read_files(tmp_path / "LONG.csv"), ChecksConfig())
    assert str(info.value).endswith(
        "column 'low', row 29001 (ts 2027-04-23T08:00:00+00:00): not a number (got 'n/a?')"
    )


def test_data_checks_gzip_csv(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "DEMO.csv.gz").write_bytes(gzip.compress(GOOD.read_bytes()))
    out = check_bars(read_files(tmp_path), ChecksConfig())
    assert out.report.symbols[0].symbol == "DEMO" and out.report.rows_out == 2000
