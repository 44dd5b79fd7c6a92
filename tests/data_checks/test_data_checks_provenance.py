"""A bar store records its source; another source is refused, the same one appends."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from configs.data import DataConfig
from configs.settings import load_config
from pipelines.data.collect import collect_bars
from pipelines.data.provenance import (
    PROVENANCE_FILE,
    SourceMismatchError,
    claim_store,
    read_provenance,
    source_fingerprint,
)
from pipelines.data.store import read_bars

GOOD = Path(__file__).resolve().parents[1] / "data" / "good"


def _syn(n: int, symbols: list[str], start: str = "2024-01-01T00:00:00+00:00") -> DataConfig:
    cfg = load_config().data
    update = {"n_bars": n, "symbols": symbols, "start": datetime.fromisoformat(start)}
    return cfg.model_copy(
        update={"synthetic": cfg.synthetic.model_copy(update=update), "interval": "1h"}
    )


def test_data_checks_provenance_same_source_appends_incrementally(tmp_path: Path) -> None:
    store = tmp_path / "bars"
    collect_bars(_syn(100, ["SYN1", "SYN2"]), 7, store, profile="demo")
    grown = collect_bars(_syn(130, ["SYN1", "SYN2"]), 7, store, profile="demo")
    assert grown.append.added == {"SYN1": 30, "SYN2": 30}
    record = read_provenance(store)
    assert record is not None and record.kind == "synthetic"
    assert record.details["n_bars"] == 130  # details follow the latest run
    assert record.describe().startswith("synthetic(seed=7, n_bars=130, symbols=SYN1,SYN2")


def test_data_checks_provenance_other_generator_refused_with_one_line(tmp_path: Path) -> None:
    store = tmp_path / "bars"
    collect_bars(_syn(100, ["SYN1", "SYN2"]), 7, store, profile="demo")
    before = read_bars(store)
    other = _syn(100, ["SYN1", "SYN2", "SYN3", "SYN4"], "2023-01-01T00:00:00+00:00")
    with pytest.raises(SourceMismatchError) as info:
        collect_bars(other, 7, store, profile="default")
    message = str(info.value)
    assert "\n" not in message
    assert "holds bars from synthetic(seed=7, n_bars=100, symbols=SYN1,SYN2" in message
    assert "of profile 'demo'" in message
    assert "this run's source is synthetic(seed=7, n_bars=100, symbols=SYN1,SYN2,SYN3,SYN4" in (
        message
    )
    assert message.endswith("use another --workdir or `edgeflow reset-data`")
    assert read_bars(store).equals(before)  # nothing mixed in
    with pytest.raises(SourceMismatchError):
        collect_bars(_syn(100, ["SYN1", "SYN2"]), 8, store)  # another seed is another source


def test_data_checks_provenance_files_fingerprint_and_kind_change(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "DEMO.csv").write_bytes((GOOD / "DEMO.csv").read_bytes())
    (data / "notes.md").write_text("not data")
    cfg = DataConfig(source="files", path=data)
    fp = source_fingerprint(cfg, 0, "mine")
    assert fp.identity == {"path": str(data.resolve())}
    assert [f["name"] for f in fp.details["files"]] == ["DEMO.csv"]
    assert fp.details["files"][0]["size"] == (GOOD / "DEMO.csv").stat().st_size
    store = tmp_path / "bars"
    collect_bars(cfg, 0, store)
    on_disk = json.loads((store / PROVENANCE_FILE).read_text())
    assert on_disk["kind"] == "files" and len(on_disk["details"]["files"][0]["sha256"]) == 64
    # The same folder with a grown file is the same source (incremental).
    assert claim_store(store, source_fingerprint(cfg, 0)) is not None
    with pytest.raises(SourceMismatchError, match=r"files\(.*1 file\(s\)\).*synthetic\("):
        claim_store(store, source_fingerprint(_syn(10, ["SYN1"]), 7), workdir=tmp_path)


def test_data_checks_provenance_empty_store_is_claimed_by_anyone(tmp_path: Path) -> None:
    store = tmp_path / "bars"
    claim_store(store, source_fingerprint(_syn(10, ["SYN1"]), 7))
    # No bars committed yet: another source may take the store over.
    claim_store(store, source_fingerprint(DataConfig(source="sample", sample=["GOOG"]), 0))
    record = read_provenance(store)
    assert record is not None and record.describe() == "sample(GOOG)"
    s3 = source_fingerprint(DataConfig(source="s3", s3_uri="s3://b/p"), 0)
    assert s3.describe() == "s3(s3://b/p)"


def test_data_checks_provenance_import_options_are_part_of_the_source(tmp_path: Path) -> None:
    import pytest

    from configs.settings import load_config
    from pipelines.data.collect import collect_bars
    from pipelines.data.provenance import SourceMismatchError, claim_store, source_fingerprint

    bars = tmp_path / "in"
    bars.mkdir()
    csv = bars / "ES.csv"
    rows = ["ts,open,high,low,close,adj close,volume"] + [
        f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z,10,11,9,10,5,100" for i in range(48)
    ]
    csv.write_text("\n".join(rows) + "\n")
    plain = load_config(overrides={"data.source": "files", "data.path": str(bars)}).data
    store_root = tmp_path / "store"
    collect_bars(plain, 7, store_root)
    adjusted = plain.model_copy(
        update={"files": plain.files.model_copy(update={"close_column": "adj close"})}
    )
    with pytest.raises(SourceMismatchError, match=r"data.files.close_column=adj close"):
        claim_store(store_root, source_fingerprint(adjusted, 7))
    # defaults add nothing: a store recorded before options counted still matches
    assert "options" not in source_fingerprint(plain, 7).identity
