"""Reading a log file from where the last run stopped: complete gzip members, whole lines.

A bot appends to its current interval's file by writing another gzip member (``gzip`` files
may hold any number of concatenated members). Reading from a byte offset therefore means:
decode member after member; stop *before* a member whose end has not been written yet (a
truncated member at the end is left for the next run, not lost, because the offset only
advances past complete members). Plain ``.jsonl`` files advance to their last newline.

Lines are parsed as strict JSON (``orjson``: no NaN / Infinity); a line that is not UTF-8 or
not JSON becomes a :class:`BadLine` naming its line number, the rest of the file is kept.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class BadLine:
    """A line that is not an event at all (not UTF-8, not JSON)."""

    line: int
    reason: str
    raw: str


@dataclass
class Chunk:
    """What one read of a file from ``offset`` produced."""

    records: list[Any] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    consumed: int = 0
    n_lines: int = 0
    incomplete_tail: bool = False
    corrupt: str | None = None


def _decode_members(data: bytes) -> tuple[list[bytes], int, bool, str | None]:
    """Decompress whole gzip members from ``data``.

    Returns (texts, bytes consumed, whether an incomplete member was left at the end, a
    corruption message if a member could not be decoded).
    """
    texts: list[bytes] = []
    pos = 0
    while pos < len(data):
        dec = zlib.decompressobj(wbits=31)
        try:
            out = dec.decompress(data[pos:])
        except zlib.error as exc:
            return texts, pos, False, f"byte {pos}: not a gzip member ({exc})"
        if not dec.eof:
            return texts, pos, True, None
        texts.append(out)
        pos = len(data) - len(dec.unused_data)
    return texts, pos, False, None


def read_body(data: bytes, gzip_file: bool) -> tuple[Chunk, bytes]:
    """The complete lines in the new bytes of a log file, undecoded.

    Returns a :class:`Chunk` with everything but the records (bytes consumed, line count,
    incomplete tail, corruption) and the body: the lines, each ending in ``\n``.
    """
    chunk = Chunk()
    if gzip_file:
        texts, chunk.consumed, chunk.incomplete_tail, chunk.corrupt = _decode_members(data)
        body = b"".join(t if t.endswith(b"\n") or not t else t + b"\n" for t in texts)
    else:
        end = data.rfind(b"\n") + 1
        body, chunk.consumed = data[:end], end
        chunk.incomplete_tail = end < len(data)
    chunk.n_lines = body.count(b"\n")
    return chunk, body


def parse_lines(numbered: list[tuple[int, bytes]], chunk: Chunk) -> None:
    """Parse ``(line number, raw line)`` pairs into ``chunk``: a blank line is skipped, a line
    that is not UTF-8 or not JSON becomes a :class:`BadLine`, the others records."""
    loads = orjson.loads
    numbered = [(n, raw) for n, raw in numbered if raw.strip()]
    try:  # all lines at C speed when every one is valid JSON (the usual case)
        records = list(map(loads, [raw for _, raw in numbered]))
    except orjson.JSONDecodeError:
        records = None
    if records is not None:
        chunk.records.extend(records)
        chunk.lines.extend(n for n, _ in numbered)
        return
    for lineno, raw in numbered:
        try:
            chunk.records.append(loads(raw))
            chunk.lines.append(lineno)
        except orjson.JSONDecodeError as exc:
            text = raw.decode("utf-8", errors="replace")
            try:
                raw.decode("utf-8")
                reason = f"not valid JSON ({exc})"
            except UnicodeDecodeError:
                reason = "not UTF-8"
            chunk.bad.append(BadLine(lineno, reason, text[:500]))


def read_chunk(data: bytes, gzip_file: bool, first_line: int) -> Chunk:
    """Parse the new bytes of a log file.

    Parameters
    ----------
    data : the file's bytes from the watermark offset to its end.
    gzip_file : ``.jsonl.gz`` (members) or plain ``.jsonl`` (whole lines).
    first_line : number of the first line in ``data`` (1-based, counted over the file).
    """
    chunk, body = read_body(data, gzip_file)
    if body:
        raw_lines = body.split(b"\n")[:-1]
        parse_lines([(first_line + i, raw) for i, raw in enumerate(raw_lines)], chunk)
    return chunk
