"""Joining outcomes to their decisions, whatever order they arrive in.

A decision's outcome comes when its trade closes, usually in a later file; across bots or
re-delivered files it can even arrive first. So both sides wait: decisions without an
outcome and outcomes without a decision are kept *pending* and offered again to every later
ingest. The join is one-to-one on ``decision_id``: a second outcome for a decision is not
silently added (it would double that decision's weight) but returned for quarantine, as is an
outcome that closes before its decision was made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Outcome columns renamed in the joined frame (the rest keep their names).
_OUTCOME_RENAME = {"event_id": "outcome_id", "file": "outcome_file", "line": "outcome_line"}


def id_array(values: pd.Series) -> pa.Array:
    """A column of string ids as an Arrow array (zero-copy for pandas' Arrow strings)."""
    arr = pa.array(values, from_pandas=True)
    if arr.type == pa.null():
        return pa.array([None] * len(arr), type=pa.large_string())
    return arr if arr.type == pa.large_string() else arr.cast(pa.large_string())


def _isin(values: pd.Series, among: pd.Series) -> np.ndarray:
    """``values.isin(among)`` for string ids, in Arrow (pandas builds a Python list first)."""
    if len(values) == 0 or len(among) == 0:
        return np.zeros(len(values), dtype=bool)
    mask = pc.is_in(id_array(values), value_set=id_array(among))
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


@dataclass(frozen=True)
class JoinResult:
    """Newly joined decisions and what is left waiting or refused."""

    joined: pd.DataFrame
    pending_decisions: pd.DataFrame
    pending_outcomes: pd.DataFrame
    refused_outcomes: pd.DataFrame


def join_events(
    decisions: pd.DataFrame, outcomes: pd.DataFrame, closed_before: np.ndarray
) -> JoinResult:
    """Join ``outcomes`` to ``decisions`` one-to-one on ``decision_id``.

    Parameters
    ----------
    decisions : decisions waiting for an outcome (unique ``event_id``), any order.
    outcomes : outcomes not joined yet (unique ``event_id``), in arrival order.
    closed_before : [len(outcomes)] bool, whether each outcome's decision was already joined
        by an earlier ingest.

    Returns
    -------
    JoinResult whose ``joined`` has every decision column, the outcome's columns
    (``outcome_id``, ``closed_at``, ``net_return``, ...) and ``reward`` (= ``net_return``);
    ``refused_outcomes`` carries a ``reason`` column.
    """
    already = pd.Series(np.asarray(closed_before, dtype=bool), index=outcomes.index)
    repeat = outcomes["decision_id"].duplicated(keep="first") & ~already
    refused = [
        outcomes[already].assign(reason="a second outcome for a decision already joined"),
        outcomes[repeat].assign(reason="a second outcome for the same decision"),
    ]
    candidates = outcomes[~already & ~repeat]
    merged = decisions.merge(
        candidates.rename(columns=_OUTCOME_RENAME),
        left_on="event_id",
        right_on="decision_id",
        how="inner",
        validate="one_to_one",
    )
    early = merged["closed_at"] < merged["ts"]
    refused.append(
        candidates[_isin(candidates["event_id"], merged.loc[early, "outcome_id"])].assign(
            reason="closed_at is before its decision's ts"
        )
    )
    joined = merged[~early].drop(columns="decision_id")
    joined = joined.assign(reward=joined["net_return"].to_numpy())
    pending_outcomes = candidates[~_isin(candidates["event_id"], merged["outcome_id"])]
    pending_decisions = decisions[~_isin(decisions["event_id"], joined["event_id"])]
    return JoinResult(
        joined.sort_values(["ts", "symbol", "event_id"], kind="stable", ignore_index=True),
        pending_decisions.reset_index(drop=True),
        pending_outcomes.reset_index(drop=True),
        pd.concat(refused, ignore_index=True),
    )
