"""The event contract with the bot: decision and outcome events, and two validators for them.

The JSON Schema files in ``schemas/events/`` (draft 2020-12) are the contract a bot in any
language follows (``docs/events.md``). A few rules JSON Schema cannot state are part of it too
(:data:`SEMANTIC_RULES`): timestamps must be real instants, and a logged
``action_distribution`` must sum to 1 and give the chosen arm exactly its ``propensity``.

Two validators enforce the same rules:

* :func:`validate_reference` runs the ``jsonschema`` package on one record, then the semantic
  rules: the readable definition, about a thousand times slower than needed for a log of a
  million events (``jsonschema`` is a development dependency; it is imported on use).
* :func:`validate_decisions` / :func:`validate_outcomes` check a whole batch of parsed
  records column by column (numpy / pandas) and return the valid rows as typed columns; this
  is what ingestion uses. A test runs both on a corpus of good and bad lines and requires the
  same verdict and the same field for every line.

A record's problem is reported as the first failing field in :data:`DECISION_FIELDS` /
:data:`OUTCOME_FIELDS` order, so one bad line yields one (field, reason) pair.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
import pandas as pd

from pipelines.features.names import FEATURE_NAMES
from pipelines.strategies.rules import ARMS
from pipelines.strategies.signals import ARM_NAMES, N_ARMS

SCHEMA_DIR: Final = Path(__file__).resolve().parents[2] / "schemas" / "events"
DECISION_SCHEMA_ID: Final = "edgeflow.decision/1"
OUTCOME_SCHEMA_ID: Final = "edgeflow.outcome/1"
FEATURE_SET_VERSION: Final = "edgeflow.features/1"

#: Field order of a decision event; a record's reported problem is the first failing field.
DECISION_FIELDS: Final[tuple[str, ...]] = (
    "schema",
    "event_id",
    "ts",
    "bot_id",
    "symbol",
    "arm",
    "strategy_id",
    "feature_set",
    "features",
    "propensity",
    "action_distribution",
    "models",
    "size_multiplier",
    "regime",
    "changepoint_prob",
    "engine",
)
DECISION_REQUIRED: Final = frozenset(DECISION_FIELDS) - {
    "features",
    "action_distribution",
    "engine",
}
OUTCOME_FIELDS: Final[tuple[str, ...]] = (
    "schema",
    "event_id",
    "decision_id",
    "bot_id",
    "closed_at",
    "net_return",
    "net_pnl",
    "currency",
    "fees",
    "holding_bars",
    "exit_reason",
)
#: Pseudo-field for keys the schema does not define (``additionalProperties: false``).
EXTRA_FIELD: Final = "<extra>"
#: Pseudo-field for a line that is not a JSON object of a known event type.
RECORD_FIELD: Final = "<record>"

REGIMES: Final[tuple[str, ...]] = ("TREND_UP", "TREND_DOWN", "RANGE", "PANIC")
MODEL_NAMES: Final[tuple[str, ...]] = ("regime", "bandit", "sizer", "metalabel", "recommendation")
EXIT_REASONS: Final[tuple[str, ...]] = (
    "take_profit",
    "stop_loss",
    "signal_exit",
    "time_exit",
    "manual",
    "session_end",
)
STRATEGY_OF_ARM: Final[dict[str, str]] = {a.name: a.legacy for a in ARMS}
STRATEGY_IDS: Final[tuple[str, ...]] = tuple(f"S{i}" for i in range(1, 15))
#: Tolerance of the semantic rules on ``action_distribution`` (sum, entry == propensity).
PROB_TOLERANCE: Final = 1e-6
SEMANTIC_RULES: Final[tuple[str, ...]] = (
    "ts / closed_at parse as ISO 8601 instants (the pattern fixes their shape, not the calendar)",
    f"action_distribution, when given, sums to 1 within {PROB_TOLERANCE}",
    f"action_distribution[arm], when given, equals propensity within {PROB_TOLERANCE}",
)

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_TS_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_VERSION_RE = re.compile(r"^v[0-9]{6}$")
_CURRENCY_RE = re.compile(r"^[A-Z][A-Z0-9]{2,9}$")
_ARM_INDEX: Final[dict[str, int]] = {n: i for i, n in enumerate(ARM_NAMES)}


@dataclass(frozen=True)
class Problem:
    """Why one record is invalid: the first failing field and a human-readable reason."""

    index: int
    field: str
    reason: str


# ---------------------------------------------------------------------------- schema files
@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of ``kind`` ('decision' or 'outcome') from ``schemas/events``."""
    if kind not in ("decision", "outcome"):
        raise ValueError(f"kind must be 'decision' or 'outcome', got {kind!r}")
    path = SCHEMA_DIR / f"{kind}-1.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def event_kind(record: object) -> str | None:
    """'decision', 'outcome' or None (not an object, or an unknown ``schema`` value)."""
    if not isinstance(record, dict):
        return None
    schema = record.get("schema")
    if schema == DECISION_SCHEMA_ID:
        return "decision"
    if schema == OUTCOME_SCHEMA_ID:
        return "outcome"
    return None


def non_event_problem(record: object) -> tuple[str, str]:
    """(field, reason) for a parsed line that is not a decision or outcome event."""
    if not isinstance(record, dict):
        return RECORD_FIELD, "not a JSON object"
    if "schema" not in record:
        return "schema", "'schema' is a required property"
    return "schema", f"unknown event schema {record['schema']!r}"


def _parses_as_instant(value: str) -> bool:
    return not pd.isna(pd.to_datetime([value], format="ISO8601", utc=True, errors="coerce")[0])


# ---------------------------------------------------------------------------- reference
@cache
def _validator(kind: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(kind))


def validate_reference(record: object) -> tuple[str, str] | None:
    """Validate one parsed record with ``jsonschema`` plus the semantic rules.

    Returns None when valid, else (field, reason) for the first failing field in contract
    order (``<record>`` for a non-object or unknown event type, ``<extra>`` for an undefined
    key).
    """
    kind = event_kind(record)
    if kind is None or not isinstance(record, dict):
        return non_event_problem(record)
    order = DECISION_FIELDS if kind == "decision" else OUTCOME_FIELDS
    found: dict[str, str] = {}
    for err in _validator(kind).iter_errors(record):
        if err.path:
            field = str(err.path[0])
        elif err.validator == "required":
            field = str(err.message.split("'")[1])
        elif err.validator == "additionalProperties":
            field = EXTRA_FIELD
        else:
            field = RECORD_FIELD
        found.setdefault(field, err.message)
    if not found:
        found.update(_semantic_problems(kind, record))
    if not found:
        return None
    rank = {f: i for i, f in enumerate((RECORD_FIELD, *order, EXTRA_FIELD))}
    field = min(found, key=lambda f: rank.get(f, len(rank)))
    return field, found[field]


def _semantic_problems(kind: str, rec: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    ts_field = "ts" if kind == "decision" else "closed_at"
    if not _parses_as_instant(rec[ts_field]):
        out[ts_field] = f"not a real instant: {rec[ts_field]!r}"
    dist = rec.get("action_distribution") if kind == "decision" else None
    if dist is not None:
        if abs(sum(dist) - 1.0) > PROB_TOLERANCE:
            out["action_distribution"] = f"sums to {sum(dist)!r}, not 1"
        elif abs(dist[_ARM_INDEX[rec["arm"]]] - rec["propensity"]) > PROB_TOLERANCE:
            out["propensity"] = "differs from action_distribution[arm]"
    return out


# ---------------------------------------------------------------------------- fast
class _Missing:
    """Marks a key absent from a record (distinct from JSON null)."""


_MISSING: Final = _Missing()


class _Checker:
    """Collects the first problem per row while field checks run column by column."""

    def __init__(self, n: int, order: Sequence[str]) -> None:
        self.n = n
        self.rank = {f: i for i, f in enumerate((RECORD_FIELD, *order, EXTRA_FIELD))}
        self.best = np.full(n, len(self.rank), dtype=np.int64)
        self.reason: list[str | None] = [None] * n

    def flag(self, bad: np.ndarray, field: str, reason: str | Sequence[str]) -> None:
        """Record ``reason`` for rows in mask ``bad`` whose current problem ranks later."""
        r = self.rank[field]
        rows = np.flatnonzero(bad & (self.best > r))
        self.best[rows] = r
        for i in rows:
            self.reason[i] = reason if isinstance(reason, str) else reason[int(i)]

    def problems(self) -> list[Problem]:
        names = list(self.rank)
        return [
            Problem(int(i), names[self.best[i]], str(self.reason[i]))
            for i in np.flatnonzero(self.best < len(self.rank))
        ]

    @property
    def ok(self) -> np.ndarray:
        return self.best == len(self.rank)


def _column(records: Sequence[dict[str, Any]], key: str) -> list[Any]:
    try:
        return list(map(itemgetter(key), records))
    except KeyError:
        return [r.get(key, _MISSING) for r in records]


def _pick(col: list[Any], rows: np.ndarray) -> list[Any]:
    return list(map(col.__getitem__, rows.tolist()))


_NUMBER_TYPES: Final = frozenset((float, int))  # exact types: JSON true/false is not a number


def _is_number(values: Any, n: int) -> np.ndarray:
    return np.fromiter((type(v) in _NUMBER_TYPES for v in values), bool, n)


def _present(col: list[Any], types: set[type]) -> np.ndarray:
    if _Missing not in types:
        return np.ones(len(col), dtype=bool)
    return np.fromiter((v is not _MISSING for v in col), bool, len(col))


def _check_required(chk: _Checker, col: list[Any], field: str) -> None:
    if _Missing in set(map(type, col)):
        missing = np.fromiter((v is _MISSING for v in col), bool, len(col))
        chk.flag(missing, field, f"'{field}' is a required property")


def _check_const(chk: _Checker, col: list[Any], field: str, value: str, required: bool) -> None:
    differs = np.fromiter(map(operator.ne, col, repeat(value)), bool, len(col))
    if not required:
        differs &= _present(col, set(map(type, col)))
    chk.flag(differs, field, f"must be {value!r}")


def _check_str(
    chk: _Checker, col: list[Any], field: str, pattern: re.Pattern[str] | None = None
) -> np.ndarray:
    """Flag non-strings and pattern mismatches; returns the mask of good values."""
    n = len(col)
    types = set(map(type, col))
    if types == {str}:
        good = np.ones(n, dtype=bool)
    else:
        present = _present(col, types)
        is_str = np.fromiter((type(v) is str for v in col), bool, n)
        chk.flag(present & ~is_str, field, "not a string")
        good = present & is_str
    if pattern is not None:
        if good.all():
            match = np.fromiter(map(bool, map(pattern.search, col)), bool, n)
        else:
            match = np.fromiter(
                (bool(g) and pattern.search(v) is not None for g, v in zip(good, col, strict=True)),
                bool,
                n,
            )
        chk.flag(good & ~match, field, f"does not match {pattern.pattern!r}")
        good &= match
    return good


def _check_enum(chk: _Checker, col: list[Any], field: str, allowed: Sequence[str]) -> np.ndarray:
    allowed_set = frozenset(allowed)
    n = len(col)
    types = set(map(type, col))
    if types == {str}:
        member = np.fromiter(map(allowed_set.__contains__, col), bool, n)
        present = np.ones(n, dtype=bool)
    else:
        present = _present(col, types)
        member = np.fromiter((type(v) is str and v in allowed_set for v in col), bool, n)
    chk.flag(present & ~member, field, f"not one of {list(allowed)}")
    return present & member


def _check_number(
    chk: _Checker,
    col: list[Any],
    field: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Flag non-numbers and out-of-range values; returns (good mask, float values)."""
    types = set(map(type, col))
    if types <= _NUMBER_TYPES:
        good = np.ones(len(col), dtype=bool)
        values = np.array(col, dtype=float)
    else:
        present = _present(col, types)
        num = _is_number(col, len(col))
        chk.flag(present & ~num, field, "not a number")
        values = np.array([v if k else np.nan for v, k in zip(col, num, strict=True)], dtype=float)
        good = present & num
    if integer:
        whole = good & (np.floor(values) == values)
        chk.flag(good & ~whole, field, "not an integer")
        good = whole
    with np.errstate(invalid="ignore"):
        if low is not None:
            below = (values <= low) if low_open else (values < low)
            chk.flag(good & below, field, f"below {'or at ' if low_open else ''}{low}")
            good &= ~below
        if high is not None:
            above = values > high
            chk.flag(good & above, field, f"above {high}")
            good &= ~above
    return good, values


def _check_ts(chk: _Checker, col: list[Any], field: str) -> tuple[np.ndarray, pd.DatetimeIndex]:
    good = _check_str(chk, col, field, _TS_RE)
    text = [v if g else None for v, g in zip(col, good, strict=True)]
    ts = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce"))
    real = ~np.asarray(ts.isna())
    chk.flag(good & ~real, field, "not a real instant")
    return good & real, ts


def _check_number_list(
    chk: _Checker, col: list[Any], field: str, length: int, low: float | None, high: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optional array of ``length`` numbers (null allowed). Returns (given, good, values)."""
    n = len(col)
    given = np.fromiter((v is not _MISSING and v is not None for v in col), bool, n)
    shaped = np.fromiter((type(v) is list and len(v) == length for v in col), bool, n)
    chk.flag(given & ~shaped, field, f"not an array of {length} numbers")
    values = np.full((n, length), np.nan)
    rows = np.flatnonzero(given & shaped)
    good = np.zeros(n, dtype=bool)
    if len(rows):
        block = _pick(col, rows)
        if set(map(type, chain.from_iterable(block))) <= _NUMBER_TYPES:
            row_ok: np.ndarray = np.ones(len(rows), dtype=bool)
        else:
            num = _is_number(chain.from_iterable(block), len(rows) * length)
            row_ok = np.asarray(num.reshape(len(rows), length).all(axis=1))
        bad = np.zeros(n, dtype=bool)
        bad[rows[~row_ok]] = True
        chk.flag(bad, field, "an item is not a number")
        okrows = rows[row_ok]
        if len(okrows):
            values[okrows] = np.array(_pick(col, okrows), dtype=float)
        good[okrows] = True
        with np.errstate(invalid="ignore"):
            out = np.zeros(n, dtype=bool)
            if low is not None:
                out |= (values < low).any(axis=1)
            if high is not None:
                out |= (values > high).any(axis=1)
        chk.flag(good & out, field, f"an item is outside [{low}, {high}]")
        good &= ~out
    return given, good, values


def _check_keys(chk: _Checker, records: Sequence[dict[str, Any]], allowed: frozenset[str]) -> None:
    extra = ~np.fromiter(map(allowed.issuperset, records), bool, len(records))
    chk.flag(extra, EXTRA_FIELD, "additional properties are not allowed")


def _check_models(chk: _Checker, col: list[Any]) -> np.ndarray:
    names = set(MODEL_NAMES)

    def problem(v: Any) -> str | None:
        if v is _MISSING:
            return None
        if type(v) is not dict:
            return "not an object"
        for k, ver in v.items():
            if k not in names:
                return f"unknown model {k!r}"
            if type(ver) is not str or _VERSION_RE.search(ver) is None:
                return f"version of {k!r} does not match '^v[0-9]{{6}}$'"
        return None

    reasons = [problem(v) for v in col]
    bad = np.fromiter((r is not None for r in reasons), bool, len(col))
    chk.flag(bad, "models", [r or "" for r in reasons])
    present = np.fromiter((v is not _MISSING for v in col), bool, len(col))
    return present & ~bad


@dataclass(frozen=True)
class ValidBatch:
    """Valid rows of a batch as typed columns, and the problems of the others."""

    frame: pd.DataFrame
    rows: np.ndarray
    problems: list[Problem]


def validate_decisions(records: Sequence[dict[str, Any]]) -> ValidBatch:
    """Validate decision records column by column; return the valid ones as a frame.

    ``records`` are parsed JSON objects whose ``schema`` is the decision schema id.
    Columns of the frame: :data:`pipelines.events.store.DECISION_COLUMNS` minus the
    provenance columns; ``rows`` indexes the valid records in ``records``.
    """
    n = len(records)
    chk = _Checker(n, DECISION_FIELDS)
    _check_keys(chk, records, frozenset(DECISION_FIELDS))
    cols = {f: _column(records, f) for f in DECISION_FIELDS}
    for f in DECISION_REQUIRED:
        _check_required(chk, cols[f], f)
    _check_const(chk, cols["schema"], "schema", DECISION_SCHEMA_ID, required=True)
    _check_str(chk, cols["event_id"], "event_id", _ID_RE)
    _, ts = _check_ts(chk, cols["ts"], "ts")
    _check_str(chk, cols["bot_id"], "bot_id", _ID_RE)
    sym_ok = _check_str(chk, cols["symbol"], "symbol")
    sym_len = np.fromiter(
        (bool(g) and 1 <= len(v) <= 64 for v, g in zip(cols["symbol"], sym_ok, strict=True)),
        bool,
        n,
    )
    chk.flag(sym_ok & ~sym_len, "symbol", "length must be 1..64")
    arm_ok = _check_enum(chk, cols["arm"], "arm", ARM_NAMES)
    _check_enum(chk, cols["strategy_id"], "strategy_id", STRATEGY_IDS)
    mismatch = np.fromiter(
        (
            bool(a) and STRATEGY_OF_ARM[arm] != s
            for a, arm, s in zip(arm_ok, cols["arm"], cols["strategy_id"], strict=True)
        ),
        bool,
        n,
    )
    chk.flag(mismatch, "strategy_id", "not the strategy of the chosen arm")
    _check_const(chk, cols["feature_set"], "feature_set", FEATURE_SET_VERSION, required=False)
    has_x, _, x = _check_number_list(
        chk, cols["features"], "features", len(FEATURE_NAMES), None, None
    )
    _, prop = _check_number(chk, cols["propensity"], "propensity", 0.0, 1.0, low_open=True)
    has_d, d_ok, dist = _check_number_list(
        chk, cols["action_distribution"], "action_distribution", N_ARMS, 0.0, 1.0
    )
    arm_idx = np.array([_ARM_INDEX.get(a, 0) if type(a) is str else 0 for a in cols["arm"]])
    with np.errstate(invalid="ignore"):
        bad_sum = d_ok & (np.abs(dist.sum(axis=1) - 1.0) > PROB_TOLERANCE)
        chk.flag(bad_sum, "action_distribution", "does not sum to 1")
        entry = dist[np.arange(n), arm_idx]
        bad_p = d_ok & ~bad_sum & arm_ok & (np.abs(entry - prop) > PROB_TOLERANCE)
    chk.flag(bad_p, "propensity", "differs from action_distribution[arm]")
    _check_models(chk, cols["models"])
    _, size = _check_number(chk, cols["size_multiplier"], "size_multiplier", 0.1, 2.0)
    regime_col = cols["regime"]
    _check_enum(chk, [_MISSING if v is None else v for v in regime_col], "regime", REGIMES)
    bad_engine = np.fromiter(
        (v is not _MISSING and type(v) is not dict for v in cols["engine"]), bool, n
    )
    chk.flag(bad_engine, "engine", "not an object")
    _, cp = _check_number(chk, cols["changepoint_prob"], "changepoint_prob", 0.0, 1.0)

    rows = np.flatnonzero(chk.ok)
    models = _pick(cols["models"], rows)
    frame = pd.DataFrame(
        {
            "event_id": _pick(cols["event_id"], rows),
            "ts": ts[rows],
            "bot_id": _pick(cols["bot_id"], rows),
            "symbol": _pick(cols["symbol"], rows),
            "strategy_id": _pick(cols["strategy_id"], rows),
            "arm": arm_idx[rows].astype(np.int16),
            "arm_name": _pick(cols["arm"], rows),
            "propensity": prop[rows],
            "size_multiplier": size[rows],
            "regime": _pick(cols["regime"], rows),
            "changepoint_prob": cp[rows],
            "models": [orjson.dumps(m, option=orjson.OPT_SORT_KEYS).decode() for m in models],
            "bandit_version": [m.get("bandit") for m in models],
            "has_features": has_x[rows],
            "has_action_distribution": has_d[rows],
        }
    )
    feats = pd.DataFrame(x[rows].astype(np.float32), columns=list(FEATURE_NAMES))
    probs = pd.DataFrame(dist[rows], columns=[f"p_{a}" for a in ARM_NAMES])
    return ValidBatch(pd.concat([frame, feats, probs], axis=1), rows, chk.problems())


def validate_outcomes(records: Sequence[dict[str, Any]]) -> ValidBatch:
    """Validate outcome records column by column; return the valid ones as a frame."""
    n = len(records)
    chk = _Checker(n, OUTCOME_FIELDS)
    _check_keys(chk, records, frozenset(OUTCOME_FIELDS))
    cols = {f: _column(records, f) for f in OUTCOME_FIELDS}
    for f in OUTCOME_FIELDS:
        _check_required(chk, cols[f], f)
    _check_const(chk, cols["schema"], "schema", OUTCOME_SCHEMA_ID, required=True)
    _check_str(chk, cols["event_id"], "event_id", _ID_RE)
    _check_str(chk, cols["decision_id"], "decision_id", _ID_RE)
    _check_str(chk, cols["bot_id"], "bot_id", _ID_RE)
    _, closed = _check_ts(chk, cols["closed_at"], "closed_at")
    _, ret = _check_number(chk, cols["net_return"], "net_return")
    _, pnl = _check_number(chk, cols["net_pnl"], "net_pnl")
    _check_str(chk, cols["currency"], "currency", _CURRENCY_RE)
    _, fees = _check_number(chk, cols["fees"], "fees", 0.0)
    _, hold = _check_number(chk, cols["holding_bars"], "holding_bars", 0.0, integer=True)
    _check_enum(chk, cols["exit_reason"], "exit_reason", EXIT_REASONS)

    rows = np.flatnonzero(chk.ok)
    frame = pd.DataFrame(
        {
            "event_id": _pick(cols["event_id"], rows),
            "decision_id": _pick(cols["decision_id"], rows),
            "outcome_bot_id": _pick(cols["bot_id"], rows),
            "closed_at": closed[rows],
            "net_return": ret[rows],
            "net_pnl": pnl[rows],
            "currency": _pick(cols["currency"], rows),
            "fees": fees[rows],
            "holding_bars": hold[rows].astype(np.int64),
            "exit_reason": _pick(cols["exit_reason"], rows),
        }
    )
    return ValidBatch(frame, rows, chk.problems())
