"""Timestamps to integers and back, with the unit always explicit.

Why one module: ``series.astype("int64")`` on a datetime column gives integers in the
column's *own* unit (pandas 2 keeps ``datetime64[us]`` from Parquet and Arrow), while
``pd.Timestamp(int)`` reads an integer as nanoseconds. Mixing the two silently moves a time by
a factor of 1000 (the meta-labeler's fold cuts all landed in January 1970). Every conversion
between times and integers goes through here, always to and from UTC epoch **nanoseconds**
or **seconds**, whatever the input's resolution or time zone (naive is taken as UTC).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

NS_PER_SECOND = 1_000_000_000


def _utc_naive_ns(ts: Any) -> npt.NDArray[np.datetime64]:
    idx = pd.DatetimeIndex(ts)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return np.asarray(idx.as_unit("ns").values)


def to_epoch_ns(ts: pd.Series | pd.DatetimeIndex | npt.ArrayLike) -> npt.NDArray[np.int64]:
    """UTC epoch nanoseconds of a datetime column, whatever its unit (s, ms, us or ns)."""
    return _utc_naive_ns(ts).astype(np.int64)


def to_epoch_seconds(ts: pd.Series | pd.DatetimeIndex | npt.ArrayLike) -> npt.NDArray[np.int64]:
    """UTC epoch seconds (floored) of a datetime column, whatever its unit."""
    return np.asarray(_utc_naive_ns(ts).astype("datetime64[s]").astype(np.int64))


def timestamp_ns(ts: pd.Timestamp | datetime | np.datetime64 | str) -> int:
    """UTC epoch nanoseconds of one timestamp (naive is UTC)."""
    return int(to_epoch_ns(pd.DatetimeIndex([pd.Timestamp(ts)]))[0])


def timestamp_seconds(ts: pd.Timestamp | datetime | np.datetime64 | str) -> int:
    """UTC epoch seconds (floored) of one timestamp (naive is UTC)."""
    return int(to_epoch_seconds(pd.DatetimeIndex([pd.Timestamp(ts)]))[0])


def from_epoch_ns(x: int | float | np.integer[Any] | np.floating[Any]) -> pd.Timestamp:
    """The UTC timestamp of an epoch-nanosecond integer (a float is rounded to the ns)."""
    value = round(float(x)) if isinstance(x, float | np.floating) else int(x)
    return pd.Timestamp(value, unit="ns", tz="UTC")
