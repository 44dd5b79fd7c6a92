"""The fast ingestion path stores exactly what the exact per-line path stores.

Every test ingests the same logs twice, once with ``fast_path=True`` (the default: the
compiled scanner, lines it is not sure about handed to the exact path) and once with
``fast_path=False`` (every line parsed by ``orjson`` and validated record by record), and
requires the same counts, the same stored rows (values bit for bit, dtypes, order), the same
quarantine (file, line, field, reason, raw text) and the same pending rows.
"""

from __future__ import annotations

import copy
import gzip
import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from events_simulation import SimulatedLog, corrupt_logs, encode_member, write_files
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.events.storage import FolderSource, LocalStorage
from pipelines.events.store import DATASETS, ingest_events, read_dataset, read_pending


def _contract_corpus() -> Callable[[dict[str, Any], dict[str, Any]], list[tuple[Any, str | None]]]:
    """The contract test's corpus of good and single-defect records (one source of truth)."""
    path = Path(__file__).with_name("test_events_contract.py")
    spec = importlib.util.spec_from_file_location("_events_contract_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mutations: Callable[[dict[str, Any], dict[str, Any]], list[tuple[Any, str | None]]]
    mutations = module._mutations
    return mutations


def _same_frames(a: pd.DataFrame, b: pd.DataFrame, name: str) -> None:
    assert list(a.columns) == list(b.columns), name
    assert a.dtypes.to_dict() == b.dtypes.to_dict(), name
    pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    for col in a.columns:
        if a[col].dtype.kind == "f":  # bit for bit (-0.0, NaN payloads)
            width = f"u{a[col].dtype.itemsize}"
            left, right = a[col].to_numpy().view(width), b[col].to_numpy().view(width)
            assert np.array_equal(left, right), f"{name}.{col}"


def _ingest_both(src: Path, tmp: Path, steps: list[dict[str, bytes]] | None = None) -> None:
    """Ingest ``src`` with both paths (then, per step, append bytes and ingest again)."""
    results: dict[bool, list[dict[str, Any]]] = {}
    stores: dict[bool, LocalStorage] = {}
    for fast in (True, False):
        logs = tmp / f"logs-{fast}"
        shutil.copytree(src, logs)
        stores[fast] = LocalStorage(tmp / f"events-{fast}")
        results[fast] = [ingest_events(FolderSource(logs), stores[fast], fast_path=fast).to_dict()]
        for step in steps or []:
            for name, data in step.items():
                with open(logs / name, "ab") as fh:
                    fh.write(data)
            results[fast].append(
                ingest_events(FolderSource(logs), stores[fast], fast_path=fast).to_dict()
            )
    assert results[True] == results[False]
    for name in DATASETS:
        _same_frames(read_dataset(stores[True], name), read_dataset(stores[False], name), name)
    for which, a, b in zip(
        ("pending decisions", "pending outcomes"),
        read_pending(stores[True]),
        read_pending(stores[False]),
        strict=True,
    ):
        _same_frames(a, b, which)


def _lines(records: list[Any]) -> list[bytes]:
    out = []
    for rec in records:
        try:
            out.append(orjson.dumps(rec))
        except TypeError:
            out.append(repr(rec).encode())
    return out


def test_fast_and_exact_paths_store_the_same_on_the_contract_corpus(
    sim_log: SimulatedLog, tmp_path: Path
) -> None:
    dec, out = sim_log.decisions[0], sim_log.outcomes[0]
    cases = _contract_corpus()(dec, out)
    assert len(cases) > 200
    records = []
    for i, (rec, _) in enumerate(cases):
        if isinstance(rec, dict) and isinstance(rec.get("event_id"), str):
            rec = dict(rec, event_id=f"{rec['event_id']}-{i}")  # every case kept, none a dup
        records.append(rec)
    # the corpus alone, and the corpus among good events (a file the fast path mostly takes)
    src = tmp_path / "src"
    good = _lines(sim_log.decisions[1:300] + sim_log.outcomes[1:300])
    write_files(
        {
            "a/corpus.jsonl.gz": [encode_member(_lines(records))],
            "b/mixed.jsonl": [b"".join(line + b"\n" for line in good[:250] + _lines(records))],
            "c/mixed.jsonl.gz": [encode_member(good[250:] + _lines(records[::-1]))],
        },
        src,
    )
    _ingest_both(src, tmp_path)


def _planted(dec: dict[str, Any], out: dict[str, Any]) -> list[bytes]:
    """Lines of every kind the fast path must hand over (or take exactly right)."""
    d = copy.deepcopy(dec)
    text = orjson.dumps(d)
    spaced = orjson.dumps(dict(d, event_id="spaced")).replace(b'":', b'" : ').replace(b",", b" , ")
    lines = [
        b"",  # blank
        b"   \t",  # whitespace only
        text[: len(text) // 2],  # cut JSON
        b"\xff\xfe not utf-8",
        b'{"schema": "edgeflow.decision/1", "event_id": "nan", "propensity": NaN}',
        b"[1, 2, 3]",
        b"null",
        spaced,
        b"  " + orjson.dumps(dict(d, event_id="lead-ws")) + b" \r",
        orjson.dumps(dict(d, event_id="uni", symbol="\u20acURUSD")),  # raw UTF-8
        orjson.dumps(dict(d, event_id="esc", symbol="EURUSD")).replace(
            b'"EURUSD"', b'"\\u00e9URUSD"'
        ),
        orjson.dumps(dict(d, event_id="esc2", symbol='a"b')),
        orjson.dumps(dict(d, event_id="uni-key", **{"\u00e9": 1})),
        orjson.dumps(dict(d, event_id="null-regime", regime=None)),
        orjson.dumps(dict(d, event_id="null-features", features=None, action_distribution=None)),
        orjson.dumps(
            {k: v for k, v in d.items() if k not in ("features", "action_distribution")}
            | {"event_id": "no-features"}
        ),
        orjson.dumps(dict(d, event_id="engine", engine={"p_win": 0.5, "fallbacks": []})),
        orjson.dumps(
            dict(
                d,
                event_id="engine-bot",
                engine={
                    "fallbacks": [{"model": "regime", "reason": "no-model (E1)"}],
                    "changepoint_action": None,
                    "p_win": 0.61,
                    "signal": -1,
                    "target_position": -0.85,
                    "regime_probabilities": [0.1, 0.2, 0.3, 0.4],
                    "flags": [True, False, None, [], {}, {"a": [1, {"b": "c"}]}],
                },
            )
        ),
        orjson.dumps(dict(d, event_id="engine-empty", engine={})),
        orjson.dumps(dict(d, event_id="engine-esc", engine={"reason": 'a "quoted" one'})),
        orjson.dumps(dict(d, event_id="engine-list", engine=[1, 2])),
        orjson.dumps(dict(d, event_id="engine-num", engine=5)),
        orjson.dumps(
            dict(
                d,
                event_id="engine-deep",
                engine={"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
            )
        ),
        orjson.dumps(dict(d, event_id="engine-cut", engine={"a": [1, 2]})).replace(
            b"[1,2]", b"[1,]"
        ),
        orjson.dumps(dict(d, event_id="no-bandit", models={"regime": "v000002"})),
        orjson.dumps(dict(d, event_id="no-models-at-all", models={})),
        orjson.dumps(dict(d, event_id="us-ts", ts="2026-03-02T14:00:00.5-05:30")),
        orjson.dumps(dict(d, event_id="leap", ts="2024-02-29T23:59:59Z")),
        orjson.dumps(dict(d, event_id="not-leap", ts="2023-02-29T00:00:00Z")),
        orjson.dumps(dict(d, event_id="sec60", ts="2024-01-01T00:00:60Z")),
        orjson.dumps(dict(d, event_id="far-offset", ts="2024-01-01T00:00:00+23:59")),
        orjson.dumps(dict(d, event_id="old", ts="1901-01-01T00:00:00Z")),
        orjson.dumps(dict(d, event_id="true-prop", propensity=True)),
        orjson.dumps(dict(d, event_id="int-size", size_multiplier=1)),
        orjson.dumps(dict(d, event_id="dup-key")).replace(b"{", b'{"symbol":"X",', 1),
        orjson.dumps(dict(d, event_id="neg-zero", changepoint_prob=0)).replace(
            b'"changepoint_prob":0', b'"changepoint_prob":-0'
        ),
        orjson.dumps(dict(d, event_id="neg-zero-f", changepoint_prob=-0.0)),
        orjson.dumps(dict(d, event_id="exp", changepoint_prob=1e-5)),
        orjson.dumps(dict(d, event_id="big-int", features=[12345678901234567, *d["features"][1:]])),
        orjson.dumps(dict(d, event_id="huge", features=[1e308] * 43)),
        orjson.dumps(dict(d, event_id="inf", size_multiplier=7.25)).replace(b"7.25", b"1e999"),
        orjson.dumps(dict(d, event_id="nested-extra", models={"bandit": "v000001", "x": "v1"})),
        orjson.dumps(dict(d, event_id="outcome-field", net_return=0.1)),
        orjson.dumps(dict(d, event_id="reordered"), option=orjson.OPT_SORT_KEYS),
        orjson.dumps(dict(d, event_id="two")) + orjson.dumps(dict(d, event_id="objects")),
        orjson.dumps(dict(out, event_id="o-float-hold", holding_bars=6.0)),
        orjson.dumps(dict(out, event_id="o-frac-hold", holding_bars=2.5)),
        orjson.dumps(dict(out, event_id="o-str-pnl", net_pnl="12.5")),
        orjson.dumps(dict(out, event_id="o-offset", closed_at="2026-03-02T20:00:00-14:00")),
        orjson.dumps(dict(out, event_id="o-decision-field", arm="ema_8_21")),
        orjson.dumps({k: v for k, v in out.items() if k != "fees"} | {"event_id": "o-no-fees"}),
        orjson.dumps(dict(out, event_id="o-null-fees", fees=None)),
        orjson.dumps(dict(out, event_id="o-big-hold", holding_bars=12345678901234567890)),
        orjson.dumps(dict(dec)),  # a duplicate of a real decision
        orjson.dumps(dict(out)),  # and of its outcome
    ]
    return lines


def test_fast_and_exact_paths_store_the_same_on_planted_defects(
    sim_log: SimulatedLog, tmp_path: Path
) -> None:
    dec, out = sim_log.decisions[5], sim_log.outcomes[5]
    planted = _planted(dec, out)
    bad = corrupt_logs(sim_log, n_bad=40, n_duplicates=15, n_tail=6, seed=9)
    files = {k: list(v) for k, v in bad.files.items()}
    names = sorted(files)
    # planted lines inside big members (not only in members of their own), and alone
    first = gzip.decompress(files[names[0]][0]).split(b"\n")[:-1]
    half = len(first) // 2
    files[names[0]][0] = encode_member(first[:half] + planted + first[half:])
    files[names[1]].append(encode_member(planted[::-1]))
    files["plain/extra.jsonl"] = [b"".join(line + b"\n" for line in planted)]
    src = tmp_path / "src"
    half_tail = bad.tail_member[: len(bad.tail_member) // 2]
    write_files(files, src, {bad.tail_file: half_tail})
    rest = bad.tail_member[len(half_tail) :]
    more = encode_member([orjson.dumps(dict(dec, event_id="late-" + str(i))) for i in range(3)])
    _ingest_both(src, tmp_path, [{bad.tail_file: rest}, {names[2]: more}])


def test_fast_path_takes_the_good_lines_of_a_simulated_bot(
    sim_log: SimulatedLog, tmp_path: Path
) -> None:
    """Plain good logs: everything the exact path stores, and the fast path takes them."""
    from pipelines.events import fastpath

    body = b"".join(orjson.dumps(r) + b"\n" for r in sim_log.decisions + sim_log.outcomes)
    buf = np.frombuffer(body, dtype=np.uint8)
    n = body.count(b"\n")
    res = fastpath.scan_block(buf, 0, n, body.count(b",") + 2 * n + 16, False)
    assert res.n_lines == n and res.rest == []
    src = tmp_path / "src"
    write_files({"bot/all.jsonl.gz": [gzip.compress(body)]}, src)
    _ingest_both(src, tmp_path)


def test_which_lines_the_fast_path_takes(sim_log: SimulatedLog) -> None:
    """Plain variations are taken; escapes, nulls that are not absences, engine notes,
    ``-0``, long integers, odd instants and bad lines are handed to the exact path."""
    from pipelines.events import fastpath

    lines = _planted(sim_log.decisions[5], sim_log.outcomes[5])
    body = b"".join(line + b"\n" for line in lines)
    n = body.count(b"\n")
    res = fastpath.scan_block(np.frombuffer(body, np.uint8), 0, n, 10**6, False)
    rest = {i for i, _, _ in res.rest}
    ids = [
        orjson.loads(line).get("event_id") if i not in rest else None
        for i, line in enumerate(lines)
    ]
    taken = {ids[i] for i in range(n) if i not in rest}
    assert {"spaced", "lead-ws", "uni", "reordered", "int-size", "exp", "us-ts", "leap"} <= taken
    assert {"null-features", "no-features", "neg-zero-f", "huge", "o-float-hold"} <= taken
    assert {"engine", "engine-bot", "engine-empty"} <= taken
    handed = {orjson.loads(lines[i]).get("event_id") for i in rest if _json(lines[i])}
    assert {"esc", "esc2", "null-regime", "no-bandit", "neg-zero", "big-int"} <= handed
    assert {"engine-esc", "engine-list", "engine-num", "engine-deep"} <= handed
    assert {
        "not-leap",
        "sec60",
        "far-offset",
        "old",
        "true-prop",
        "dup-key",
        "o-null-fees",
    } <= handed
    assert {"nested-extra", "outcome-field", "o-frac-hold", "o-str-pnl", "o-no-fees"} <= handed


def _json(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


# The anchored patterns the fast path once checked with Arrow's regex engine (RE2); the byte
# checks that replaced them must accept exactly the same strings.
_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_VERSION_RE = r"^v[0-9]{6}$"
_CURRENCY_RE = r"^[A-Z][A-Z0-9]{2,9}$"
_TS_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
# bytes near every class edge, a multi-byte UTF-8 character, and the separators
_ALPHABET = "aAzZ09v.:_-+/ @[`{~T\u20ac"


def _tokens(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texts laid one after another in a buffer: (buffer, starts, ends)."""
    raw = [t.encode("utf-8") for t in texts]
    ends = np.cumsum([len(r) for r in raw], dtype=np.int64)
    starts = ends - np.array([len(r) for r in raw], dtype=np.int64)
    return np.frombuffer(b"".join(raw) + b"\n", dtype=np.uint8), starts, ends


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(
        st.one_of(
            st.text(alphabet=_ALPHABET, max_size=140),
            st.from_regex(_ID_RE, fullmatch=True),
            st.from_regex(_VERSION_RE, fullmatch=True),
            st.from_regex(_CURRENCY_RE, fullmatch=True),
            st.text(alphabet="0123456789v", min_size=5, max_size=9),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_byte_shapes_accept_what_the_contract_patterns_accept(texts: list[str]) -> None:
    from pipelines.events import fastpath

    buf, beg, end = _tokens(texts)
    arr = pa.array(texts, type=pa.string())
    for shape, pattern in (
        (fastpath.ID_SHAPE, _ID_RE),
        (fastpath.VERSION_SHAPE, _VERSION_RE),
        (fastpath.CURRENCY_SHAPE, _CURRENCY_RE),
    ):
        want = np.asarray(pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False))
        got = fastpath._shaped(buf, beg, end, *shape)
        differ = [t for t, g, w in zip(texts, got, want, strict=True) if g != w]
        assert not differ, (pattern, differ)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(
        st.one_of(
            st.from_regex(_TS_RE, fullmatch=True),
            st.from_regex(
                r"^2[0-9]{3}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
                r"(\.[0-9]{1,7})?(Z|[+-][01][0-9]:[0-5][0-9])$",
                fullmatch=True,
            ),
            st.text(alphabet="0123456789-:T.Z+ ", min_size=18, max_size=32),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_instants_the_fast_path_takes_match_the_contract_pattern(texts: list[str]) -> None:
    """The fast path checks no timestamp pattern of its own: every instant its parser takes
    matches the contract's RFC 3339 pattern (the others go to the exact path)."""
    from pipelines.events import fastpath

    buf, beg, end = _tokens(texts)
    _, taken = fastpath._instants(buf, beg, end)
    arr = pa.array(texts, type=pa.string())
    matches = np.asarray(pc.match_substring_regex(arr, _TS_RE).to_numpy(zero_copy_only=False))
    wrong = [t for t, a, m in zip(texts, taken, matches, strict=True) if a and not m]
    assert not wrong, wrong
    plain = ["2026-12-07T09:33:37Z", "2026-12-07T09:33:37.123456+01:00", "2024-02-29T23:59:59Z"]
    buf, beg, end = _tokens(plain)
    assert fastpath._instants(buf, beg, end)[1].all()
