"""Time splits counted in bars per symbol: train/holdout, inner fit/calibration, walk-forward.

Why bars and not wall-clock hours: a label looks ``h`` *bars* ahead, so the rows whose label
window reaches past a cut are the last ``h`` bars of each symbol before it. Over a weekend
or a data gap 48 wall-clock hours can hold anything from 0 to 48 hourly bars, so a purge in
hours leaks on some symbols and wastes data on others.

Conventions shared by every function here:

* A split has one **cut timestamp** across all symbols: the earlier side is ``ts < cut``,
  the later side ``ts >= cut``. The cut is the ``1 - fraction`` quantile of the rows'
  timestamps, so the later side holds about ``fraction`` of the rows.
* **purge** drops the last ``purge_bars`` bars of each symbol *before* the cut from the
  earlier side (their label windows straddle the cut). Bars are counted on that symbol's
  own bar sequence in ``frame``, whichever rows the split is restricted to.
* **embargo** drops the first ``embargo_bars`` bars of each symbol *at or after* the cut
  from the later side (room for feature memory and serial correlation). The gap between
  the two sides is therefore ``purge_bars + embargo_bars`` bars of every symbol.
* Results are positional row indices (``iloc``) into ``frame``, sorted, int64.

Nesting: ``time_split_bars`` cuts the held-out span off; ``inner_split_bars`` cuts an
early-stopping/calibration span off the end of the *training* rows, with its own purge,
so it is time-ordered across symbols and disjoint from the held-out data;
``walk_forward_bars`` builds selection folds on the remaining fit rows only, so the
calibration rows never take part in selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BarSplit:
    """An earlier and a later set of rows separated by one cut timestamp."""

    earlier: IntArray
    later: IntArray
    cut: pd.Timestamp


def _check_bars(n: int, name: str) -> None:
    if n < 0:
        raise ValueError(f"{name} must be >= 0, got {n}")


def bar_positions(frame: pd.DataFrame, ts_col: str = "ts", symbol_col: str = "symbol") -> IntArray:
    """Each row's bar number within its symbol (0 = the symbol's earliest bar).

    Raises when a symbol has two rows with the same timestamp: bar counts would be ambiguous.
    """
    for col in (ts_col, symbol_col):
        if col not in frame.columns:
            raise ValueError(f"frame has no {col!r} column")
    keys = frame[[symbol_col, ts_col]]
    if keys.duplicated().any():
        first = keys[keys.duplicated()].iloc[0]
        raise ValueError(
            f"duplicate ({symbol_col}, {ts_col}) rows, e.g. {first[symbol_col]} at {first[ts_col]}"
        )
    ranks = frame.groupby(symbol_col, sort=False)[ts_col].rank(method="first")
    return (ranks.to_numpy(dtype=np.float64) - 1.0).astype(np.int64)


def _rows(frame: pd.DataFrame, rows: npt.ArrayLike | None) -> IntArray:
    if rows is None:
        return np.arange(len(frame), dtype=np.int64)
    r = np.unique(np.asarray(rows, dtype=np.int64))
    if r.size and (r[0] < 0 or r[-1] >= len(frame)):
        raise ValueError(f"row indices must lie in [0, {len(frame)}), got {r[0]}..{r[-1]}")
    return r


def _cut_timestamp(ts: pd.Series, fraction: float) -> pd.Timestamp:
    """The timestamp at the ``1 - fraction`` quantile of ``ts`` (one of the values)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    values = ts.sort_values(ignore_index=True)  # keeps the tz; no object-array sort
    k = min(max(int(np.floor((1.0 - fraction) * len(values))), 1), len(values) - 1)
    return pd.Timestamp(values.iloc[k])


def split_at(
    frame: pd.DataFrame,
    cut: pd.Timestamp,
    purge_bars: int,
    embargo_bars: int = 0,
    rows: npt.ArrayLike | None = None,
    ts_col: str = "ts",
    symbol_col: str = "symbol",
) -> BarSplit:
    """Split ``rows`` (default: all) of ``frame`` at ``cut`` with purge and embargo in bars.

    For each symbol, let ``p`` be the bar number (over the symbol's bars in ``frame``) of its
    first bar at or after ``cut``. Earlier rows keep bar numbers ``< p - purge_bars``, later
    rows keep bar numbers ``>= p + embargo_bars``. A symbol with no bar at or after the cut
    has no label window reaching across it and loses nothing to the purge.
    """
    _check_bars(purge_bars, "purge_bars")
    _check_bars(embargo_bars, "embargo_bars")
    sel = _rows(frame, rows)
    pos = bar_positions(frame, ts_col, symbol_col)
    ts = frame[ts_col]
    after = (ts >= cut).to_numpy()
    sym = frame[symbol_col].to_numpy()
    counts = pd.Series(pos).groupby(sym).max() + 1
    first_after = pd.Series(pos[after]).groupby(sym[after]).min()
    p = first_after.reindex(counts.index).fillna(counts).astype(np.int64)
    p_row = p.reindex(sym).to_numpy()
    has_after = pd.Series(sym).isin(first_after.index).to_numpy()
    purge = np.where(has_after, purge_bars, 0)
    keep_early = ~after & (pos < p_row - purge)
    keep_late = after & (pos >= p_row + embargo_bars)
    mask = np.zeros(len(frame), dtype=bool)
    mask[sel] = True
    earlier = np.flatnonzero(mask & keep_early).astype(np.int64)
    later = np.flatnonzero(mask & keep_late).astype(np.int64)
    return BarSplit(earlier=earlier, later=later, cut=pd.Timestamp(cut))


def _split_fraction(
    frame: pd.DataFrame,
    fraction: float,
    purge_bars: int,
    embargo_bars: int,
    rows: npt.ArrayLike | None,
    ts_col: str,
    symbol_col: str,
    what: str,
) -> BarSplit:
    sel = _rows(frame, rows)
    if sel.size < 2:
        raise ValueError(f"{what}: need at least 2 rows to split, got {sel.size}")
    cut = _cut_timestamp(frame[ts_col].iloc[sel], fraction)
    out = split_at(frame, cut, purge_bars, embargo_bars, sel, ts_col, symbol_col)
    if out.earlier.size == 0 or out.later.size == 0:
        raise ValueError(
            f"{what}: the cut at {cut} with purge {purge_bars} and embargo {embargo_bars} "
            f"bars leaves {out.earlier.size} earlier and {out.later.size} later rows "
            f"(of {sel.size}); need both > 0"
        )
    return out


def time_split_bars(
    frame: pd.DataFrame,
    holdout_fraction: float,
    purge_bars: int,
    embargo_bars: int = 0,
    ts_col: str = "ts",
    symbol_col: str = "symbol",
) -> BarSplit:
    """Train (``earlier``) and held-out (``later``) rows: one cut time, purge/embargo in bars."""
    return _split_fraction(
        frame, holdout_fraction, purge_bars, embargo_bars, None, ts_col, symbol_col, "holdout"
    )


def inner_split_bars(
    frame: pd.DataFrame,
    train_rows: npt.ArrayLike,
    fraction: float,
    purge_bars: int,
    embargo_bars: int = 0,
    ts_col: str = "ts",
    symbol_col: str = "symbol",
) -> BarSplit:
    """Cut an early-stopping/calibration span (``later``) off the end of ``train_rows``.

    One cut timestamp across symbols (the ``1 - fraction`` quantile of the training rows'
    times), not the last rows of a symbol-sorted frame, which would calibrate on one
    symbol's end and fit on another's same period. The result only holds rows of
    ``train_rows``, so it is disjoint from any held-out rows; ``earlier`` is what the models
    fit on (and what walk-forward selection folds should be built on).
    """
    return _split_fraction(
        frame, fraction, purge_bars, embargo_bars, train_rows, ts_col, symbol_col, "inner split"
    )


def walk_forward_bars(
    frame: pd.DataFrame,
    n_folds: int,
    purge_bars: int,
    embargo_bars: int = 0,
    rows: npt.ArrayLike | None = None,
    min_train_fraction: float = 0.4,
    ts_col: str = "ts",
    symbol_col: str = "symbol",
) -> list[BarSplit]:
    """Expanding-window folds over ``rows``: train on all before a cut, validate on the next block.

    The span of ``rows`` after the first ``min_train_fraction`` of its timestamps is cut
    into ``n_folds`` equal blocks of rows; fold ``k`` validates on block ``k`` (``later``)
    and trains on every row of ``rows`` before it (``earlier``), with the purge and embargo
    applied at the fold's start cut. Folds whose train or validation side is empty raise.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    if not 0.0 < min_train_fraction < 1.0:
        raise ValueError(f"min_train_fraction must be in (0, 1), got {min_train_fraction}")
    sel = _rows(frame, rows)
    values = frame[ts_col].iloc[sel].sort_values(ignore_index=True)
    n = len(values)
    edges = np.linspace(min_train_fraction * n, n, n_folds + 1)
    cuts = [pd.Timestamp(values.iloc[min(int(np.floor(e)), n - 1)]) for e in edges[:-1]]
    folds = []
    for k, cut in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else None
        in_block = sel if end is None else sel[(frame[ts_col].iloc[sel] < end).to_numpy()]
        split = split_at(frame, cut, purge_bars, embargo_bars, in_block, ts_col, symbol_col)
        if split.earlier.size == 0 or split.later.size == 0:
            raise ValueError(
                f"walk-forward fold {k}: cut {cut} leaves {split.earlier.size} train and "
                f"{split.later.size} validation rows; use fewer folds or less purge/embargo"
            )
        folds.append(split)
    return folds
