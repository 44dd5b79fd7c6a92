"""The spans a model is judged on, in one place: fit -> validation -> test -> confirmation.

Why a confirmation span: a held-out span that decides whether a model ships has informed that
decision, so the lift measured on it is biased upwards by the selection (the winner's curse:
of many noisy candidates, the one that looks best on a span is the one whose noise there was
luckiest). A later span that nothing looked at before the decision gives an unbiased second
reading; a model ships only when both lower bounds clear the gate.

Every model uses the same layout (docs/models.md, "Spans"):

* **fit**: the earlier part of the model's training rows (its trainer fits here);
* **validation**: the end of the training rows (selection, thresholds, early stopping,
  calibration), cut by ``pipelines.evaluation.splits``;
* **test**: the earlier ``1 - confirm_fraction`` of the held-out rows (the gate);
* **confirmation**: the later ``confirm_fraction`` of the held-out rows, cut at one timestamp
  across symbols (the ``1 - confirm_fraction`` quantile of the held-out times).

Test and confirmation are both only scored, never fitted on, so no purge separates them: a
label window that straddles their cut couples at most ``h`` rows of serial correlation.

Metrics follow one naming rule: a test-span estimate is written under ``key`` (``key``,
``key_ci_low``, ``key_ci_high``), the same estimate on the confirmation span under
``confirm/key``. :func:`put_interval` writes both forms; :func:`confirm_key` names the second.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.evaluation.bootstrap import Interval, PairedStat, paired_ci

Span = Literal["test", "confirm"]
SPANS: tuple[Span, ...] = ("test", "confirm")
CONFIRM_PREFIX = "confirm/"


def confirm_key(key: str) -> str:
    """The metric key of ``key``'s estimate on the confirmation span."""
    return f"{CONFIRM_PREFIX}{key}"


def span_key(key: str, span: Span) -> str:
    """``key`` on the test span, ``confirm/key`` on the confirmation span."""
    if span not in SPANS:
        raise ValueError(f"span must be one of {SPANS}, got {span!r}")
    return key if span == "test" else confirm_key(key)


def confirm_cut(ts: pd.Series | pd.DatetimeIndex, confirm_fraction: float) -> pd.Timestamp:
    """The first timestamp of the confirmation span: the ``1 - confirm_fraction`` quantile of
    the held-out rows' times (one of the values, so the cut is a real bar time)."""
    if not 0.0 < confirm_fraction < 1.0:
        raise ValueError(f"confirm_fraction must be in (0, 1), got {confirm_fraction}")
    values = pd.Series(ts).sort_values(ignore_index=True)
    if len(values) < 2:
        raise ValueError(f"need at least 2 held-out rows to cut, got {len(values)}")
    k = min(max(int(np.floor((1.0 - confirm_fraction) * len(values))), 1), len(values) - 1)
    return pd.Timestamp(values.iloc[k])


def span_masks(
    ts: pd.Series | pd.DatetimeIndex, confirm_fraction: float
) -> dict[Span, npt.NDArray[np.bool_]]:
    """Boolean masks over the held-out rows: ``test`` (before the cut), ``confirm`` (at/after)."""
    cut = confirm_cut(ts, confirm_fraction)
    later = (pd.Series(ts).reset_index(drop=True) >= cut).to_numpy()
    return {"test": ~later, "confirm": later}


def put_interval(
    metrics: MutableMapping[str, float], key: str, est: Interval, span: Span = "test"
) -> None:
    """Write ``est`` as ``key``/``key_ci_low``/``key_ci_high`` on its span's key."""
    k = span_key(key, span)
    metrics[k] = float(est.value)
    metrics[f"{k}_ci_low"] = float(est.low)
    metrics[f"{k}_ci_high"] = float(est.high)


def paired_span_cis(
    ts: pd.Series | pd.DatetimeIndex,
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    stat: PairedStat,
    *,
    block: int,
    n: int,
    level: float,
    seed: int,
    confirm_fraction: float,
) -> dict[Span, Interval]:
    """``stat(a, b)`` with its paired block-bootstrap interval on the test and the confirmation
    span of the held-out rows (``ts``, ``a`` and ``b`` row-aligned and time-ordered within each
    symbol). A span too short to resample gets a NaN interval, which fails any gate."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if not (len(x) == len(y) == len(ts)):
        raise ValueError(f"ts, a and b must be row-aligned, got {len(ts)}, {len(x)}, {len(y)}")
    out: dict[Span, Interval] = {}
    for span, mask in span_masks(ts, confirm_fraction).items():
        if mask.sum() < 2:
            out[span] = Interval(float("nan"), float("nan"), float("nan"))
            continue
        out[span] = paired_ci(x[mask], y[mask], stat, block, n, level, seed)
    return out


def put_span_intervals(
    metrics: MutableMapping[str, float], key: str, intervals: Mapping[Span, Interval]
) -> None:
    """Write each span's interval of ``key`` (see :func:`put_interval`)."""
    for span, est in intervals.items():
        put_interval(metrics, key, est, span)
