"""The two signed documents, manifest and pointer: canonical bytes and strict parsing.

A document is serialised once (sorted keys, no spaces, UTF-8, no NaN) and those stored bytes
are what is signed and verified; a verifier never re-serialises before checking a signature.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.registry.errors import (
    ManifestInvalidError,
    PathEscapeError,
    PointerInvalidError,
    VerificationError,
)

MANIFEST_SCHEMA = "edgeflow.manifest/1"
POINTER_SCHEMA = "edgeflow.pointer/1"
MAX_DOC_BYTES = 1 << 20
MAX_SEQUENCE = (1 << 53) - 1  # exact in every JSON implementation (C# long, JS number)
MODEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
VERSION_RE = re.compile(r"^v(\d{6,12})$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
RESERVED_NAMES = frozenset({"manifest.json", "manifest.json.sig"})


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, ``,``/``:`` separators, UTF-8, no NaN/Infinity (refused with ValueError)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_version(number: int) -> str:
    return f"v{number:06d}"


def version_number(version: str) -> int | None:
    m = VERSION_RE.match(version)
    return int(m.group(1)) if m else None


def check_model_name(model: str) -> str:
    if not isinstance(model, str) or not MODEL_RE.match(model):
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
        if part in ("", ".", "..") or not _SEGMENT_RE.match(part):
            raise PathEscapeError(
                f"manifest file path {path!r} leaves its version folder or has a bad segment"
            )
    if path in RESERVED_NAMES:
        raise PathEscapeError(f"manifest file path {path!r} names the manifest itself")
    return path


def _parse_doc(data: bytes, what: str, error: type[VerificationError]) -> dict[str, Any]:
    if len(data) > MAX_DOC_BYTES:
        raise error(f"{what} is {len(data)} bytes (limit {MAX_DOC_BYTES})")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{what} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise error(f"{what} is not a JSON object")
    return doc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


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
    if canonical_json(doc) != data:
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
        if not isinstance(sha, str) or not _HEX64.match(sha):
            raise err(f"{what}: files[{i}].sha256 is not 64 lowercase hex characters")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise err(f"{what}: files[{i}].size is not a non-negative integer")
    return doc


def manifest_files(doc: Mapping[str, Any]) -> list[FileEntry]:
    return [FileEntry(e["path"], e["sha256"], e["size"]) for e in doc["files"]]


@dataclass(frozen=True)
class Pointer:
    """The content of a verified ``LATEST``."""

    model: str
    version: str
    sequence: int
    manifest_sha256: str
    key_id: str
    created_at: str


def parse_pointer(data: bytes, model: str) -> Pointer:
    what = f"{model}/LATEST"
    err = PointerInvalidError
    doc = _parse_doc(data, what, err)
    check_canonical(data, doc, what, err)
    if doc.get("schema") != POINTER_SCHEMA:
        raise err(f"{what}: schema is {doc.get('schema')!r}, expected {POINTER_SCHEMA!r}")
    for name in ("model", "version", "manifest_sha256", "key_id", "created_at"):
        _require(doc, name, str, what, err)
    seq = _require(doc, "sequence", int, what, err)
    if not 1 <= seq <= MAX_SEQUENCE:
        raise err(f"{what}: sequence {seq} is outside 1..{MAX_SEQUENCE}")
    if doc["model"] != model:
        raise err(f"{what}: names model {doc['model']!r}, not {model!r}")
    if version_number(doc["version"]) is None:
        raise err(f"{what}: version {doc['version']!r} is not a version name")
    if not _HEX64.match(doc["manifest_sha256"]):
        raise err(f"{what}: manifest_sha256 is not 64 lowercase hex characters")
    return Pointer(
        model=doc["model"],
        version=doc["version"],
        sequence=seq,
        manifest_sha256=doc["manifest_sha256"],
        key_id=doc["key_id"],
        created_at=doc["created_at"],
    )


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
