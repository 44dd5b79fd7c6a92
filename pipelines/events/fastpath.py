"""The fast path of ingestion: a block of log lines scanned, typed and validated without
building a Python object per event.

The exact path (``reader.read_chunk`` then ``contract.validate_decisions`` /
``validate_outcomes``) parses every line with ``orjson`` into dicts and checks them column by
column. That costs a Python object per field of every event. Here a compiled scanner
(numba) walks the bytes of a block once and records, per line, where each field's string or
number token lies; numbers are converted by Arrow's string-to-double cast (correctly
rounded, as ``orjson`` is), strings are gathered into Arrow arrays, and the contract's rules
are checked on whole columns.

The fast path only ever *accepts*. A line it is not sure about is handed to the exact path,
one line at a time: anything the scanner does not know (an unknown or repeated key, a
``null`` other than an absent feature vector or distribution (or inside the ``engine``
note, which is checked as JSON and not kept), an escape sequence in a string, ``true`` /
``false`` as a field's value, a ``-0`` or a very long integer, bytes
that are not UTF-8, a blank line, a line that is not JSON) and every record that fails a rule
of the contract. So a bad line is quarantined by exactly the code that quarantined it before,
with the same file, line, field and reason; and a good line accepted here yields exactly the
values the exact path would have stored (``tests/events/test_events_fastpath.py`` checks both
on the contract corpus and on logs with planted defects).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numba as nb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.events.contract import (
    DECISION_FIELDS,
    DECISION_REQUIRED,
    DECISION_SCHEMA_ID,
    EXIT_REASONS,
    FEATURE_SET_VERSION,
    MODEL_NAMES,
    OUTCOME_FIELDS,
    OUTCOME_SCHEMA_ID,
    PROB_TOLERANCE,
    REGIMES,
    STRATEGY_OF_ARM,
)
from pipelines.features.names import FEATURE_NAMES
from pipelines.strategies.signals import ARM_NAMES, N_ARMS

#: Lines scanned per block (bounds the scanner's per-line arrays).
BLOCK_LINES: Final = 32768

_STR, _NUM, _LIST, _MODELS, _OTHER = 0, 1, 2, 3, 4
#: Every key the scanner knows: the decision fields, then the outcome-only ones.
KEYS: Final[tuple[str, ...]] = DECISION_FIELDS + tuple(
    f for f in OUTCOME_FIELDS if f not in DECISION_FIELDS
)
_KIND: Final[dict[str, int]] = {
    "features": _LIST,
    "action_distribution": _LIST,
    "models": _MODELS,
    "engine": _OTHER,
    "propensity": _NUM,
    "size_multiplier": _NUM,
    "changepoint_prob": _NUM,
    "net_return": _NUM,
    "net_pnl": _NUM,
    "fees": _NUM,
    "holding_bars": _NUM,
}
_K: Final = {k: i for i, k in enumerate(KEYS)}
_N_KEYS: Final = len(KEYS)
_LISTS: Final[tuple[str, ...]] = ("features", "action_distribution")
_LIST_LEN: Final = (len(FEATURE_NAMES), N_ARMS)
#: Model names in sorted order: the order ``orjson.OPT_SORT_KEYS`` writes them in.
_MODELS_SORTED: Final[tuple[str, ...]] = tuple(sorted(MODEL_NAMES))


def _table(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    raw = [n.encode("ascii") for n in names]
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in raw])
    return np.frombuffer(b"".join(raw), dtype=np.uint8).copy(), offsets


_KEY_BYTES, _KEY_OFF = _table(KEYS)
_KEY_TYPE: Final = np.array([_KIND.get(k, _STR) for k in KEYS], dtype=np.int8)
_LIST_SLOT: Final = np.array([_LISTS.index(k) if k in _LISTS else -1 for k in KEYS], np.int8)
_MODEL_BYTES, _MODEL_OFF = _table(_MODELS_SORTED)


def _bits(names: frozenset[str] | tuple[str, ...]) -> int:
    return sum(1 << _K[n] for n in names)


_DECISION_REQUIRED_BITS: Final = _bits(DECISION_REQUIRED)
_DECISION_ALLOWED_BITS: Final = _bits(DECISION_FIELDS)
_OUTCOME_BITS: Final = _bits(OUTCOME_FIELDS)


# ---------------------------------------------------------------------------- the scanner
@nb.njit(cache=True, nogil=True)
def _ws(buf: np.ndarray, p: int, end: int) -> int:
    while p < end:
        c = buf[p]
        if c != 32 and c != 9 and c != 13:
            break
        p += 1
    return p


@nb.njit(cache=True, nogil=True)
def _string(buf: np.ndarray, p: int, end: int, ascii_only: bool) -> int:
    """``p`` at the opening quote; the position of the closing quote, or -1 for a string the
    fast path does not take (escapes, control characters, non-ASCII where not allowed)."""
    if p >= end or buf[p] != 34:
        return -1
    p += 1
    while p < end:
        c = buf[p]
        if c == 34:
            return p
        if c == 92 or c < 32 or (ascii_only and c >= 128):
            return -1
        p += 1
    return -1


@nb.njit(cache=True, nogil=True)
def _number(buf: np.ndarray, p: int, end: int) -> int:  # noqa: C901 (one scanner)
    """End of the strict JSON number at ``p``, or -1 (also for ``-0`` and integers of more
    than 15 digits, which ``orjson`` reads as Python ints: the exact path handles those)."""
    q = p
    neg = False
    if q < end and buf[q] == 45:
        neg = True
        q += 1
    if q >= end:
        return -1
    d0 = q
    c = buf[q]
    if c == 48:
        q += 1
        if q < end and 48 <= buf[q] <= 57:
            return -1
    elif 49 <= c <= 57:
        while q < end and 48 <= buf[q] <= 57:
            q += 1
    else:
        return -1
    n_int = q - d0
    plain = True
    if q < end and buf[q] == 46:
        plain = False
        q += 1
        f0 = q
        while q < end and 48 <= buf[q] <= 57:
            q += 1
        if q == f0:
            return -1
    if q < end and (buf[q] == 101 or buf[q] == 69):
        plain = False
        q += 1
        if q < end and (buf[q] == 43 or buf[q] == 45):
            q += 1
        e0 = q
        while q < end and 48 <= buf[q] <= 57:
            q += 1
        if q == e0:
            return -1
    if plain and (n_int > 15 or (neg and buf[d0] == 48)):
        return -1
    return q


@nb.njit(cache=True, nogil=True)
def _match(buf: np.ndarray, s: int, e: int, names: np.ndarray, offs: np.ndarray) -> int:
    n = e - s
    for k in range(len(offs) - 1):
        a = offs[k]
        if offs[k + 1] - a != n:
            continue
        same = True
        for j in range(n):
            if names[a + j] != buf[s + j]:
                same = False
                break
        if same:
            return k
    return -1


@nb.njit(cache=True, nogil=True)
def _literal(buf: np.ndarray, p: int, end: int) -> int:
    """End of ``true`` / ``false`` / ``null`` at ``p``, or -1."""
    c = buf[p]
    if c == 116 and p + 4 <= end and buf[p + 1] == 114 and buf[p + 2] == 117:
        return p + 4 if buf[p + 3] == 101 else -1
    if c == 110 and p + 4 <= end and buf[p + 1] == 117 and buf[p + 2] == 108:
        return p + 4 if buf[p + 3] == 108 else -1
    if c == 102 and p + 5 <= end and buf[p + 1] == 97 and buf[p + 2] == 108:
        return p + 5 if buf[p + 3] == 115 and buf[p + 4] == 101 else -1
    return -1


@nb.njit(cache=True, nogil=True)
def _skip_object(buf: np.ndarray, p: int, end: int, ascii_only: bool) -> int:  # noqa: C901
    """End of the JSON object at ``p`` (an ``engine`` note: checked, not kept), or -1 for
    anything the exact path should judge (escapes, ``-0``, long integers, deep nesting)."""
    if p >= end or buf[p] != 123:
        return -1
    stack = np.zeros(32, dtype=np.uint8)  # 1: object, 2: array
    depth = 0
    want_value = True
    while True:
        if not want_value and depth == 0:
            return p
        p = _ws(buf, p, end)
        if p >= end:
            return -1
        c = buf[p]
        if want_value:
            if c == 123 or c == 91:
                if depth == len(stack):
                    return -1
                stack[depth] = 1 if c == 123 else 2
                depth += 1
                p = _ws(buf, p + 1, end)
                if p < end and buf[p] == (125 if c == 123 else 93):
                    depth -= 1
                    p += 1
                    want_value = False
                elif c == 123:
                    q = _string(buf, p, end, ascii_only)
                    if q < 0:
                        return -1
                    p = _ws(buf, q + 1, end)
                    if p >= end or buf[p] != 58:
                        return -1
                    p += 1
                continue
            if c == 34:
                q = _string(buf, p, end, ascii_only)
                if q < 0:
                    return -1
                p = q + 1
            elif c == 45 or 48 <= c <= 57:
                p = _number(buf, p, end)
            else:
                p = _literal(buf, p, end)
            if p < 0:
                return -1
            want_value = False
            continue
        top = stack[depth - 1]
        if c == 44:
            p = _ws(buf, p + 1, end)
            if top == 1:
                q = _string(buf, p, end, ascii_only)
                if q < 0:
                    return -1
                p = _ws(buf, q + 1, end)
                if p >= end or buf[p] != 58:
                    return -1
                p += 1
            want_value = True
        elif (c == 125 and top == 1) or (c == 93 and top == 2):
            depth -= 1
            p += 1
        else:
            return -1


@nb.njit(cache=True, nogil=True)
def _scan_line(  # noqa: C901 (one scanner: a state machine reads best in one piece)
    buf: np.ndarray,
    p: int,
    end: int,
    li: int,
    ascii_only: bool,
    key_bytes: np.ndarray,
    key_off: np.ndarray,
    key_type: np.ndarray,
    list_slot: np.ndarray,
    model_bytes: np.ndarray,
    model_off: np.ndarray,
    present: np.ndarray,
    s_beg: np.ndarray,
    s_end: np.ndarray,
    lst_beg: np.ndarray,
    lst_len: np.ndarray,
    tok_beg: np.ndarray,
    tok_end: np.ndarray,
    ntok: int,
) -> int:
    """Scan one line ``buf[p:end]``; returns the new token count, or -1 (not taken)."""
    n_keys = len(key_type)
    p = _ws(buf, p, end)
    if p >= end or buf[p] != 123:
        return -1
    p = _ws(buf, p + 1, end)
    seen = 0
    while True:
        q = _string(buf, p, end, True)
        if q < 0:
            return -1
        k = _match(buf, p + 1, q, key_bytes, key_off)
        if k < 0 or (seen >> k) & 1:
            return -1
        seen |= 1 << k
        p = _ws(buf, q + 1, end)
        if p >= end or buf[p] != 58:
            return -1
        p = _ws(buf, p + 1, end)
        t = key_type[k]
        if t == 0:
            q = _string(buf, p, end, ascii_only)
            if q < 0:
                return -1
            s_beg[li, k] = p + 1
            s_end[li, k] = q
            p = q + 1
        elif t == 1:
            q = _number(buf, p, end)
            if q < 0:
                return -1
            s_beg[li, k] = p
            s_end[li, k] = q
            p = q
        elif t == 2:
            slot = list_slot[k]
            if (
                p + 4 <= end
                and buf[p] == 110
                and buf[p + 1] == 117
                and buf[p + 2] == 108
                and buf[p + 3] == 108
            ):
                p += 4  # a null vector: not given, as when the key is absent
            else:
                if p >= end or buf[p] != 91:
                    return -1
                p = _ws(buf, p + 1, end)
                first = ntok
                if p < end and buf[p] == 93:
                    p += 1
                else:
                    while True:
                        q = _number(buf, p, end)
                        if q < 0 or ntok >= len(tok_beg):
                            return -1
                        tok_beg[ntok] = p
                        tok_end[ntok] = q
                        ntok += 1
                        p = _ws(buf, q, end)
                        if p < end and buf[p] == 44:
                            p = _ws(buf, p + 1, end)
                        elif p < end and buf[p] == 93:
                            p += 1
                            break
                        else:
                            return -1
                lst_beg[li, slot] = first
                lst_len[li, slot] = ntok - first
        elif t == 3:
            if p >= end or buf[p] != 123:
                return -1
            p = _ws(buf, p + 1, end)
            if p < end and buf[p] == 125:
                p += 1
            else:
                mseen = 0
                while True:
                    q = _string(buf, p, end, True)
                    if q < 0:
                        return -1
                    m = _match(buf, p + 1, q, model_bytes, model_off)
                    if m < 0 or (mseen >> m) & 1:
                        return -1
                    mseen |= 1 << m
                    p = _ws(buf, q + 1, end)
                    if p >= end or buf[p] != 58:
                        return -1
                    p = _ws(buf, p + 1, end)
                    q = _string(buf, p, end, True)
                    if q < 0:
                        return -1
                    s_beg[li, n_keys + m] = p + 1
                    s_end[li, n_keys + m] = q
                    p = _ws(buf, q + 1, end)
                    if p < end and buf[p] == 44:
                        p = _ws(buf, p + 1, end)
                    elif p < end and buf[p] == 125:
                        p += 1
                        break
                    else:
                        return -1
        else:  # the engine note: checked as JSON, not kept
            q = _skip_object(buf, p, end, ascii_only)
            if q < 0:
                return -1
            p = q
        p = _ws(buf, p, end)
        if p < end and buf[p] == 44:
            p = _ws(buf, p + 1, end)
        elif p < end and buf[p] == 125:
            p = _ws(buf, p + 1, end)
            break
        else:
            return -1
    if p != end:
        return -1
    present[li] = seen
    return ntok


@nb.njit(cache=True, nogil=True)
def _scan(
    buf: np.ndarray,
    start: int,
    max_lines: int,
    ascii_only: bool,
    key_bytes: np.ndarray,
    key_off: np.ndarray,
    key_type: np.ndarray,
    list_slot: np.ndarray,
    model_bytes: np.ndarray,
    model_off: np.ndarray,
    line_beg: np.ndarray,
    line_end: np.ndarray,
    taken: np.ndarray,
    present: np.ndarray,
    s_beg: np.ndarray,
    s_end: np.ndarray,
    lst_beg: np.ndarray,
    lst_len: np.ndarray,
    tok_beg: np.ndarray,
    tok_end: np.ndarray,
) -> tuple[int, int, int]:
    """Scan up to ``max_lines`` newline-terminated lines from ``start``.

    Returns (lines scanned, position after the last one, tokens recorded).
    """
    n = len(buf)
    p = start
    li = 0
    ntok = 0
    while li < max_lines and p < n:
        e = p
        while e < n and buf[e] != 10:
            e += 1
        line_beg[li] = p
        line_end[li] = e
        got = _scan_line(
            buf,
            p,
            e,
            li,
            ascii_only,
            key_bytes,
            key_off,
            key_type,
            list_slot,
            model_bytes,
            model_off,
            present,
            s_beg,
            s_end,
            lst_beg,
            lst_len,
            tok_beg,
            tok_end,
            ntok,
        )
        if got >= 0:
            taken[li] = True
            ntok = got
        li += 1
        p = e + 1
    return li, p, ntok


@nb.njit(cache=True, nogil=True)
def _gather(buf: np.ndarray, beg: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``buf[beg[i]:end[i]]``: (data, int32 offsets) of an Arrow string array."""
    n = len(beg)
    offsets = np.empty(n + 1, dtype=np.int32)
    total = 0
    offsets[0] = 0
    for i in range(n):
        total += end[i] - beg[i]
        offsets[i + 1] = total
    data = np.empty(total, dtype=np.uint8)
    for i in range(n):
        data[offsets[i] : offsets[i + 1]] = buf[beg[i] : end[i]]
    return data, offsets


@nb.njit(cache=True, nogil=True)
def _shaped(
    buf: np.ndarray,
    beg: np.ndarray,
    end: np.ndarray,
    first: np.ndarray,
    rest: np.ndarray,
    min_rest: int,
    max_rest: int,
) -> np.ndarray:
    """Whether each token ``buf[beg[i]:end[i]]`` is one byte of class ``first`` then
    ``min_rest`` to ``max_rest`` bytes of class ``rest`` (256-entry tables): the anchored
    regexes of the contract, checked on the bytes without building a string array."""
    n = len(beg)
    ok = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        p, e = beg[i], end[i]
        if p < 0 or e - p < 1 + min_rest or e - p > 1 + max_rest or not first[buf[p]]:
            continue
        good = True
        for j in range(p + 1, e):
            if not rest[buf[j]]:
                good = False
                break
        ok[i] = good
    return ok


@nb.njit(cache=True, nogil=True)
def _digits(buf: np.ndarray, p: int, n: int) -> int:
    v = 0
    for j in range(p, p + n):
        c = buf[j]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@nb.njit(cache=True, nogil=True)
def _instants(  # noqa: C901 (one parser)
    buf: np.ndarray, beg: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RFC 3339 instants ``YYYY-MM-DDTHH:MM:SS[.f]{Z|+hh:mm}`` as UTC epoch microseconds.

    Returns (values, ok). Only the plain cases are taken: years 1970-2200, hours 0-23,
    minutes and seconds 0-59, at most 6 fraction digits, offsets up to 14:59; anything else
    (``ok`` False) is left to the exact path, whatever pandas makes of it.
    """
    n = len(beg)
    out = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        p, e = beg[i], end[i]
        if e - p < 20 or buf[p + 4] != 45 or buf[p + 7] != 45 or buf[p + 10] != 84:
            continue
        if buf[p + 13] != 58 or buf[p + 16] != 58:
            continue
        year, month, day = _digits(buf, p, 4), _digits(buf, p + 5, 2), _digits(buf, p + 8, 2)
        hour, minute = _digits(buf, p + 11, 2), _digits(buf, p + 14, 2)
        second = _digits(buf, p + 17, 2)
        if year < 1970 or year > 2200 or month < 1 or month > 12 or day < 1:
            continue
        if hour < 0 or hour > 23 or minute < 0 or minute > 59 or second < 0 or second > 59:
            continue
        leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
        dim = 31
        if month == 2:
            dim = 29 if leap else 28
        elif month == 4 or month == 6 or month == 9 or month == 11:
            dim = 30
        if day > dim:
            continue
        q = p + 19
        frac = 0
        if q < e and buf[q] == 46:
            q += 1
            f0 = q
            while q < e and 48 <= buf[q] <= 57:
                q += 1
            nd = q - f0
            if nd < 1 or nd > 6:
                continue
            frac = _digits(buf, f0, nd)
            for _ in range(6 - nd):
                frac *= 10
        offset = 0
        if q + 1 == e and buf[q] == 90:
            pass
        elif q + 6 == e and (buf[q] == 43 or buf[q] == 45) and buf[q + 3] == 58:
            oh, om = _digits(buf, q + 1, 2), _digits(buf, q + 4, 2)
            if oh < 0 or oh > 14 or om < 0 or om > 59:
                continue
            offset = (oh * 60 + om) * 60
            if buf[q] == 45:
                offset = -offset
        else:
            continue
        # days from 1970-01-01 (proleptic Gregorian, H. Hinnant's days_from_civil)
        y = year - 1 if month <= 2 else year
        era = y // 400
        yoe = y - era * 400
        mp = month - 3 if month > 2 else month + 9
        doy = (153 * mp + 2) // 5 + day - 1
        doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
        days = era * 146097 + doe - 719468
        secs = days * 86400 + hour * 3600 + minute * 60 + second - offset
        out[i] = secs * 1_000_000 + frac
        ok[i] = True
    return out, ok


@nb.njit(cache=True, nogil=True)
def _gather_lists(
    buf: np.ndarray,
    tok_beg: np.ndarray,
    tok_end: np.ndarray,
    lst_beg: np.ndarray,
    rows: np.ndarray,
    slot: int,
    length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The number tokens of each row's list in ``slot`` (``length`` each), concatenated:
    (data, int32 offsets) of an Arrow string array, row after row."""
    n = len(rows) * length
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[0] = 0
    total = 0
    for i in range(len(rows)):
        b = lst_beg[rows[i], slot]
        for j in range(length):
            total += tok_end[b + j] - tok_beg[b + j]
            offsets[i * length + j + 1] = total
    data = np.empty(total, dtype=np.uint8)
    for i in range(len(rows)):
        b = lst_beg[rows[i], slot]
        for j in range(length):
            t = b + j
            o = offsets[i * length + j]
            data[o : o + tok_end[t] - tok_beg[t]] = buf[tok_beg[t] : tok_end[t]]
    return data, offsets


# ---------------------------------------------------------------------------- columns
def _strings(buf: np.ndarray, beg: np.ndarray, end: np.ndarray) -> pa.StringArray:
    data, offsets = _gather(buf, beg, end)
    arr = pa.Array.from_buffers(
        pa.string(), len(beg), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    assert isinstance(arr, pa.StringArray)
    return arr


def _numbers(buf: np.ndarray, beg: np.ndarray, end: np.ndarray) -> np.ndarray:
    if len(beg) == 0:
        return np.empty(0, dtype=np.float64)
    out = pc.cast(_strings(buf, beg, end), pa.float64()).to_numpy()
    return np.asarray(out, dtype=np.float64)


def _str_column(arr: pa.Array) -> pd.Series:
    """An Arrow string array as the pandas column the exact path builds from Python strs."""
    return pd.Series(arr.to_pandas())


def _member(arr: pa.Array, allowed: tuple[str, ...]) -> np.ndarray:
    return np.asarray(pc.is_in(arr, value_set=pa.array(allowed)).to_numpy(zero_copy_only=False))


def _equal(arr: pa.Array, value: str) -> np.ndarray:
    return np.asarray(pc.equal(arr, value).to_numpy(zero_copy_only=False))


def _class(chars: str) -> np.ndarray:
    table = np.zeros(256, dtype=np.bool_)
    table[list(chars.encode("ascii"))] = True
    return table


_UPPER: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGIT: Final = "0123456789"
_ALNUM: Final = _UPPER + _UPPER.lower() + _DIGIT
#: The contract's anchored patterns as (first byte's class, the rest's class, min, max
#: further bytes): ids ``^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$``, model versions
#: ``^v[0-9]{6}$``, currencies ``^[A-Z][A-Z0-9]{2,9}$`` (byte classes, so a non-ASCII byte
#: never matches, as in the regexes). The RFC 3339 pattern needs no check of its own:
#: ``_instants`` accepts only instants it matches.
Shape = tuple[np.ndarray, np.ndarray, int, int]
ID_SHAPE: Final[Shape] = (_class(_ALNUM), _class(_ALNUM + "._:-"), 0, 127)
VERSION_SHAPE: Final[Shape] = (_class("v"), _class(_DIGIT), 6, 6)
CURRENCY_SHAPE: Final[Shape] = (_class(_UPPER), _class(_UPPER + _DIGIT), 2, 9)


def _as_index(micros: np.ndarray) -> pd.DatetimeIndex:
    """Epoch microseconds as the UTC index ``pd.to_datetime(..., utc=True)`` gives."""
    return pd.DatetimeIndex(micros.view("datetime64[us]")).tz_localize("UTC")


#: One block's accepted rows of one event type, column by column (strings as Arrow arrays,
#: instants as epoch microseconds, the feature and probability blocks as 2-D arrays).
Columns = dict[str, Any]
_FEATURES: Final = "<features>"
_PROBS: Final = "<probabilities>"


def frame(pieces: list[Columns], files: list[str], lines: list[np.ndarray]) -> pd.DataFrame:
    """The rows of several blocks (each from file ``files[i]``, lines ``lines[i]``) as the
    frame the exact path builds: ``validate_decisions`` / ``validate_outcomes`` columns, then
    ``file`` and ``line``."""
    out: dict[str, Any] = {}
    blocks: list[pd.DataFrame] = []
    for key in pieces[0]:
        parts = [p[key] for p in pieces]
        if isinstance(parts[0], pa.Array):
            out[key] = _str_column(pa.concat_arrays(parts) if len(parts) > 1 else parts[0])
        elif key in ("ts", "closed_at"):
            out[key] = _as_index(np.concatenate(parts))
        elif key == _FEATURES:
            data = np.concatenate(parts)
            blocks.append(pd.DataFrame(data, columns=list(FEATURE_NAMES)))
        elif key == _PROBS:
            data = np.concatenate(parts)
            blocks.append(pd.DataFrame(data, columns=[f"p_{a}" for a in ARM_NAMES]))
        else:
            out[key] = np.concatenate(parts)
    head = pd.DataFrame(out)
    result = pd.concat([head, *blocks], axis=1) if blocks else head
    counts = [len(x) for x in lines]
    names = np.repeat(np.array(files, dtype=object), counts)
    return result.assign(file=pd.DataFrame({"f": names.tolist()})["f"], line=np.concatenate(lines))


@dataclass
class BlockResult:
    """What the fast path made of one block of lines."""

    n_lines: int
    end: int
    decisions: Columns | None
    decision_lines: np.ndarray
    outcomes: Columns | None
    outcome_lines: np.ndarray
    #: (index in the block, start, end) of every line left to the exact path
    rest: list[tuple[int, int, int]]


class _Block:
    """The scanner's arrays for one block, and column access on a subset of its lines."""

    def __init__(
        self, buf: np.ndarray, start: int, max_lines: int, max_tokens: int, ascii_only: bool
    ) -> None:
        n = max_lines
        self.buf = buf
        self.line_beg = np.zeros(n, dtype=np.int64)
        self.line_end = np.zeros(n, dtype=np.int64)
        self.taken = np.zeros(n, dtype=np.bool_)
        self.present = np.zeros(n, dtype=np.int64)
        width = _N_KEYS + len(_MODELS_SORTED)
        self.s_beg = np.full((n, width), -1, dtype=np.int64)
        self.s_end = np.full((n, width), -1, dtype=np.int64)
        self.lst_beg = np.zeros((n, len(_LISTS)), dtype=np.int64)
        self.lst_len = np.full((n, len(_LISTS)), -1, dtype=np.int64)
        cap = min(max_tokens, n * (sum(_LIST_LEN) + 8))
        self.tok_beg = np.empty(cap, dtype=np.int64)
        self.tok_end = np.empty(cap, dtype=np.int64)
        self.n, self.end, _ = _scan(
            buf,
            start,
            max_lines,
            ascii_only,
            _KEY_BYTES,
            _KEY_OFF,
            _KEY_TYPE,
            _LIST_SLOT,
            _MODEL_BYTES,
            _MODEL_OFF,
            self.line_beg,
            self.line_end,
            self.taken,
            self.present,
            self.s_beg,
            self.s_end,
            self.lst_beg,
            self.lst_len,
            self.tok_beg,
            self.tok_end,
        )

    def has(self, rows: np.ndarray, key: str) -> np.ndarray:
        return np.asarray((self.present[rows] >> _K[key]) & 1, dtype=bool)

    def text(self, rows: np.ndarray, key: str) -> pa.StringArray:
        k = _K[key]
        return _strings(self.buf, self.s_beg[rows, k], self.s_end[rows, k])

    def model_text(self, rows: np.ndarray, m: int) -> pa.StringArray:
        k = _N_KEYS + m
        return _strings(self.buf, self.s_beg[rows, k], self.s_end[rows, k])

    def shaped(self, rows: np.ndarray, key: str, shape: Shape) -> np.ndarray:
        k = _K[key]
        return _shaped(self.buf, self.s_beg[rows, k], self.s_end[rows, k], *shape)

    def model_shaped(self, rows: np.ndarray, m: int, shape: Shape) -> np.ndarray:
        k = _N_KEYS + m
        return _shaped(self.buf, self.s_beg[rows, k], self.s_end[rows, k], *shape)

    def instants(self, rows: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
        k = _K[key]
        return _instants(self.buf, self.s_beg[rows, k], self.s_end[rows, k])

    def number(self, rows: np.ndarray, key: str) -> np.ndarray:
        k = _K[key]
        return _numbers(self.buf, self.s_beg[rows, k], self.s_end[rows, k])

    def vectors(self, rows: np.ndarray, slot: int, length: int) -> np.ndarray:
        data, offsets = _gather_lists(
            self.buf, self.tok_beg, self.tok_end, self.lst_beg, rows, slot, length
        )
        text = pa.Array.from_buffers(
            pa.string(), len(rows) * length, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        vals = np.asarray(pc.cast(text, pa.float64()).to_numpy(), dtype=np.float64)
        return vals.reshape(len(rows), length)


def _decisions(blk: _Block, rows: np.ndarray) -> tuple[Columns | None, np.ndarray, np.ndarray]:
    """Typed decision columns of the rows that pass every rule; (columns, rows, refused)."""
    ok = (blk.present[rows] & _DECISION_REQUIRED_BITS) == _DECISION_REQUIRED_BITS
    ok &= (blk.present[rows] & ~_DECISION_ALLOWED_BITS) == 0
    rows, refused = rows[ok], rows[~ok]
    nf, nd = _LIST_LEN
    x_len, d_len = blk.lst_len[rows, 0], blk.lst_len[rows, 1]
    ok = ((x_len == -1) | (x_len == nf)) & ((d_len == -1) | (d_len == nd))
    m_bandit = _MODELS_SORTED.index("bandit")
    ok &= blk.s_beg[rows, _N_KEYS + m_bandit] >= 0
    rows, refused = rows[ok], np.concatenate([refused, rows[~ok]])
    if len(rows) == 0:
        return None, rows, refused
    x_len, d_len = blk.lst_len[rows, 0], blk.lst_len[rows, 1]
    event_id, bot_id = blk.text(rows, "event_id"), blk.text(rows, "bot_id")
    symbol, arm = blk.text(rows, "symbol"), blk.text(rows, "arm")
    strategy, regime = blk.text(rows, "strategy_id"), blk.text(rows, "regime")
    ok = _equal(blk.text(rows, "feature_set"), FEATURE_SET_VERSION)
    ok &= blk.shaped(rows, "event_id", ID_SHAPE) & blk.shaped(rows, "bot_id", ID_SHAPE)
    ts_all, real = blk.instants(rows, "ts")
    ok &= real
    sym_len = np.asarray(pc.utf8_length(symbol).to_numpy(zero_copy_only=False))
    ok &= (sym_len >= 1) & (sym_len <= 64)
    arm_pos = np.asarray(
        pc.fill_null(pc.index_in(arm, value_set=pa.array(ARM_NAMES)), -1).to_numpy()
    )
    ok &= arm_pos >= 0
    want = np.asarray([STRATEGY_OF_ARM[a] for a in ARM_NAMES] + [""], dtype=object)
    ok &= np.asarray(strategy.to_numpy(zero_copy_only=False), dtype=object) == want[arm_pos]
    ok &= _member(regime, REGIMES)
    prop = blk.number(rows, "propensity")
    size = blk.number(rows, "size_multiplier")
    cp = blk.number(rows, "changepoint_prob")
    ok &= (prop > 0.0) & (prop <= 1.0) & (size >= 0.1) & (size <= 2.0) & (cp >= 0.0) & (cp <= 1.0)
    has_x, has_d = x_len == nf, d_len == nd
    x = np.full((len(rows), nf), np.nan)
    dist = np.full((len(rows), nd), np.nan)
    if has_x.any():
        x[has_x] = blk.vectors(rows[has_x], 0, nf)
    if has_d.any():
        dist[has_d] = blk.vectors(rows[has_d], 1, nd)
    finite_x = np.ones(len(rows), dtype=bool)
    finite_x[has_x] = np.isfinite(x[has_x]).all(axis=1)
    ok &= finite_x
    with np.errstate(invalid="ignore"):
        in_range = ((dist >= 0.0) & (dist <= 1.0)).all(axis=1)
        sums = np.abs(dist.sum(axis=1) - 1.0) <= PROB_TOLERANCE
        entry = dist[np.arange(len(rows)), np.maximum(arm_pos, 0)]
        agrees = np.abs(entry - prop) <= PROB_TOLERANCE
    ok &= ~has_d | (in_range & sums & agrees)
    versions: list[pa.StringArray | None] = []
    for m in range(len(_MODELS_SORTED)):
        given = blk.s_beg[rows, _N_KEYS + m] >= 0
        if not given.any():
            versions.append(None)
            continue
        text = blk.model_text(rows, m)
        ok &= ~given | blk.model_shaped(rows, m, VERSION_SHAPE)
        versions.append(pa.array(text, mask=~given))
    keep = np.flatnonzero(ok)
    refused = np.concatenate([refused, rows[~ok]])
    rows = rows[keep]
    if len(rows) == 0:
        return None, rows, refused
    take = pa.array(keep)
    pieces = [
        pc.binary_join_element_wise(f'"{name}":"', v.take(take), '"', "")
        for name, v in zip(_MODELS_SORTED, versions, strict=True)
        if v is not None
    ]
    joined = pc.binary_join_element_wise(*pieces, ",", null_handling="skip")
    models = pc.binary_join_element_wise("{", joined, "}", "")
    bandit = versions[m_bandit]
    assert bandit is not None
    cols: Columns = {
        "event_id": event_id.take(take),
        "ts": ts_all[keep],
        "bot_id": bot_id.take(take),
        "symbol": symbol.take(take),
        "strategy_id": strategy.take(take),
        "arm": arm_pos[keep].astype(np.int16),
        "arm_name": arm.take(take),
        "propensity": prop[keep],
        "size_multiplier": size[keep],
        "regime": regime.take(take),
        "changepoint_prob": cp[keep],
        "models": models,
        "bandit_version": bandit.take(take),
        "has_features": has_x[keep],
        "has_action_distribution": has_d[keep],
        _FEATURES: x[keep].astype(np.float32),
        _PROBS: dist[keep],
    }
    return cols, rows, refused


def _outcomes(blk: _Block, rows: np.ndarray) -> tuple[Columns | None, np.ndarray, np.ndarray]:
    """Typed outcome columns of the rows that pass every rule; (columns, rows, refused)."""
    ok = blk.present[rows] == _OUTCOME_BITS
    rows, refused = rows[ok], rows[~ok]
    if len(rows) == 0:
        return None, rows, refused
    event_id, decision_id = blk.text(rows, "event_id"), blk.text(rows, "decision_id")
    bot_id = blk.text(rows, "bot_id")
    currency, reason = blk.text(rows, "currency"), blk.text(rows, "exit_reason")
    ok = blk.shaped(rows, "event_id", ID_SHAPE) & blk.shaped(rows, "decision_id", ID_SHAPE)
    ok &= blk.shaped(rows, "bot_id", ID_SHAPE) & blk.shaped(rows, "currency", CURRENCY_SHAPE)
    ok &= _member(reason, EXIT_REASONS)
    ret, pnl = blk.number(rows, "net_return"), blk.number(rows, "net_pnl")
    fees, hold = blk.number(rows, "fees"), blk.number(rows, "holding_bars")
    ok &= np.isfinite(ret) & np.isfinite(pnl) & (fees >= 0.0) & np.isfinite(fees)
    ok &= (hold >= 0.0) & np.isfinite(hold) & (np.floor(hold) == hold)
    closed_us, real = blk.instants(rows, "closed_at")
    ok &= real
    keep = np.flatnonzero(ok)
    refused = np.concatenate([refused, rows[~ok]])
    rows = rows[keep]
    if len(rows) == 0:
        return None, rows, refused
    take = pa.array(keep)
    cols: Columns = {
        "event_id": event_id.take(take),
        "decision_id": decision_id.take(take),
        "outcome_bot_id": bot_id.take(take),
        "closed_at": closed_us[keep],
        "net_return": ret[keep],
        "net_pnl": pnl[keep],
        "currency": currency.take(take),
        "fees": fees[keep],
        "holding_bars": hold[keep].astype(np.int64),
        "exit_reason": reason.take(take),
    }
    return cols, rows, refused


def scan_block(
    buf: np.ndarray, start: int, lines_left: int, max_tokens: int, ascii_only: bool
) -> BlockResult:
    """Scan, type and validate up to :data:`BLOCK_LINES` lines of ``buf`` from ``start``.

    ``buf`` is a decoded log body (newline-terminated lines, uint8) with ``lines_left`` lines
    from ``start``; ``max_tokens`` bounds the numbers in lists (a line past it goes the exact
    way); ``ascii_only`` makes every line with a non-ASCII byte go to the exact path (for a
    body that is not valid UTF-8). Lines are numbered from 0 within the block.
    """
    blk = _Block(buf, start, min(BLOCK_LINES, max(lines_left, 1)), max_tokens, ascii_only)
    n = blk.n
    taken = np.flatnonzero(blk.taken[:n])
    schema = blk.text(taken, "schema") if len(taken) else pa.array([], pa.string())
    is_dec = _equal(schema, DECISION_SCHEMA_ID) & blk.has(taken, "schema")
    is_out = _equal(schema, OUTCOME_SCHEMA_ID) & blk.has(taken, "schema")
    dec, dec_rows, dec_refused = _decisions(blk, taken[is_dec])
    out, out_rows, out_refused = _outcomes(blk, taken[is_out])
    accepted = np.zeros(n, dtype=bool)
    accepted[dec_rows] = True
    accepted[out_rows] = True
    rest = [(int(i), int(blk.line_beg[i]), int(blk.line_end[i])) for i in np.flatnonzero(~accepted)]
    del dec_refused, out_refused
    return BlockResult(n, blk.end, dec, dec_rows, out, out_rows, rest)
