"""Exogenous series as a source: files, folders, S3, the checks, the fingerprint, real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from configs.data import DataConfig, ExogenousSeries
from pipelines.data.errors import DataError
from pipelines.data.exogenous import load_exogenous
from pipelines.data.provenance import source_fingerprint


def _write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def _cfg(*series: dict, **data: object) -> DataConfig:
    return DataConfig(exogenous=[ExogenousSeries(**s) for s in series], **data)  # type: ignore[arg-type]


def test_a_csv_series_with_its_columns_frequency_and_lag(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "VIX.csv",
        """
Date,Close,Open
2024-01-02,13.2,13.0
2024-01-03,14.1,13.3
2024-01-04,14.0,14.1
""",
    )
    (s,) = load_exogenous(_cfg({"path": f, "columns": ["close"], "lag": "22h"}))
    assert s.name == "vix" and s.columns == ("close",)
    assert s.frame["ts"].iloc[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert s.frequency == pd.Timedelta("1D") and s.lag == pd.Timedelta("22h")
    assert s.max_age == pd.Timedelta("5D")  # five frequencies by default
    (all_cols,) = load_exogenous(_cfg({"path": f, "name": "implied"}))
    assert all_cols.name == "implied" and all_cols.columns == ("close", "open")
    assert all_cols.lag == pd.Timedelta("1D")  # one frequency by default


def test_bad_rows_are_quarantined_and_a_bad_cell_is_one_fatal_line(tmp_path: Path) -> None:
    rows = "\n".join(f"2024-01-{d:02d},{10 + d}" for d in range(1, 29))
    f = _write(tmp_path / "spread.csv", "ts,value\n" + rows + "\n2024-01-29,\n2024-01-05,99")
    q = tmp_path / "q"
    cfg = _cfg({"path": f}, checks={"max_quarantine_fraction": 0.1})
    (s,) = load_exogenous(cfg, quarantine_dir=q)
    assert s.report["quarantined"] == {"missing_value": 1, "duplicate_ts": 1}
    assert len(s.frame) == 28 and s.frame.loc[4, "value"] == 15.0  # the first 01-05 is kept
    quarantined = pd.read_csv(q / "exogenous-spread" / "quarantine.csv")
    assert quarantined[["row", "reason", "column"]].values.tolist() == [
        [29, "missing_value", "value"],
        [30, "duplicate_ts", "ts"],
    ]
    with pytest.raises(DataError, match=r"more than max_quarantine_fraction=0\.05") as exc:
        load_exogenous(_cfg({"path": f}, checks={"max_quarantine_fraction": 0.05}))
    assert "column 'value', row 29" in str(exc.value)

    _write(tmp_path / "text.csv", "ts,value\n2024-01-01,1\n2024-01-02,abc")
    with pytest.raises(DataError) as bad:
        load_exogenous(_cfg({"path": tmp_path / "text.csv"}))
    assert str(bad.value) == (
        f"{tmp_path / 'text.csv'}: column 'value', row 2 (ts 2024-01-02T00:00:00+00:00): "
        "not a number (got 'abc')"
    )
    assert "\n" not in str(bad.value)


def test_time_zone_rules_and_missing_columns_as_for_bars(tmp_path: Path) -> None:
    f = _write(tmp_path / "fx.csv", "time,rate\n2024-01-02 09:00,1.1\n2024-01-02 10:00,1.2")
    with pytest.raises(DataError, match=r"fx.csv: column 'time', row 1: missing time zone"):
        load_exogenous(_cfg({"path": f}))
    (s,) = load_exogenous(_cfg({"path": f}, files={"timezone": "Europe/Berlin"}))
    assert s.frame["ts"].iloc[0] == pd.Timestamp("2024-01-02T08:00:00Z")
    with pytest.raises(DataError, match=r"column 'when': missing timestamp column"):
        load_exogenous(_cfg({"path": f, "timestamp_column": "when"}))
    with pytest.raises(DataError, match=r"column 'close': missing value column"):
        load_exogenous(_cfg({"path": f, "columns": ["close"]}))


def test_a_folder_parquet_and_names(tmp_path: Path) -> None:
    folder = tmp_path / "exo"
    folder.mkdir()
    ts = pd.date_range("2024-01-01", periods=5, freq="1D", tz="UTC")
    pd.DataFrame({"ts": ts, "Level": np.arange(5.0)}).to_parquet(folder / "rates.parquet")
    _write(folder / "credit-spread.csv", "date,oas\n2024-01-01,3.1\n2024-02-01,3.3")
    (folder / "notes.md").write_text("not data")
    series = load_exogenous(_cfg({"path": folder, "max_age": "40D"}))
    assert [(s.name, s.columns) for s in series] == [
        ("credit_spread", ("oas",)),
        ("rates", ("level",)),
    ]
    with pytest.raises(DataError, match="name 'x' is set but this exogenous source holds 2 files"):
        load_exogenous(_cfg({"path": folder, "name": "x"}))
    with pytest.raises(DataError, match="a second exogenous series named 'rates'"):
        load_exogenous(_cfg({"path": folder / "rates.parquet"}, {"path": folder}))


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="exactly one of path and s3_uri"):
        ExogenousSeries()
    with pytest.raises(ValidationError, match="lag 'soon' is not a pandas Timedelta"):
        ExogenousSeries(path=Path("x.csv"), lag="soon")
    with pytest.raises(ValidationError, match="frequency must be > 0"):
        ExogenousSeries(path=Path("x.csv"), frequency="0s")
    assert DataConfig().exogenous == [] and not DataConfig().cross_asset.enabled


def test_the_fingerprint_records_series_only_when_configured(tmp_path: Path) -> None:
    plain = source_fingerprint(DataConfig(), 7, "demo")
    assert "exogenous" not in plain.details and "exogenous" not in plain.identity
    f = _write(tmp_path / "vix.csv", "date,close\n2024-01-01,12\n2024-01-02,13")
    with_exo = source_fingerprint(_cfg({"path": f, "lag": "1D"}), 7, "demo")
    assert with_exo.identity == plain.identity  # same bars: the store is not refused
    (entry,) = with_exo.details["exogenous"]
    assert entry["path"] == str(f.resolve()) and entry["lag"] == "1D"
    assert entry["files"][0]["name"] == "vix.csv" and len(entry["files"][0]["sha256"]) == 64
    assert (
        "files"
        not in source_fingerprint(_cfg({"path": f}), 7, hash_files=False).details["exogenous"][0]
    )


def test_s3_series(s3_endpoint: str, s3_bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.put_object(
        Bucket=s3_bucket, Key="exo/VIX.csv", Body=b"date,close\n2024-01-01,12\n2024-01-02,13\n"
    )
    cfg = _cfg({"s3_uri": f"s3://{s3_bucket}/exo/"})
    (s,) = load_exogenous(cfg, s3_client=client)
    assert s.name == "vix" and s.origin == f"s3://{s3_bucket}/exo/VIX.csv"
    assert s.frame["close"].tolist() == [12.0, 13.0]
    with pytest.raises(ValueError, match="needs an S3 client"):
        load_exogenous(cfg)


def test_real_vix_joined_to_real_sp500(tmp_path: Path) -> None:
    """arch's VIX (with its holiday gaps) on arch's S&P 500 daily bars, as a user's CSV."""
    pytest.importorskip("arch")
    from arch.data import sp500, vix

    from pipelines.features import FEATURE_NAMES
    from pipelines.features.extended import featurize_extended

    raw = vix.load()
    raw.index.name = "Date"
    path = tmp_path / "VIX.csv"
    raw.rename(columns={"vix": "Close"}).to_csv(path)
    (s,) = load_exogenous(_cfg({"path": path, "lag": "1D"}))
    assert s.report["quarantined"] == {"missing_value": int(raw["vix"].isna().sum())}
    spx = sp500.load()
    bars = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(spx.index).tz_localize("UTC"),
            "symbol": "SP500",
            "open": spx["Open"].to_numpy(),
            "high": spx["High"].to_numpy(),
            "low": spx["Low"].to_numpy(),
            "close": spx["Close"].to_numpy(),
            "volume": spx["Volume"].to_numpy(np.float64),
        }
    )
    frame = featurize_extended(bars, [s]).frame
    assert list(frame.columns) == [
        "ts",
        "symbol",
        *FEATURE_NAMES,
        "exo_vix_close",
        "exo_vix_missing",
    ]
    # before the VIX file starts (2014) every bar is masked; after, a bar on day D shows the
    # close of the last VIX day before D (published the next midnight with lag 1D)
    early = frame["ts"] < pd.Timestamp("2014-01-04", tz="UTC")
    assert (frame.loc[early, "exo_vix_missing"] == 1).all()
    seen = frame.loc[~early & (frame["exo_vix_missing"] == 0)]
    assert len(seen) > 1000
    known = s.frame.set_index("ts")["close"]
    prev = known.reindex(seen["ts"] - pd.Timedelta("1D"), method="ffill").to_numpy()
    np.testing.assert_array_equal(seen["exo_vix_close"].to_numpy(), prev.astype(np.float32))


def test_the_precheck_checks_series_and_keeps_a_refused_ones_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from pipelines.data.precheck import precheck_input

    good = Path(__file__).resolve().parents[1] / "data" / "good" / "DEMO.csv"
    rows = "\n".join(f"2024-01-{d:02d},{10 + d}" for d in range(1, 29))
    f = _write(tmp_path / "spread.csv", "ts,value\n" + rows + "\n2024-01-29,")
    cfg = _cfg({"path": f}, source="files", path=good)
    with caplog.at_level(logging.INFO, logger="pipelines.data"):
        found = precheck_input(cfg, 7, "demo", tmp_path / "bars", tmp_path)
    assert found is not None
    notes = [r.getMessage() for r in caplog.records if "exogenous" in r.getMessage()]
    assert notes == [
        f"exogenous series 'spread' ({f}): 1 of 29 rows quarantined {{'missing_value': 1}}"
    ]  # and no line names the precheck's scratch folder, which is gone
    strict = cfg.model_copy(
        update={"checks": cfg.checks.model_copy(update={"max_quarantine_fraction": 0.01})}
    )
    q = tmp_path / "run" / "quarantine"
    with pytest.raises(DataError, match=r"spread\.csv: column 'value', row 29"):
        precheck_input(strict, 7, "demo", tmp_path / "bars", tmp_path, quarantine_dir=q)
    assert (q / "exogenous-spread" / "quarantine.csv").exists()
