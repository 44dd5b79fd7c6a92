"""The two signed documents, manifest and pointer: canonical bytes and strict parsing.

A document is serialised once (sorted keys, no spaces, UTF-8, no NaN) and those stored bytes
are what is signed and verified; a verifier never re-serialises before checking a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.registry.errors import (
    ManifestInvalidError,
    PathEscapeError,
    PointerInvalidError,
    VerificationError,
)

MANIFEST_SCHEMA = "edgeflow.manifest/1"
POINTER_SCHEMA = "edgeflow.pointer/2"
LEGACY_POINTER_SCHEMA = "edgeflow.pointer/1"
POINTER_PAYLOAD_TYPE = "application/vnd.edgeflow.pointer+json"
POINTER_KINDS = ("publish", "rollback", "heartbeat")
CHALLENGER_SCHEMA = "edgeflow.challenger/1"
"""The payload schema of a ``CHALLENGER`` envelope: its own, so a challenger envelope copied
over ``LATEST`` is refused by every verifier (they all require ``edgeflow.pointer/2`` there),
and a ``LATEST`` envelope copied over ``CHALLENGER`` is refused likewise."""
CHALLENGER_KINDS = ("publish", "heartbeat", "withdraw")
"""``withdraw``: a signed "no challenger" (refused or promoted), so deleting ``CHALLENGER`` or
putting an older challenger envelope back is seen by its sequence."""
LEGACY_MAX_AGE = timedelta(hours=72)  # the default envelope ttl: legacy pointers age out alike
MAX_DOC_BYTES = 1 << 20  # manifest.json
MAX_ENVELOPE_BYTES = 64 << 10  # LATEST and history entries
MAX_PAYLOAD_BYTES = 16 << 10
MAX_SIG_BYTES = 256  # .sig files
MAX_JSON_DEPTH = 32
MAX_SIGNATURES = 4
MAX_VERSION = 999_999_999_999  # 12 digits: the largest name VERSION_RE accepts
MAX_SEQUENCE = (1 << 53) - 1  # exact in every JSON implementation (C# long, JS number)
MODEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
VERSION_RE = re.compile(r"^v(\d{6,12})$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
RESERVED_NAMES = frozenset({"manifest.json", "manifest.json.sig"})


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, ``,``/``:`` separators, UTF-8, no NaN/Infinity (refused with ValueError)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_version(number: int) -> str:
    """``v000001``; refuses numbers the verifier's ``VERSION_RE`` would not accept."""
    if not 1 <= number <= MAX_VERSION:
        raise ValueError(f"version number {number} is outside 1..{MAX_VERSION}")
    return f"v{number:06d}"


def version_number(version: object) -> int | None:
    if not isinstance(version, str):
        return None
    m = VERSION_RE.fullmatch(version)
    return int(m.group(1)) if m else None


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime | None:
    """A ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` timestamp, or None when it is not one."""
    if not isinstance(value, str) or not _TS_RE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def check_model_name(model: str) -> str:
    if not isinstance(model, str) or not MODEL_RE.fullmatch(model):
        raise ValueError(
            f"invalid model name {model!r}: lowercase letters, digits, '_' or '-', "
            "starting with a letter"
        )
    return model


def check_file_path(path: object) -> str:
    """A manifest file path: relative, ``/``-separated, no ``..``, inside its version folder."""
    if not isinstance(path, str) or not path:
        raise PathEscapeError(f"manifest file path {path!r} is not a non-empty string")
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or ":" in path:
        raise PathEscapeError(f"manifest file path {path!r} is absolute or not a plain path")
    for part in parts:
        if part in ("", ".", "..") or not _SEGMENT_RE.fullmatch(part):
            raise PathEscapeError(
                f"manifest file path {path!r} leaves its version folder or has a bad segment"
            )
    if path in RESERVED_NAMES:
        raise PathEscapeError(f"manifest file path {path!r} names the manifest itself")
    return path


def _parse_doc(
    data: bytes, what: str, error: type[VerificationError], limit: int = MAX_DOC_BYTES
) -> dict[str, Any]:
    """Strict JSON object: UTF-8, finite numbers, nesting at most ``MAX_JSON_DEPTH``.

    Every way the bytes can be malformed becomes ``error`` naming ``what``; nothing else
    escapes (a ``1e400`` literal, deep nesting, a lone surrogate are all just bad input).
    """
    if len(data) > limit:
        raise error(f"{what} is {len(data)} bytes (limit {limit})")
    try:
        doc = json.loads(
            data.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise error(f"{what} is not valid UTF-8 JSON: {reason}") from None
    if not isinstance(doc, dict):
        raise error(f"{what} is not a JSON object")
    if _depth(doc) > MAX_JSON_DEPTH:
        raise error(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return doc


def _depth(obj: Any, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(obj, dict):
        return max((_depth(v, level + 1) for v in obj.values()), default=level)
    if isinstance(obj, list):
        return max((_depth(v, level + 1) for v in obj), default=level)
    return level


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} does not fit a finite double")
    return value


def _require(
    doc: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    what: str,
    error: type[VerificationError],
) -> Any:
    if name not in doc:
        raise error(f"{what}: missing field {name!r}")
    value = doc[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise error(f"{what}: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def peek_signer(data: bytes, what: str, error: type[VerificationError]) -> dict[str, Any]:
    """The untrusted document with its signer fields, read only to pick the key."""
    doc = _parse_doc(data, what, error)
    _require(doc, "key_id", str, what, error)
    _require(doc, "algorithm", str, what, error)
    if "key_check" in doc and not isinstance(doc["key_check"], str):
        raise error(f"{what}: field 'key_check' has the wrong type")
    return doc


def check_canonical(
    data: bytes, doc: Mapping[str, Any], what: str, error: type[VerificationError]
) -> None:
    try:
        canonical = canonical_json(doc)
    except (ValueError, TypeError, RecursionError):
        raise error(f"{what} cannot be serialised canonically") from None
    if canonical != data:
        raise error(f"{what} is not canonical JSON (sorted keys, no spaces, UTF-8)")


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def parse_manifest(data: bytes) -> dict[str, Any]:
    """Validate a signed manifest's structure (after its signature has been checked)."""
    what = "manifest.json"
    err = ManifestInvalidError
    doc = _parse_doc(data, what, err)
    check_canonical(data, doc, what, err)
    if doc.get("schema") != MANIFEST_SCHEMA:
        raise err(f"{what}: schema is {doc.get('schema')!r}, expected {MANIFEST_SCHEMA!r}")
    for name in ("model", "version", "created_at", "key_id", "algorithm"):
        _require(doc, name, str, what, err)
    files = _require(doc, "files", list, what, err)
    if not files:
        raise err(f"{what}: lists no files")
    seen: set[str] = set()
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise err(f"{what}: files[{i}] is not an object")
        path = check_file_path(entry.get("path"))
        if path in seen:
            raise err(f"{what}: file {path!r} listed twice")
        seen.add(path)
        sha = entry.get("sha256")
        size = entry.get("size")
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise err(f"{what}: files[{i}].sha256 is not 64 lowercase hex characters")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise err(f"{what}: files[{i}].size is not a non-negative integer")
    return doc


def manifest_files(doc: Mapping[str, Any]) -> list[FileEntry]:
    return [FileEntry(e["path"], e["sha256"], e["size"]) for e in doc["files"]]


@dataclass(frozen=True)
class Pointer:
    """The content of a verified pointer (``LATEST`` or a history entry).

    ``legacy``: the old two-file ``edgeflow.pointer/1`` form, which has no ``expires``,
    ``kind``, ``previous`` nor ``floor``.
    """

    model: str
    version: str
    sequence: int
    manifest_sha256: str
    key_id: str
    created_at: str
    expires: str | None = None
    kind: str = "publish"
    previous: str | None = None
    floor: str | None = None
    legacy: bool = False

    def expires_at(self) -> datetime | None:
        """When the pointer goes stale. A legacy pointer carries no ``expires``: it is bounded
        by age instead, ``LEGACY_MAX_AGE`` after its ``created_at``, so a genuinely signed
        pre-upgrade pointer kept by someone cannot be served to a fresh bot months later."""
        if self.legacy:
            created = self.created()
            return created + LEGACY_MAX_AGE if created is not None else None
        return parse_time(self.expires) if self.expires else None

    def created(self) -> datetime | None:
        return parse_time(self.created_at)


@dataclass(frozen=True)
class Envelope:
    """A parsed, not yet verified pointer envelope: payload bytes and the signer's entry."""

    payload: bytes
    payload_type: str
    signatures: tuple[tuple[str, str], ...]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what an envelope signature covers."""
    ptype = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)


def make_envelope(payload: bytes, key_id: str, sig_hex: str) -> bytes:
    return canonical_json(
        {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": POINTER_PAYLOAD_TYPE,
            "signatures": [{"keyid": key_id, "sig": sig_hex}],
        }
    )


def is_envelope(data: bytes) -> bool:
    """True when ``data`` claims to be an envelope (legacy pointers have no payloadType)."""
    return b'"payloadType"' in data[:MAX_ENVELOPE_BYTES]


def parse_envelope(data: bytes, what: str) -> Envelope:
    """The envelope's structure (canonical, exact fields, strict base64); not its signature."""
    err = PointerInvalidError
    doc = _parse_doc(data, what, err, MAX_ENVELOPE_BYTES)
    check_canonical(data, doc, what, err)
    if set(doc) != {"payload", "payloadType", "signatures"}:
        raise err(
            f"{what}: envelope fields are {sorted(doc)}, expected payload, payloadType, signatures"
        )
    if doc["payloadType"] != POINTER_PAYLOAD_TYPE:
        raise err(f"{what}: payloadType is not {POINTER_PAYLOAD_TYPE!r}")
    raw = doc["payload"]
    if not isinstance(raw, str) or len(raw) > 4 * MAX_PAYLOAD_BYTES // 3 + 4:
        raise err(f"{what}: payload is not a base64 string within {MAX_PAYLOAD_BYTES} bytes")
    try:
        payload = base64.b64decode(raw.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise err(f"{what}: payload is not standard base64") from None
    if base64.b64encode(payload).decode("ascii") != raw:
        raise err(f"{what}: payload base64 is not in canonical form")
    sigs = doc["signatures"]
    if not isinstance(sigs, list) or not 1 <= len(sigs) <= MAX_SIGNATURES:
        raise err(f"{what}: signatures must be a list of 1 to {MAX_SIGNATURES} entries")
    entries = []
    for i, entry in enumerate(sigs):
        if (
            not isinstance(entry, dict)
            or set(entry) != {"keyid", "sig"}
            or not isinstance(entry["keyid"], str)
            or not isinstance(entry["sig"], str)
        ):
            raise err(f"{what}: signatures[{i}] is not {{keyid, sig}} strings")
        entries.append((entry["keyid"], entry["sig"]))
    return Envelope(payload=payload, payload_type=doc["payloadType"], signatures=tuple(entries))


def parse_pointer(
    data: bytes,
    model: str,
    *,
    legacy: bool = False,
    what: str = "",
    challenger: bool = False,
) -> Pointer:
    """Validate a pointer payload (after its signature has been checked).

    ``challenger``: the payload of a ``CHALLENGER`` envelope (its own schema and kinds); a
    ``LATEST`` payload is refused there and a challenger payload everywhere else."""
    what = what or f"{model}/{'CHALLENGER' if challenger else 'LATEST'}"
    err = PointerInvalidError
    doc = _parse_doc(data, what, err, MAX_PAYLOAD_BYTES if not legacy else MAX_ENVELOPE_BYTES)
    check_canonical(data, doc, what, err)
    if challenger and legacy:
        raise err(f"{what}: a challenger pointer is always an envelope")
    schema = LEGACY_POINTER_SCHEMA if legacy else POINTER_SCHEMA
    if challenger:
        schema = CHALLENGER_SCHEMA
    if doc.get("schema") != schema:
        raise err(f"{what}: schema is {str(doc.get('schema'))[:40]!r}, expected {schema!r}")
    for name in ("model", "version", "manifest_sha256", "key_id", "created_at"):
        _require(doc, name, str, what, err)
    seq = _require(doc, "sequence", int, what, err)
    if not 1 <= seq <= MAX_SEQUENCE:
        raise err(f"{what}: sequence {seq} is outside 1..{MAX_SEQUENCE}")
    if doc["model"] != model:
        raise err(f"{what}: names model {doc['model'][:80]!r}, not {model!r}")
    if version_number(doc["version"]) is None:
        raise err(f"{what}: version {doc['version'][:40]!r} is not a version name")
    if not _HEX64.fullmatch(doc["manifest_sha256"]):
        raise err(f"{what}: manifest_sha256 is not 64 lowercase hex characters")
    created = parse_time(doc["created_at"])
    if created is None:
        raise err(f"{what}: created_at is not a YYYY-MM-DDTHH:MM:SS.ffffffZ timestamp")
    if legacy:
        return Pointer(
            model=doc["model"],
            version=doc["version"],
            sequence=seq,
            manifest_sha256=doc["manifest_sha256"],
            key_id=doc["key_id"],
            created_at=doc["created_at"],
            legacy=True,
        )
    expires, kind = _check_v2_fields(
        doc, created, what, CHALLENGER_KINDS if challenger else POINTER_KINDS
    )
    return Pointer(
        model=doc["model"],
        version=doc["version"],
        sequence=seq,
        manifest_sha256=doc["manifest_sha256"],
        key_id=doc["key_id"],
        created_at=doc["created_at"],
        expires=expires,
        kind=kind,
        previous=doc["previous"],
        floor=doc["floor"],
    )


def _check_v2_fields(
    doc: Mapping[str, Any], created: datetime, what: str, kinds: tuple[str, ...] = POINTER_KINDS
) -> tuple[str, str]:
    err = PointerInvalidError
    expires = _require(doc, "expires", str, what, err)
    expires_at = parse_time(expires)
    if expires_at is None or expires_at <= created:
        raise err(f"{what}: expires is not a timestamp after created_at")
    kind = _require(doc, "kind", str, what, err)
    if kind not in kinds:
        raise err(f"{what}: kind {kind[:40]!r} is not one of {', '.join(kinds)}")
    for name in ("previous", "floor"):
        if name not in doc:
            raise err(f"{what}: missing field {name!r}")
        if doc[name] is not None and version_number(doc[name]) is None:
            raise err(f"{what}: {name} is neither null nor a version name")
    return expires, kind


def check_finite(obj: Any, where: str = "manifest") -> None:
    """Refuse NaN/Infinity early with the field's path (JSON cannot carry them)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{where}: {obj} is not a finite number; JSON cannot carry it")
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            check_finite(v, f"{where}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            check_finite(v, f"{where}[{i}]")
