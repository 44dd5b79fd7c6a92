"""The bar store: incremental, idempotent appends; crash safety; sorted unique reads."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import pipelines.data.store as store
from configs.settings import load_config
from pipelines.data.collect import collect_bars
from pipelines.data.store import WATERMARK_FILE, append_bars, read_bars, watermarks
from pipelines.data.synthetic import generate_bars

SYMBOLS = ["AAA", "B/C"]


def _bars(n: int, seed: int = 5) -> pd.DataFrame:
    cfg = load_config().data.synthetic.model_copy(update={"n_bars": n, "symbols": SYMBOLS})
    return generate_bars(cfg, seed)


def test_data_checks_store_append_is_idempotent(tmp_path: Path) -> None:
    bars = _bars(200)
    first = append_bars(tmp_path, bars)
    assert first.added == {"AAA": 200, "B/C": 200} and len(first.parts) == 2
    assert (tmp_path / "symbol=B%2FC" / "part-00000.parquet").is_file()
    state = (tmp_path / WATERMARK_FILE).read_bytes()
    again = append_bars(tmp_path, bars)
    assert again.rows_added == 0 and again.parts == [] and again.skipped == first.added
    assert (tmp_path / WATERMARK_FILE).read_bytes() == state
    out = read_bars(tmp_path)
    pd.testing.assert_frame_equal(out, bars)


def test_data_checks_store_incremental_adds_only_new(tmp_path: Path) -> None:
    full = _bars(220)
    # What a source returns later is a superset of what it returned before (the same history
    # plus new bars); slicing one series keeps this test independent of the generator.
    earlier = full.groupby("symbol").head(150)
    append_bars(tmp_path, earlier)
    more = append_bars(tmp_path, full)
    assert more.added == {"AAA": 70, "B/C": 70} and more.skipped == {"AAA": 150, "B/C": 150}
    pd.testing.assert_frame_equal(read_bars(tmp_path), full)
    # Rows at or before the watermark are never rewritten, even if the source changed them.
    changed = full.assign(close=full["close"] * 2)
    assert append_bars(tmp_path, changed).rows_added == 0
    pd.testing.assert_frame_equal(read_bars(tmp_path), full)
    marks = watermarks(tmp_path)
    assert marks["AAA"] == full.loc[full["symbol"] == "AAA", "ts"].max()
    one = read_bars(tmp_path, ["B/C"])
    assert set(one["symbol"]) == {"B/C"} and len(one) == 220
    with pytest.raises(ValueError, match="no bars stored for ZZZ"):
        read_bars(tmp_path, ["ZZZ"])


def test_data_checks_store_unsorted_and_duplicate_input(tmp_path: Path) -> None:
    bars = _bars(60)
    shuffled = pd.concat([bars.sample(frac=1.0, random_state=1), bars.iloc[:5]])
    append_bars(tmp_path, shuffled)
    out = read_bars(tmp_path)
    pd.testing.assert_frame_equal(out, bars)
    assert not out.duplicated(["symbol", "ts"]).any()


def test_data_checks_store_crash_before_commit_keeps_last_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = _bars(130)
    append_bars(tmp_path, full.groupby("symbol").head(100))
    good = read_bars(tmp_path)

    def crash(root: Path, state: dict[str, object]) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(store, "_write_state", crash)
    with pytest.raises(OSError, match="disk went away"):
        append_bars(tmp_path, full)
    # The new part files are on disk, but uncommitted: readers do not see them.
    assert len(list((tmp_path / "symbol=AAA").glob("part-*.parquet"))) == 2
    pd.testing.assert_frame_equal(read_bars(tmp_path), good)
    monkeypatch.undo()

    resumed = append_bars(tmp_path, full)
    assert resumed.added == {"AAA": 30, "B/C": 30}
    pd.testing.assert_frame_equal(read_bars(tmp_path), full)
    # The orphan was cleaned up; only committed parts remain.
    state = json.loads((tmp_path / WATERMARK_FILE).read_text())
    on_disk = sorted(p.name for p in (tmp_path / "symbol=AAA").iterdir())
    assert on_disk == sorted(Path(p).name for p in state["symbols"]["AAA"]["parts"])


def test_data_checks_store_rejects_naive_ts(tmp_path: Path) -> None:
    bars = _bars(10)
    bars["ts"] = bars["ts"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="time-zone aware"):
        append_bars(tmp_path, bars)
    assert read_bars(tmp_path).empty


def test_data_checks_collect_end_to_end(tmp_path: Path) -> None:
    cfg = load_config().data
    syn = cfg.synthetic.model_copy(update={"n_bars": 120})
    cfg = cfg.model_copy(update={"synthetic": syn, "interval": "1h"})
    first = collect_bars(cfg, 7, tmp_path / "store", quarantine_dir=tmp_path / "q")
    assert first.append.rows_added == 240 and first.report.rows_out == 240
    again = collect_bars(cfg, 7, tmp_path / "store")
    assert again.append.rows_added == 0
    json.dumps(again.to_dict())  # JSON-serialisable for the run report
    bars = read_bars(tmp_path / "store")
    assert list(bars.columns) == [
        "ts",
        "symbol",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "regime",
    ]
    assert len(bars) == 240


def test_data_checks_collect_incremental_on_synthetic(tmp_path: Path) -> None:
    cfg = load_config().data
    for n in (150, 220):
        syn = cfg.synthetic.model_copy(update={"n_bars": n, "symbols": SYMBOLS})
        step = collect_bars(cfg.model_copy(update={"synthetic": syn}), 5, tmp_path)
    assert step.append.added == {"AAA": 70, "B/C": 70}
    pd.testing.assert_frame_equal(read_bars(tmp_path), _bars(220))


def test_data_checks_store_reads_with_plain_read_parquet_and_old_parts(tmp_path: Path) -> None:
    bars = _bars(50)
    append_bars(tmp_path, bars)
    plain = pd.read_parquet(tmp_path)  # was: "Field symbol has incompatible types"
    assert len(plain) == 100 and sorted(plain["symbol"].astype(str).unique()) == SYMBOLS
    # a part written by the old writer (symbol column inside the file) still reads
    old = tmp_path / "symbol=AAA" / "part-00000.parquet"
    frame = pd.read_parquet(old).assign(symbol="AAA")
    frame.to_parquet(old, index=False)
    got = read_bars(tmp_path)
    assert list(got.columns[:2]) == ["ts", "symbol"] and len(got) == 100
    assert got["symbol"].tolist().count("AAA") == 50


def _typed(bars: pd.DataFrame, unit: str, int_volume: bool) -> pd.DataFrame:
    out = bars.assign(ts=bars["ts"].astype(f"datetime64[{unit}, UTC]"))
    return out.assign(volume=out["volume"].round().astype("int64")) if int_volume else out


def test_data_checks_store_parts_share_one_schema_whatever_the_source_typed(
    tmp_path: Path,
) -> None:
    """An int volume and nanosecond stamps in one append, floats and microseconds in the next
    (a Parquet export, then a CSV): ``pandas.read_parquet`` on the store failed ("Float value
    ... was truncated converting to int64")."""
    full = _bars(120)
    head = full.groupby("symbol").head(60)
    append_bars(tmp_path, _typed(head, "ns", int_volume=True))
    append_bars(tmp_path, _typed(full, "us", int_volume=False))
    schemas = {str(pq.read_schema(p).remove_metadata()) for p in tmp_path.glob("symbol=*/*")}
    assert len(schemas) == 1
    plain = pd.read_parquet(tmp_path)
    plain["symbol"] = plain["symbol"].astype(str)
    plain = plain.sort_values(["symbol", "ts"], ignore_index=True)[list(full.columns)]
    pd.testing.assert_frame_equal(plain, read_bars(tmp_path), check_dtype=False)
    assert len(plain) == 240 and plain["volume"].dtype == "float64"


def test_data_checks_store_old_parts_are_rewritten_by_the_next_append(tmp_path: Path) -> None:
    """A store an older writer left (a symbol column in each part, an int volume) read with
    edgeflow but not with ``pandas.read_parquet``; the next append rewrites those parts in
    the one schema, so both read it, with the same rows."""
    bars = _bars(80)
    append_bars(tmp_path, bars.groupby("symbol").head(50))
    for part in tmp_path.glob("symbol=*/part-*.parquet"):
        symbol = "AAA" if "AAA" in part.parent.name else "B/C"
        frame = pd.read_parquet(part).assign(symbol=symbol)
        frame.assign(volume=frame["volume"].round().astype("int64")).to_parquet(part, index=False)
    with pytest.raises(Exception, match=r"incompatible types|truncated"):
        pd.read_parquet(tmp_path)
    before = read_bars(tmp_path)
    append_bars(tmp_path, bars)  # 30 new bars per symbol
    after = read_bars(tmp_path)
    kept = after.groupby("symbol").head(50).reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before, check_dtype=False)  # int volume now float
    assert len(after) == 160 and len(pd.read_parquet(tmp_path)) == 160
    listed = {
        p
        for v in json.loads((tmp_path / WATERMARK_FILE).read_text())["symbols"].values()
        for p in v["parts"]
    }
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.glob("symbol=*/part-*.parquet")}
    assert on_disk == listed  # the rewritten parts' old files are gone
