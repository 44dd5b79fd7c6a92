"""The verification algorithm (specified in ``docs/manifest.md``) and store listings.

Order matters: a signature is checked before anything in the document is believed, the
pointer names a manifest by hash, the manifest names each file by hash and size, and the
bytes that were hashed are the bytes handed to the caller (no second read, no TOCTOU).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.registry.errors import (
    FileHashMismatchError,
    FileMissingError,
    FileSizeMismatchError,
    ManifestInvalidError,
    ObjectNotFoundError,
    PointerInvalidError,
    PointerMismatchError,
    PointerMissingError,
    ReplayError,
    SignatureMissingError,
    VerificationError,
    VersionMismatchError,
)
from pipelines.registry.manifest import (
    MODEL_RE,
    FileEntry,
    Pointer,
    check_model_name,
    manifest_files,
    parse_manifest,
    parse_pointer,
    peek_signer,
    sha256_hex,
    version_number,
)
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store

log = logging.getLogger(__name__)

POINTER = "LATEST"
MANIFEST = "manifest.json"
SIG = ".sig"
HISTORY = "pointers"


def pointer_key(model: str) -> str:
    return f"{model}/{POINTER}"


def version_prefix(model: str, version: str) -> str:
    return f"{model}/{version}"


@dataclass(frozen=True)
class VerifiedVersion:
    """A version whose signature, manifest and every file checked out.

    ``files`` holds the exact bytes that were verified; load from these, not from the store.
    ``sequence`` is the pointer's sequence when verified through ``LATEST``, else ``None``.
    """

    model: str
    version: str
    manifest: Mapping[str, Any]
    manifest_bytes: bytes = field(repr=False)
    manifest_sig: bytes = field(repr=False)
    manifest_sha256: str
    files: Mapping[str, bytes] = field(repr=False)
    sequence: int | None = None
    pointer_bytes: bytes | None = field(default=None, repr=False)
    pointer_sig: bytes | None = field(default=None, repr=False)

    @property
    def entries(self) -> list[FileEntry]:
        return manifest_files(self.manifest)

    def primary_file(self, suffix: str = ".onnx") -> str:
        """``model.onnx`` if listed, else the only file ending in ``suffix``."""
        names = [e.path for e in self.entries]
        if f"model{suffix}" in names:
            return f"model{suffix}"
        matches = [n for n in names if n.endswith(suffix)]
        if len(matches) != 1:
            raise ManifestInvalidError(
                f"{self.model}/{self.version}: cannot pick the model file among {names}"
            )
        return matches[0]


def _read_signed(store: Store, key: str, missing: type[Exception]) -> tuple[bytes, bytes]:
    try:
        data = store.read(key)
    except ObjectNotFoundError:
        raise missing(f"{store.uri}/{key} is missing") from None
    try:
        sig = store.read(key + SIG)
    except ObjectNotFoundError:
        raise SignatureMissingError(f"{store.uri}/{key}{SIG} is missing") from None
    return data, sig


def _check_signature(
    data: bytes, sig: bytes, what: str, invalid: type[VerificationError], keyring: KeyRing
) -> None:
    """Verify a signed document with the key its header names (never its claimed algorithm
    alone: the key ring decides what the key can verify)."""
    doc = peek_signer(data, what, invalid)
    keyring.verify(
        data,
        sig,
        key_id=doc["key_id"],
        algorithm=doc["algorithm"],
        key_check=doc.get("key_check"),
        what=what,
    )


def verify_pointer_bytes(data: bytes, sig: bytes, model: str, keyring: KeyRing) -> Pointer:
    """Check a pointer document against its signature, then its fields."""
    _check_signature(data, sig, f"{model}/{POINTER}", PointerInvalidError, keyring)
    return parse_pointer(data, model)


def read_pointer(store: Store, model: str, keyring: KeyRing) -> tuple[Pointer, bytes, bytes]:
    """The verified ``LATEST`` of ``model`` with its raw bytes and signature."""
    data, sig = _read_signed(store, pointer_key(model), PointerMissingError)
    return verify_pointer_bytes(data, sig, model, keyring), data, sig


def verify_version(
    store: Store,
    model: str,
    version: str,
    keyring: KeyRing,
    *,
    expected_manifest_sha256: str | None = None,
) -> VerifiedVersion:
    """Verify one version folder: manifest signature, identity, then every file."""
    check_model_name(model)
    if version_number(version) is None:
        raise VersionMismatchError(f"{version!r} is not a version name (v000001 style)")
    prefix = version_prefix(model, version)
    what = f"{prefix}/{MANIFEST}"
    data, sig = _read_signed(store, f"{prefix}/{MANIFEST}", FileMissingError)
    _check_signature(data, sig, what, ManifestInvalidError, keyring)
    doc = parse_manifest(data)
    if doc["model"] != model or doc["version"] != version:
        raise VersionMismatchError(
            f"{what} describes {doc['model']}/{doc['version']}, not {model}/{version}: "
            "files swapped between versions or models"
        )
    digest = sha256_hex(data)
    if expected_manifest_sha256 is not None and not hmac.compare_digest(
        digest, expected_manifest_sha256
    ):
        raise PointerMismatchError(
            f"{model}/{POINTER} names manifest sha256 {expected_manifest_sha256[:12]}… but "
            f"{what} has {digest[:12]}…: the version folder was replaced"
        )
    files: dict[str, bytes] = {}
    for entry in manifest_files(doc):
        key = f"{prefix}/{entry.path}"
        try:
            blob = store.read(key)
        except ObjectNotFoundError:
            raise FileMissingError(
                f"{store.uri}/{key} is listed in the manifest but missing"
            ) from None
        if len(blob) != entry.size:
            raise FileSizeMismatchError(
                f"{prefix}/{entry.path} is {len(blob)} bytes, the manifest says {entry.size} "
                "(truncated or padded)"
            )
        if not hmac.compare_digest(sha256_hex(blob), entry.sha256):
            raise FileHashMismatchError(
                f"{prefix}/{entry.path}: sha256 differs from the manifest (modified bytes)"
            )
        files[entry.path] = blob
    return VerifiedVersion(
        model=model,
        version=version,
        manifest=doc,
        manifest_bytes=data,
        manifest_sig=sig,
        manifest_sha256=digest,
        files=files,
    )


def verify_model(
    store: Store,
    model: str,
    keyring: KeyRing,
    version: str | None = None,
    *,
    min_sequence: int | None = None,
) -> VerifiedVersion:
    """Verify what ``LATEST`` points to (or one explicit ``version``) end to end.

    ``min_sequence``: refuse (``ReplayError``) a pointer whose sequence is not above it.
    """
    check_model_name(model)
    if version is not None:
        return verify_version(store, model, version, keyring)
    pointer, pdata, psig = read_pointer(store, model, keyring)
    if min_sequence is not None and pointer.sequence <= min_sequence:
        raise ReplayError(
            f"{model}/{POINTER} has sequence {pointer.sequence}, not above the last accepted "
            f"{min_sequence}: an old pointer was replayed"
        )
    vv = verify_version(
        store, model, pointer.version, keyring, expected_manifest_sha256=pointer.manifest_sha256
    )
    return VerifiedVersion(
        model=vv.model,
        version=vv.version,
        manifest=vv.manifest,
        manifest_bytes=vv.manifest_bytes,
        manifest_sig=vv.manifest_sig,
        manifest_sha256=vv.manifest_sha256,
        files=vv.files,
        sequence=pointer.sequence,
        pointer_bytes=pdata,
        pointer_sig=psig,
    )


def list_versions(store: Store, model: str) -> list[str]:
    """Version folders of ``model``, oldest first (complete or not)."""
    names = [d for d in store.list_dirs(check_model_name(model)) if version_number(d) is not None]
    return sorted(names, key=lambda v: version_number(v) or 0)


def list_models(store: Store) -> list[str]:
    """Model folders at the store root that hold a pointer or at least one version."""
    out = []
    for name in store.list_dirs(""):
        if MODEL_RE.match(name) and (store.exists(pointer_key(name)) or list_versions(store, name)):
            out.append(name)
    return out
