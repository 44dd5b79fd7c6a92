"""Splits in bars per symbol, checked by hand on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluation.splits import (
    bar_positions,
    inner_split_bars,
    split_at,
    time_split_bars,
    walk_forward_bars,
)

T0 = pd.Timestamp("2024-01-01T00:00:00Z")


def _h(k: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=k)


def _frame(hours: dict[str, list[int]], shuffle: bool = True) -> pd.DataFrame:
    rows = [(s, _h(k)) for s, ks in hours.items() for k in ks]
    frame = pd.DataFrame(rows, columns=["symbol", "ts"])
    if shuffle:  # the functions must not depend on row order
        frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return frame


def _picked(frame: pd.DataFrame, idx: np.ndarray) -> set[tuple[str, int]]:
    return {
        (s, int((t - T0) / pd.Timedelta(hours=1)))
        for s, t in zip(frame["symbol"].iloc[idx], frame["ts"].iloc[idx], strict=True)
    }


def test_bar_positions_count_bars_not_hours() -> None:
    frame = _frame({"A": [0, 1, 2, 50, 51]}, shuffle=False)
    np.testing.assert_array_equal(bar_positions(frame), [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="duplicate"):
        bar_positions(pd.concat([frame, frame.iloc[:1]], ignore_index=True))


def test_time_split_one_cut_purge_and_embargo_in_bars() -> None:
    # A: bars at hours 0..9; B: hours 2..9 (8 bars). 18 rows, cut = sorted ts[12] = hour 7.
    frame = _frame({"A": list(range(10)), "B": list(range(2, 10))})
    split = time_split_bars(frame, holdout_fraction=0.3, purge_bars=2, embargo_bars=1)
    assert split.cut == _h(7)
    # A's first held-out bar is bar 7 -> train keeps bars < 5; B's is bar 5 (hour 7) -> < 3.
    assert _picked(frame, split.earlier) == {("A", k) for k in range(5)} | {
        ("B", k) for k in (2, 3, 4)
    }
    # embargo 1: the first held-out bar of each symbol (hour 7) is dropped.
    assert _picked(frame, split.later) == {("A", 8), ("A", 9), ("B", 8), ("B", 9)}
    assert np.intersect1d(split.earlier, split.later).size == 0


def test_purge_counts_bars_across_a_gap() -> None:
    """Over a 45-hour gap a 2-bar purge drops 2 bars; a 48-hour purge would drop all five."""
    frame = _frame({"A": [0, 1, 2, 3, 4, 50, 51, 52, 53, 54]})
    split = split_at(frame, _h(50), purge_bars=2)
    assert _picked(frame, split.earlier) == {("A", k) for k in (0, 1, 2)}
    assert _picked(frame, split.later) == {("A", k) for k in range(50, 55)}


def test_symbol_ending_before_cut_is_not_purged() -> None:
    frame = _frame({"A": list(range(10)), "B": [0, 1, 2, 3]})
    split = split_at(frame, _h(6), purge_bars=2)
    assert {("B", k) for k in range(4)} <= _picked(frame, split.earlier)
    assert ("A", 3) in _picked(frame, split.earlier) and ("A", 4) not in _picked(
        frame, split.earlier
    )


def test_inner_split_is_time_ordered_across_symbols_and_inside_train() -> None:
    frame = _frame({"A": list(range(20)), "B": list(range(20))})
    outer = time_split_bars(frame, holdout_fraction=0.25, purge_bars=1)
    assert outer.cut == _h(15)
    inner = inner_split_bars(frame, outer.earlier, fraction=0.25, purge_bars=2)
    # train rows: hours 0..13 for both symbols (28 rows); cut = sorted[21] = hour 10.
    assert inner.cut == _h(10)
    assert _picked(frame, inner.later) == {(s, k) for s in "AB" for k in range(10, 14)}
    assert _picked(frame, inner.earlier) == {(s, k) for s in "AB" for k in range(8)}
    assert set(inner.later) <= set(outer.earlier)
    assert not set(inner.later) & set(outer.later)
    # both symbols are in the calibration span: not "the last rows of a symbol-sorted frame"
    assert set(frame["symbol"].iloc[inner.later]) == {"A", "B"}


def test_walk_forward_folds_expand_and_purge() -> None:
    frame = _frame({"A": list(range(20))})
    folds = walk_forward_bars(
        frame, n_folds=2, purge_bars=2, embargo_bars=1, min_train_fraction=0.5
    )
    # 20 rows: edges at rows 10 and 15 -> cuts at hours 10 and 15.
    assert [f.cut for f in folds] == [_h(10), _h(15)]
    assert _picked(frame, folds[0].earlier) == {("A", k) for k in range(8)}
    assert _picked(frame, folds[0].later) == {("A", k) for k in range(11, 15)}
    assert _picked(frame, folds[1].earlier) == {("A", k) for k in range(13)}
    assert _picked(frame, folds[1].later) == {("A", k) for k in range(16, 20)}


def test_walk_forward_on_fit_rows_never_touches_calibration() -> None:
    frame = _frame({"A": list(range(40)), "B": list(range(5, 40))})
    outer = time_split_bars(frame, 0.2, purge_bars=3)
    inner = inner_split_bars(frame, outer.earlier, 0.2, purge_bars=3)
    for fold in walk_forward_bars(frame, 3, purge_bars=3, rows=inner.earlier):
        used = set(fold.earlier) | set(fold.later)
        assert used <= set(inner.earlier)
        assert not used & set(inner.later) and not used & set(outer.later)


def test_split_errors_are_clear() -> None:
    frame = _frame({"A": list(range(5))})
    with pytest.raises(ValueError, match="fraction must be in"):
        time_split_bars(frame, 1.5, purge_bars=0)
    with pytest.raises(ValueError, match="leaves 0 earlier"):
        time_split_bars(frame, 0.2, purge_bars=10)
    with pytest.raises(ValueError, match="purge_bars must be >= 0"):
        split_at(frame, _h(2), purge_bars=-1)
    with pytest.raises(ValueError, match="walk-forward fold"):
        walk_forward_bars(frame, 2, purge_bars=5)


def test_real_fx_gap_is_exactly_purge_plus_embargo_bars() -> None:
    """On EURUSD hourly (weekend gaps), every cut leaves exactly 24 + 12 bars out."""
    from backtesting.test import EURUSD

    frame = pd.DataFrame({"symbol": "EURUSD", "ts": EURUSD.index.tz_localize("UTC")})
    pos = bar_positions(frame)
    for fraction in (0.1, 0.2, 0.3, 0.45):
        split = time_split_bars(frame, fraction, purge_bars=24, embargo_bars=12)
        assert pos[split.later].min() - pos[split.earlier].max() - 1 == 36
