"""The event store: incremental, idempotent ingestion of the bot's logs into Parquet.

Layout under a :class:`~pipelines.events.storage.StateStorage` root (a folder such as
``<workdir>/data/events`` beside the bars, or an S3 prefix)::

    _state.json                        the commit record, written last
    decisions/part-000001.parquet      valid, de-duplicated decisions (one part per ingest)
    outcomes/part-000001.parquet       valid, de-duplicated outcomes
    joined/part-000001.parquet         decisions joined to their outcome (the training rows)
    quarantine/part-000001.parquet     refused lines: file, line, field, reason, raw text
    seen/part-000001.parquet           event ids seen (kind, event_id), for de-duplication
    pending/decisions-000001.parquet   decisions still waiting for an outcome
    pending/outcomes-000001.parquet    outcomes whose decision has not arrived yet

``_state.json`` holds the per-file watermark (bytes and lines consumed), the committed part
keys and the counts. An ingest writes its parts first and the record last; a crash before
that leaves parts nobody lists, which the next ingest deletes. So re-running an ingest adds
nothing twice, and the sources are only ever read.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.events.contract import (
    event_kind,
    non_event_problem,
    validate_decisions,
    validate_outcomes,
    validate_reference,
)
from pipelines.events.join import id_array, join_events
from pipelines.events.reader import Chunk, parse_lines, read_body, read_chunk
from pipelines.events.storage import EventSource, StateStorage

if TYPE_CHECKING:
    from pipelines.events.fastpath import Columns


def _fastpath() -> Any:
    """The compiled scanner, imported on first ingest: importing the training flow must not
    load numba (only the featurize child does; tests/features/test_features_isolated.py)."""
    from pipelines.events import fastpath

    return fastpath


logger = logging.getLogger(__name__)

STATE_KEY: Final = "_state.json"
_FORMAT: Final = 1
DATASETS: Final[tuple[str, ...]] = ("decisions", "outcomes", "joined", "quarantine", "seen")
QUARANTINE_COLUMNS: Final[tuple[str, ...]] = (
    "file",
    "line",
    "kind",
    "event_id",
    "field",
    "reason",
    "raw",
)
#: Pseudo-fields of quarantine rows that are not about one event field.
LINE_FIELD: Final = "<line>"
FILE_FIELD: Final = "<file>"


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did."""

    files_read: int = 0
    bytes_read: int = 0
    lines_read: int = 0
    decisions_added: int = 0
    outcomes_added: int = 0
    joined_added: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantined_by_field: dict[str, int] = field(default_factory=dict)
    pending_decisions: int = 0
    pending_outcomes: int = 0
    incomplete_tails: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON types only), for logs and run summaries."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def _empty_state() -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "seq": 0,
        "files": {},
        "parts": {d: [] for d in DATASETS},
        "pending": {"decisions": None, "outcomes": None},
        "pending_counts": {"decisions": 0, "outcomes": 0},
        "counts": {"decisions": 0, "outcomes": 0, "joined": 0, "quarantined": 0, "duplicates": 0},
    }


def load_state(storage: StateStorage) -> dict[str, Any]:
    """The committed state record (an empty one for a new store)."""
    raw = storage.read(STATE_KEY)
    if raw is None:
        return _empty_state()
    state: dict[str, Any] = json.loads(raw)
    if state.get("format") != _FORMAT:
        raise ValueError(
            f"{storage.describe()}/{STATE_KEY}: unsupported format {state.get('format')!r}"
        )
    return state


def _to_parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # dictionary-encode the columns that repeat (ids, names, flags); the float columns
    # (features, probabilities, returns) almost never do, and trying costs most of the write
    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    pq.write_table(table, buf, use_dictionary=dictionary)
    return buf.getvalue()


def _read_parts(
    storage: StateStorage, keys: list[str], columns: list[str] | None = None
) -> pd.DataFrame | None:
    tables = []
    for key in keys:
        raw = storage.read(key)
        if raw is None:
            raise FileNotFoundError(f"{storage.describe()}/{key}: committed part is missing")
        tables.append(pq.read_table(io.BytesIO(raw), columns=columns))
    if not tables:
        return None
    # parts written by different ingests may type one column differently (string vs
    # large_string from the fast and the exact path, us vs ns timestamps, null vs string
    # before a first model version): widen to the common type, as pandas reads them alike
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def read_dataset(storage: StateStorage, name: str) -> pd.DataFrame:
    """One committed dataset (``decisions``, ``outcomes``, ``joined``, ``quarantine``).

    An empty frame when nothing was committed yet.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; one of {DATASETS}")
    frame = _read_parts(storage, load_state(storage)["parts"][name])
    return frame if frame is not None else pd.DataFrame()


def read_pending(storage: StateStorage) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(decisions waiting for an outcome, outcomes waiting for a decision)."""
    pending = load_state(storage)["pending"]
    out = []
    for kind in ("decisions", "outcomes"):
        frame = _read_parts(storage, [pending[kind]]) if pending[kind] else None
        out.append(frame if frame is not None else pd.DataFrame())
    return out[0], out[1]


def _remove_orphans(storage: StateStorage, state: dict[str, Any]) -> None:
    """Delete parts a crashed ingest wrote but never committed."""
    keep = {k for keys in state["parts"].values() for k in keys}
    keep |= {k for k in state["pending"].values() if k}
    for prefix in (*DATASETS, "pending"):
        for key in storage.list(prefix + "/"):
            if key not in keep:
                logger.info("events store: removing uncommitted %s", key)
                storage.delete(key)


def _quarantine_row(
    file: str, line: int, kind: str, event_id: str, fld: str, reason: str, raw: str
) -> dict[str, Any]:
    return {
        "file": file,
        "line": line,
        "kind": kind,
        "event_id": event_id,
        "field": fld,
        "reason": reason,
        "raw": raw[:500],
    }


def _record_text(record: Any) -> str:
    try:
        return orjson.dumps(record).decode("utf-8")
    except TypeError:
        return repr(record)


@dataclass
class _Batch:
    decisions: list[pd.DataFrame] = field(default_factory=list)
    outcomes: list[pd.DataFrame] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)


def _validate_records(
    name: str, records: list[Any], lines: list[int], batch: _Batch, reference: bool
) -> dict[str, pd.DataFrame]:
    """Split one file's parsed records by event type and validate them: problems go to the
    quarantine, the valid rows come back as one frame per event type present."""
    frames: dict[str, pd.DataFrame] = {}
    by_kind: dict[str, list[int]] = {"decision": [], "outcome": []}
    for i, rec in enumerate(records):
        kind = event_kind(rec)
        if kind is None:
            fld, reason = non_event_problem(rec)
            eid = rec.get("event_id") if isinstance(rec, dict) else None
            batch.quarantine.append(
                _quarantine_row(
                    name,
                    lines[i],
                    "",
                    eid if isinstance(eid, str) else "",
                    fld,
                    reason,
                    _record_text(rec),
                )
            )
        else:
            by_kind[kind].append(i)
    for kind, idx in by_kind.items():
        if not idx:
            continue
        recs = [records[i] for i in idx]
        if reference:
            verdicts = [validate_reference(r) for r in recs]
            keep = [j for j, v in enumerate(verdicts) if v is None]
            for j, v in enumerate(verdicts):
                if v is not None:
                    eid = recs[j].get("event_id")
                    batch.quarantine.append(
                        _quarantine_row(
                            name,
                            lines[idx[j]],
                            kind,
                            eid if isinstance(eid, str) else "",
                            v[0],
                            v[1],
                            _record_text(recs[j]),
                        )
                    )
            recs, idx = [recs[j] for j in keep], [idx[j] for j in keep]
        valid = (validate_decisions if kind == "decision" else validate_outcomes)(recs)
        for p in valid.problems:
            eid = recs[p.index].get("event_id")
            batch.quarantine.append(
                _quarantine_row(
                    name,
                    lines[idx[p.index]],
                    kind,
                    eid if isinstance(eid, str) else "",
                    p.field,
                    p.reason,
                    _record_text(recs[p.index]),
                )
            )
        frames[kind] = valid.frame.assign(file=name, line=[lines[idx[r]] for r in valid.rows])
    return frames


def _validate_file(
    name: str, records: list[Any], lines: list[int], batch: _Batch, reference: bool
) -> None:
    """Split one file's parsed records by event type, validate, collect rows or problems."""
    for kind, frame in _validate_records(name, records, lines, batch, reference).items():
        (batch.decisions if kind == "decision" else batch.outcomes).append(frame)


@dataclass
class _FastRows:
    """Rows the fast path took, block by block, and the exact path's frames, file by file;
    assembled once per ingest into the frame the exact path alone would have built."""

    pieces: dict[str, list[Columns]] = field(
        default_factory=lambda: {"decision": [], "outcome": []}
    )
    files: dict[str, list[str]] = field(default_factory=lambda: {"decision": [], "outcome": []})
    lines: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {"decision": [], "outcome": []}
    )
    seqs: dict[str, list[int]] = field(default_factory=lambda: {"decision": [], "outcome": []})
    exact: dict[str, list[tuple[int, pd.DataFrame]]] = field(
        default_factory=lambda: {"decision": [], "outcome": []}
    )

    def assemble(self, kind: str) -> pd.DataFrame | None:
        fast = None
        if self.pieces[kind]:
            fast = _fastpath().frame(self.pieces[kind], self.files[kind], self.lines[kind])
        with_fast = set(self.seqs[kind])
        fast_types: dict[str, Any] | None = None
        exact: list[tuple[int, pd.DataFrame]] = []
        units = []
        for seq, frame in self.exact[kind]:
            if fast is not None and seq in with_fast:
                # one batch of this file's rows would have inferred these columns over the
                # fast rows too: a column that is all None among the exact rows is a string
                # column with missing values, as the fast rows make it
                # (dtypes read once: a frame's ``[col]`` builds a Series, per column per file)
                fast_types = fast.dtypes.to_dict() if fast_types is None else fast_types
                recast = {
                    col: frame[col].astype(fast_types[col])
                    for col, dtype in frame.dtypes.items()
                    if dtype == _OBJECT and fast_types[col] != _OBJECT
                }
                if recast:
                    frame = frame.assign(**recast)
                units.append(frame[_TS_COLUMN[kind]].dtype)
            if len(frame):
                exact.append((seq, frame))
                units.append(frame[_TS_COLUMN[kind]].dtype)
        if fast is None:
            return _concat([f for _, f in exact])
        if not exact:
            merged = fast
        else:
            counts = [len(x) for x in self.lines[kind]]
            keys = [np.repeat(np.array(self.seqs[kind], dtype=np.int64), counts)]
            keys += [np.full(len(f), seq, dtype=np.int64) for seq, f in exact]
            merged = pd.concat([fast, *(f for _, f in exact)], ignore_index=True)
            order = np.lexsort((merged["line"].to_numpy(), np.concatenate(keys)))
            merged = merged.iloc[order].reset_index(drop=True)
        col = _TS_COLUMN[kind]
        finest = max([merged[col].dtype, *units], key=lambda d: _UNIT_RANK[d.unit])
        if finest != merged[col].dtype:
            merged = merged.assign(**{col: merged[col].astype(finest)})
        return merged


_TS_COLUMN: Final = {"decision": "ts", "outcome": "closed_at"}
_OBJECT: Final = np.dtype(object)
_UNIT_RANK: Final = {"s": 0, "ms": 1, "us": 2, "ns": 3}


def _read_fast(
    name: str, seq: int, body: bytes, first_line: int, chunk: Chunk, rows: _FastRows
) -> None:
    """The fast path over one file's new lines: the rows it took go to ``rows``; the lines
    it did not take are parsed the exact way into ``chunk`` (records and bad lines)."""
    buf = np.frombuffer(body, dtype=np.uint8)
    ascii_only = not body.isascii()
    if ascii_only:
        try:
            body.decode("utf-8")
            ascii_only = False
        except UnicodeDecodeError:
            pass
    rest: list[tuple[int, bytes]] = []
    start, base = 0, first_line
    max_tokens = chunk.n_lines * 64 + 16
    while start < len(body):
        left = first_line + chunk.n_lines - base
        res = _fastpath().scan_block(buf, start, left, max_tokens, ascii_only)
        for kind, cols, at in (
            ("decision", res.decisions, res.decision_lines),
            ("outcome", res.outcomes, res.outcome_lines),
        ):
            if cols is not None:
                rows.pieces[kind].append(cols)
                rows.files[kind].append(name)
                rows.lines[kind].append(base + at.astype(np.int64))
                rows.seqs[kind].append(seq)
        rest += [(base + i, body[b:e]) for i, b, e in res.rest]
        start, base = res.end, base + res.n_lines
    parse_lines(rest, chunk)


def _validate_fast(name: str, seq: int, chunk: Chunk, rows: _FastRows, batch: _Batch) -> None:
    """Validate the records the fast path left the exact way (problems to the quarantine)."""
    for kind, frame in _validate_records(name, chunk.records, chunk.lines, batch, False).items():
        rows.exact[kind].append((seq, frame))


def _seen_ids(storage: StateStorage, state: dict[str, Any]) -> dict[str, pa.Array]:
    """Event ids seen by earlier ingests, per kind, as Arrow arrays (no Python sets: a store
    of millions of events is checked in C++ by ``pyarrow.compute.is_in``)."""
    tables = []
    for key in state["parts"]["seen"]:
        raw = storage.read(key)
        if raw is None:
            raise FileNotFoundError(f"{storage.describe()}/{key}: committed part is missing")
        tables.append(pq.read_table(io.BytesIO(raw)))
    out: dict[str, pa.Array] = {}
    table = pa.concat_tables(tables, promote_options="permissive") if tables else None
    for kind in ("decision", "outcome", "closed"):
        if table is None:
            out[kind] = pa.array([], type=pa.string())
        else:
            ids = table.filter(pc.equal(table["kind"], kind))["event_id"]
            out[kind] = ids.combine_chunks().cast(pa.string())
    return out


def _is_in(values: pd.Series, seen: pa.Array) -> np.ndarray:
    """Boolean mask: which of ``values`` are in ``seen``."""
    if len(seen) == 0:
        return np.zeros(len(values), dtype=bool)
    if values.dtype == object:
        values = values.astype(str)  # as before: every value compared as its text
    mask = pc.is_in(id_array(values), value_set=seen.cast(pa.large_string()))
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _dedup(frame: pd.DataFrame | None, seen: pa.Array) -> tuple[pd.DataFrame | None, int]:
    """Drop rows whose ``event_id`` was seen before or repeats earlier in the frame."""
    if frame is None or frame.empty:
        return None, 0
    drop = _is_in(frame["event_id"], seen) | frame["event_id"].duplicated(keep="first").to_numpy()
    kept = frame[~drop].reset_index(drop=True)
    return (kept if len(kept) else None), int(drop.sum())


@dataclass
class _ReadStats:
    files_read: int = 0
    bytes_read: int = 0
    lines_read: int = 0
    tails: int = 0

    def result(self, **counts: Any) -> IngestResult:
        return IngestResult(
            files_read=self.files_read,
            bytes_read=self.bytes_read,
            lines_read=self.lines_read,
            incomplete_tails=self.tails,
            **counts,
        )


def _read_new(
    source: EventSource,
    files: dict[str, Any],
    batch: _Batch,
    reference: bool,
    fast_path: bool = True,
) -> tuple[dict[str, Any], _ReadStats]:
    """Read every file of ``source`` from its watermark; returns the new watermarks."""
    new_files = dict(files)
    stats = _ReadStats()
    fast = None if reference or not fast_path else _FastRows()
    for sf in source.list_files():
        wm = dict(new_files.get(sf.name, {"offset": 0, "lines": 0, "size": 0}))
        if wm.get("corrupt") or sf.size == wm["offset"]:
            continue
        if sf.size < wm["offset"]:
            if wm.get("shrunk_to") != sf.size:
                reason = f"file shrank from {wm['offset']} to {sf.size} bytes; not re-read"
                batch.quarantine.append(_quarantine_row(sf.name, 0, "", "", FILE_FIELD, reason, ""))
                wm["shrunk_to"] = sf.size
                new_files[sf.name] = wm
            continue
        data = source.read_from(sf.name, wm["offset"])
        seq = stats.files_read
        if fast is None:
            chunk = read_chunk(data, sf.name.endswith(".gz"), wm["lines"] + 1)
        else:
            chunk, body = read_body(data, sf.name.endswith(".gz"))
            _read_fast(sf.name, seq, body, wm["lines"] + 1, chunk, fast)
        stats.files_read += 1
        stats.bytes_read += chunk.consumed
        stats.lines_read += chunk.n_lines
        stats.tails += int(chunk.incomplete_tail)
        for bad in chunk.bad:
            batch.quarantine.append(
                _quarantine_row(sf.name, bad.line, "", "", LINE_FIELD, bad.reason, bad.raw)
            )
        if chunk.corrupt:
            line = wm["lines"] + chunk.n_lines + 1
            reason = f"{chunk.corrupt}; the rest of the file is not read"
            batch.quarantine.append(_quarantine_row(sf.name, line, "", "", FILE_FIELD, reason, ""))
            wm["corrupt"] = True
        if fast is None:
            _validate_file(sf.name, chunk.records, chunk.lines, batch, reference)
        else:
            _validate_fast(sf.name, seq, chunk, fast, batch)
        wm["offset"] += chunk.consumed
        wm["lines"] += chunk.n_lines
        wm["size"] = sf.size
        new_files[sf.name] = wm
    if fast is not None:
        for kind, frames in (("decision", batch.decisions), ("outcome", batch.outcomes)):
            frame = fast.assemble(kind)
            if frame is not None:
                frames.append(frame)
    return new_files, stats


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    kept = [f for f in frames if f is not None and not f.empty]
    return pd.concat(kept, ignore_index=True) if kept else None


@dataclass
class _Plan:
    """What one ingest commits."""

    writes: dict[str, pd.DataFrame] = field(default_factory=dict)
    pending: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    joined: int = 0
    duplicates: int = 0


def _plan(storage: StateStorage, state: dict[str, Any], batch: _Batch) -> _Plan:
    """De-duplicate the new events, join them with what was pending, lay out the writes."""
    plan = _Plan()
    seen = _seen_ids(storage, state)
    new_d, dup_d = _dedup(_concat(list(batch.decisions)), seen["decision"])
    new_o, dup_o = _dedup(_concat(list(batch.outcomes)), seen["outcome"])
    plan.duplicates = dup_d + dup_o
    pend_d, pend_o = read_pending(storage)
    waiting_d, waiting_o = _concat([pend_d, new_d]), _concat([pend_o, new_o])
    plan.pending = {"decisions": waiting_d, "outcomes": waiting_o}
    closed: list[str] = []
    if waiting_d is not None and waiting_o is not None:
        closed_before = _is_in(waiting_o["decision_id"], seen["closed"])
        res = join_events(waiting_d, waiting_o, closed_before)
        plan.joined = len(res.joined)
        if plan.joined:
            plan.writes["joined"] = res.joined
            closed = res.joined["event_id"].tolist()
        plan.pending = {"decisions": res.pending_decisions, "outcomes": res.pending_outcomes}
        for row in res.refused_outcomes.itertuples(index=False):
            batch.quarantine.append(
                _quarantine_row(
                    str(row.file),
                    int(row.line),
                    "outcome",
                    str(row.event_id),
                    "decision_id",
                    str(row.reason),
                    "",
                )
            )
    if new_d is not None:
        plan.writes["decisions"] = new_d
    if new_o is not None:
        plan.writes["outcomes"] = new_o
    if batch.quarantine:
        plan.writes["quarantine"] = pd.DataFrame(batch.quarantine, columns=list(QUARANTINE_COLUMNS))
    seen_parts = [
        (kind, ids)
        for kind, ids in (
            ("decision", [] if new_d is None else new_d["event_id"].tolist()),
            ("outcome", [] if new_o is None else new_o["event_id"].tolist()),
            ("closed", closed),
        )
        if len(ids)
    ]
    if seen_parts:
        plan.writes["seen"] = pd.DataFrame(
            {
                "kind": [k for k, ids in seen_parts for _ in range(len(ids))],
                "event_id": [i for _, ids in seen_parts for i in ids],
            }
        )
    return plan


def _commit(
    storage: StateStorage, state: dict[str, Any], files: dict[str, Any], plan: _Plan
) -> None:
    """Write the parts and pending files, then the state record; drop replaced pending files."""
    seq = int(state["seq"]) + 1
    new_state = json.loads(json.dumps(state))
    new_state["seq"] = seq
    new_state["files"] = files
    for name, frame in plan.writes.items():
        key = f"{name}/part-{seq:06d}.parquet"
        storage.write(key, _to_parquet(frame))
        new_state["parts"][name].append(key)
    for kind, pending in plan.pending.items():
        if pending is None or pending.empty:
            new_state["pending"][kind] = None
        else:
            key = f"pending/{kind}-{seq:06d}.parquet"
            storage.write(key, _to_parquet(pending))
            new_state["pending"][kind] = key
    new_state["pending_counts"] = {
        kind: 0 if frame is None else len(frame) for kind, frame in plan.pending.items()
    }
    counts = new_state["counts"]
    for name in ("decisions", "outcomes", "quarantine"):
        counts["quarantined" if name == "quarantine" else name] += len(plan.writes.get(name, ()))
    counts["joined"] += plan.joined
    counts["duplicates"] += plan.duplicates
    storage.write(STATE_KEY, json.dumps(new_state, sort_keys=True, indent=1).encode("utf-8"))
    for key in state["pending"].values():
        if key and key not in new_state["pending"].values():
            storage.delete(key)


def ingest_events(
    source: EventSource,
    storage: StateStorage,
    reference_validator: bool = False,
    fast_path: bool = True,
) -> IngestResult:
    """Read what is new in ``source`` into the event store at ``storage``.

    Every log file is read from its watermark: a file seen before is read from its last
    offset (new gzip members or lines only), a truncated member at its end is left for the
    next run. Lines are validated (``reference_validator=True`` runs ``jsonschema`` on each
    record first; slow, for checking the contract); a bad line is quarantined with file,
    line, field and reason, the rest are kept. Duplicates are dropped by event id; outcomes
    are joined to their decisions, and both sides wait in ``pending`` for the other.
    Re-running with nothing new adds nothing (and writes nothing).

    ``fast_path`` (the default) scans the lines without building Python objects
    (``pipelines.events.fastpath``) and hands every line it is not sure about to the exact
    path; ``False`` parses and validates every line the exact way. Both store the same.
    """
    state = load_state(storage)
    _remove_orphans(storage, state)
    batch = _Batch()
    files, stats = _read_new(source, state["files"], batch, reference_validator, fast_path)
    if not (batch.decisions or batch.outcomes or batch.quarantine) and files == state["files"]:
        waiting = state.get("pending_counts", {})
        return stats.result(
            pending_decisions=int(waiting.get("decisions", 0)),
            pending_outcomes=int(waiting.get("outcomes", 0)),
        )
    plan = _plan(storage, state, batch)
    _commit(storage, state, files, plan)
    pending = {k: 0 if v is None else len(v) for k, v in plan.pending.items()}
    result = stats.result(
        decisions_added=len(plan.writes.get("decisions", ())),
        outcomes_added=len(plan.writes.get("outcomes", ())),
        joined_added=plan.joined,
        duplicates=plan.duplicates,
        quarantined=len(batch.quarantine),
        quarantined_by_field=dict(sorted(Counter(q["field"] for q in batch.quarantine).items())),
        pending_decisions=pending["decisions"],
        pending_outcomes=pending["outcomes"],
    )
    logger.info("events ingest into %s: %s", storage.describe(), result.to_dict())
    return result


def joined_count(storage: StateStorage) -> int:
    """Joined decisions committed so far (from the state record; reads no Parquet), to
    compare with ``EventsConfig.min_joined`` before training on logged feedback."""
    return int(load_state(storage)["counts"]["joined"])
