"""Exogenous features: each series joined to the bars as of its publication.

A value stamped ``ts`` is published at ``ts + lag``; a bar at ``t`` sees the newest value whose
publication time is ``<= t`` (``pandas.merge_asof``, backward, exact matches allowed). Causal
by construction: a value stamped after ``T`` is published after ``T`` (``lag >= 0``), so no
feature of a bar before ``T`` can depend on it.

Per series ``<name>`` with value columns ``<col>``:

* ``exo_<name>_<col>``: the value as published, or ``0`` when masked;
* ``exo_<name>_missing``: ``1`` when the bar sees no value of the series (before its first
  publication) or only one older than ``max_age`` (a late or stopped series), else ``0``.

The number and order of the columns depend only on the configuration, never on the data, so
a model's input keeps its shape when a series is late or missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipelines.data.exogenous import ExogenousData


def exogenous_feature_names(series: Sequence[ExogenousData]) -> tuple[str, ...]:
    """The features the series add, in column order (values, then the indicator, per series)."""
    names: list[str] = []
    for s in series:
        names += [f"exo_{s.name}_{c}" for c in s.columns]
        names.append(f"exo_{s.name}_missing")
    return tuple(names)


def _ns(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Epoch nanoseconds (UTC; naive is taken as UTC)."""
    idx = pd.DatetimeIndex(ts)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)


def join_exogenous(ts: pd.Series, series: Sequence[ExogenousData]) -> dict[str, np.ndarray]:
    """The exogenous features of bars stamped ``ts`` (any order), float64, by feature name."""
    t = _ns(ts)
    order = np.argsort(t, kind="stable")
    left = pd.DataFrame({"t": t[order], "pos": order})
    out: dict[str, np.ndarray] = {}
    for s in series:
        pub = _ns(s.frame["ts"]) + int(s.lag.value)
        right = pd.DataFrame(
            {"pub": pub, **{c: s.frame[c].to_numpy(np.float64) for c in s.columns}}
        )
        joined = pd.merge_asof(
            left, right, left_on="t", right_on="pub", direction="backward", allow_exact_matches=True
        )
        seen = joined["pub"].notna().to_numpy()  # False: nothing published yet
        age = joined["t"].to_numpy() - joined["pub"].fillna(0).to_numpy(dtype=np.int64)
        missing = ~seen | (age > int(s.max_age.value))
        pos = joined["pos"].to_numpy()
        for c in s.columns:
            values = np.empty(len(t), dtype=np.float64)
            values[pos] = np.where(missing, 0.0, joined[c].to_numpy(dtype=np.float64))
            out[f"exo_{s.name}_{c}"] = values
        flag = np.empty(len(t), dtype=np.float64)
        flag[pos] = missing.astype(np.float64)
        out[f"exo_{s.name}_missing"] = flag
    return out
