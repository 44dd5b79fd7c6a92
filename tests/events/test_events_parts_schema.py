"""Committed parts of one dataset read back together whatever type each ingest gave a column.

Found by a six-cycle replay: one ingest stored ``bandit_version`` as ``string``, a later one
as ``large_string``, and every later training failed in ``read_dataset``."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.events.storage import LocalStorage
from pipelines.events.store import _read_parts


def _part(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_parts_with_differently_typed_columns_read_as_one_frame(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    parts = {
        "a.parquet": pa.table(
            {
                "bandit_version": pa.array([None, None], pa.null()),
                "ts": pa.array([1, 2], pa.timestamp("us", tz="UTC")),
            }
        ),
        "b.parquet": pa.table(
            {
                "bandit_version": pa.array(["v000001"], pa.string()),
                "ts": pa.array([3_000], pa.timestamp("ns", tz="UTC")),
            }
        ),
        "c.parquet": pa.table(
            {
                "bandit_version": pa.array(["v000002"], pa.large_string()),
                "ts": pa.array([4], pa.timestamp("us", tz="UTC")),
            }
        ),
    }
    for key, table in parts.items():
        storage.write(key, _part(table))
    frame = _read_parts(storage, list(parts))
    assert frame is not None
    versions = frame["bandit_version"]
    assert versions.isna().tolist() == [True, True, False, False]
    assert versions.iloc[2:].tolist() == ["v000001", "v000002"]
    want = pd.to_datetime(
        [
            "1970-01-01 00:00:00.000001",
            "1970-01-01 00:00:00.000002",
            "1970-01-01 00:00:00.000003",
            "1970-01-01 00:00:00.000004",
        ],
        utc=True,
    )
    assert list(frame["ts"]) == list(want)
