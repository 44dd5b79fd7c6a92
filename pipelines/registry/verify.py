"""The verification algorithm (specified in ``docs/manifest.md``) and store listings.

Order matters: a signature is checked before anything in the document is believed, the
pointer names a manifest by hash, the manifest names each file by hash and size, and the
bytes that were hashed are the bytes handed to the caller (no second read, no TOCTOU).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from pipelines.registry.errors import (
    FileHashMismatchError,
    FileMissingError,
    FileSizeMismatchError,
    ManifestInvalidError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    PointerExpiredError,
    PointerInvalidError,
    PointerMismatchError,
    PointerMissingError,
    RegistryError,
    ReplayError,
    SignatureMissingError,
    StoreError,
    VerificationError,
    VersionMismatchError,
)
from pipelines.registry.manifest import (
    MAX_DOC_BYTES,
    MAX_ENVELOPE_BYTES,
    MAX_SIG_BYTES,
    MODEL_RE,
    FileEntry,
    Pointer,
    check_model_name,
    format_time,
    is_envelope,
    manifest_files,
    pae,
    parse_envelope,
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
CHALLENGER = "CHALLENGER"
"""A challenger in shadow: the same envelope, sequence and expiry rules as ``LATEST``, with its
own payload schema, kinds and write-once history (``CHALLENGER_HISTORY``)."""
MANIFEST = "manifest.json"
SIG = ".sig"
HISTORY = "pointers"
CHALLENGER_HISTORY = "challenger-pointers"
_HISTORY_RE = re.compile(r"^(\d{12})\.json$")
HISTORY_PROBE = 64
"""Slots read one by one above ``LATEST`` where the history cannot be listed."""


def pointer_key(model: str) -> str:
    return f"{model}/{POINTER}"


def has_pointer(store: Store, model: str) -> bool:
    """Whether the model has a live pointer object, valid or not. ``list_keys`` lists what is
    *under* a folder: on the file store it gave nothing for the ``LATEST`` file itself, so
    every run on a file store took each slot's champion for the bot's fallback. A store that
    cannot even say (a refused HEAD) answers yes, and the verification that follows names why."""
    try:
        return store.exists(pointer_key(model))
    except StoreError:
        return True


def challenger_key(model: str) -> str:
    return f"{model}/{CHALLENGER}"


def challenger_history_key(model: str, sequence: int) -> str:
    return f"{model}/{CHALLENGER_HISTORY}/{sequence:012d}.json"


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
    pointer: Pointer | None = None

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


def _read_signed(
    store: Store, key: str, missing: type[Exception], limit: int
) -> tuple[bytes, bytes]:
    try:
        data = store.read(key, max_bytes=limit)
    except ObjectNotFoundError:
        raise missing(f"{store.uri}/{key} is missing") from None
    try:
        sig = store.read(key + SIG, max_bytes=MAX_SIG_BYTES)
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


def verify_pointer_bytes(
    data: bytes,
    sig: bytes | None,
    model: str,
    keyring: KeyRing,
    what: str | None = None,
    *,
    challenger: bool = False,
) -> Pointer:
    """Check a pointer (an envelope, or the legacy document + ``.sig``), then its fields.

    ``sig`` is only used for the legacy two-file form; an envelope carries its signature.
    ``challenger``: the bytes of ``CHALLENGER`` or its history (an envelope with the
    challenger schema; anything else is refused there, and a challenger envelope is refused
    everywhere else).
    """
    what = what or f"{model}/{CHALLENGER if challenger else POINTER}"
    if challenger and not is_envelope(data):
        raise PointerInvalidError(f"{what}: a challenger pointer must be a signed envelope")
    if is_envelope(data):
        env = parse_envelope(data, what)
        signer = peek_signer(env.payload, f"{what} payload", PointerInvalidError)
        entry = next((sg for kid, sg in env.signatures if kid == signer["key_id"]), None)
        if entry is None:
            raise SignatureMissingError(
                f"{what}: no signature by the payload's signer {str(signer['key_id'])[:64]!r}"
            )
        keyring.verify(
            pae(env.payload_type, env.payload),
            entry.encode("utf-8", "replace"),
            key_id=signer["key_id"],
            algorithm=signer["algorithm"],
            key_check=signer.get("key_check"),
            what=what,
        )
        keyring.check_scope(signer["key_id"], model, what)
        return parse_pointer(env.payload, model, what=what, challenger=challenger)
    if sig is None:
        raise SignatureMissingError(f"{what}{SIG} is missing (legacy two-file pointer)")
    _check_signature(data, sig, what, PointerInvalidError, keyring)
    pointer = parse_pointer(data, model, legacy=True, what=what)
    keyring.check_scope(pointer.key_id, model, what)
    return pointer


def read_pointer_raw(store: Store, model: str) -> tuple[bytes, bytes | None, str]:
    """``LATEST`` bytes, the legacy ``LATEST.sig`` (None for an envelope) and the ETag."""
    key = pointer_key(model)
    try:
        data, etag = store.read_etag(key, max_bytes=MAX_ENVELOPE_BYTES)
    except ObjectNotFoundError:
        raise PointerMissingError(f"{store.uri}/{key} is missing") from None
    if is_envelope(data):
        return data, None, etag
    try:
        sig = store.read(key + SIG, max_bytes=MAX_SIG_BYTES)
    except ObjectNotFoundError:
        raise SignatureMissingError(f"{store.uri}/{key}{SIG} is missing") from None
    return data, sig, etag


def read_pointer(store: Store, model: str, keyring: KeyRing) -> tuple[Pointer, bytes, bytes | None]:
    """The verified ``LATEST`` of ``model`` with its raw bytes and legacy signature (or None)."""
    data, sig, _ = read_pointer_raw(store, model)
    return verify_pointer_bytes(data, sig, model, keyring), data, sig


def history_key(model: str, sequence: int) -> str:
    return f"{model}/{HISTORY}/{sequence:012d}.json"


def history_sequences(keys: list[str], model: str, folder: str = HISTORY) -> list[int]:
    """Sequences of the history entries among ``keys`` (a listing of ``<model>/``), sorted.

    ``folder``: the history's folder (``CHALLENGER_HISTORY`` for ``CHALLENGER``'s)."""
    seqs = []
    prefix = f"{model}/{folder}/"
    for key in keys:
        if key.startswith(prefix):
            m = _HISTORY_RE.fullmatch(key[len(prefix) :])
            if m:
                seqs.append(int(m.group(1)))
    return sorted(seqs)


def read_history(store: Store, model: str, keyring: KeyRing, seq: int) -> Pointer:
    """The verified history entry ``seq``; it must carry that sequence (a copy of another
    entry under a higher name is refused)."""
    return read_history_entry(store, model, keyring, seq).pointer


class HistoryEntry(NamedTuple):
    """A verified history entry with the bytes it was verified from (a consumer caches
    these as it caches ``LATEST``'s)."""

    pointer: Pointer
    data: bytes
    sig: bytes | None


def read_history_entry(store: Store, model: str, keyring: KeyRing, seq: int) -> HistoryEntry:
    """:func:`read_history`, with the verified bytes (and legacy ``.sig``)."""
    key = history_key(model, seq)
    data = store.read(key, max_bytes=MAX_ENVELOPE_BYTES)
    sig = None
    if not is_envelope(data):  # legacy history entry: document + .sig
        sig = store.read(key + SIG, max_bytes=MAX_SIG_BYTES)
    pointer = verify_pointer_bytes(data, sig, model, keyring, what=key)
    if pointer.sequence != seq:
        raise PointerInvalidError(f"{key} carries sequence {pointer.sequence}")
    return HistoryEntry(pointer, data, sig)


def newest_history(
    store: Store, model: str, keyring: KeyRing, keys: list[str] | None = None
) -> Pointer | None:
    """The verified history entry with the highest sequence; entries that do not verify
    are skipped (and logged): nobody without a key can make one count."""
    listing = store.list_keys(model) if keys is None else keys
    for seq in reversed(history_sequences(listing, model)):
        try:
            return read_history(store, model, keyring, seq)
        except (VerificationError, ObjectNotFoundError) as exc:
            log.warning("%s: ignoring pointer history entry %d: %s", model, seq, exc)
    return None


def newer_history(store: Store, model: str, keyring: KeyRing, sequence: int) -> HistoryEntry | None:
    """The newest verified history entry with a sequence above ``sequence``, or None.

    Lists only ``<model>/pointers/``. Where the store refuses a listing (a bot whose
    credentials may read objects but not list them), the slots above ``sequence`` are read
    directly instead, one by one up to the first that is absent or does not verify (at most
    ``HISTORY_PROBE``); an entry that cannot be read or does not verify counts as absent.
    """
    try:
        keys = store.list_keys(f"{model}/{HISTORY}")
    except Exception as exc:  # any listing failure: S3 AccessDenied, a network error
        log.warning("%s: cannot list the pointer history (%s): reading the next slots", model, exc)
        found = None
        for seq in range(sequence + 1, sequence + 1 + HISTORY_PROBE):
            try:
                found = read_history_entry(store, model, keyring, seq)
            except RegistryError:
                break
        return found
    for seq in reversed(history_sequences(keys, model)):
        if seq <= sequence:
            break
        try:
            return read_history_entry(store, model, keyring, seq)
        except RegistryError as exc:
            log.warning("%s: ignoring pointer history entry %d: %s", model, seq, exc)
    return None


def check_against_history(store: Store, model: str, keyring: KeyRing, pointer: Pointer) -> None:
    """:class:`ReplayError` when the verified history beside ``LATEST`` holds a newer pointer.

    What a consumer without state cannot otherwise see: an older, validly signed envelope
    copied over ``LATEST`` while the newer history entries stayed. (An interrupted publish
    leaves the same picture until the next publish or heartbeat completes it; either way
    ``LATEST`` is not the newest signed pointer.) Deleted history cannot be seen this way:
    only a floor (a consumer's state, a minimum sequence, the publisher's record) can.
    """
    entry = newer_history(store, model, keyring, pointer.sequence)
    if entry is not None:
        newest = entry.pointer
        raise ReplayError(
            f"{model}/{POINTER} has sequence {pointer.sequence} ({pointer.version}) but the "
            f"verified history beside it holds sequence {newest.sequence} ({newest.version}): "
            "LATEST was replaced by an older pointer, or a publish was interrupted before "
            "LATEST moved (the next publish or heartbeat repairs that)"
        )


def check_fresh(
    pointer: Pointer,
    now: datetime | None = None,
    max_age: timedelta | None = None,
    *,
    name: str = POINTER,
) -> None:
    """:class:`PointerExpiredError` when ``pointer`` is past ``expires`` or older than
    ``max_age`` (a frozen store: nobody re-signed it). ``name``: the pointer it came from."""
    now = now or datetime.now(UTC)
    expires = pointer.expires_at()
    what = f"{pointer.model}/{name} (sequence {pointer.sequence})"
    if expires is not None and now > expires:
        raise PointerExpiredError(
            f"{what} expired at {format_time(expires)}: "
            + (
                "a legacy pointer (no expiry field) is stale this long after it was signed"
                if pointer.legacy
                else "the store has not been re-signed since"
            )
        )
    created = pointer.created()
    if max_age is not None and created is not None and now - created > max_age:
        raise PointerExpiredError(
            f"{what} was signed at {pointer.created_at}, more than "
            f"{max_age.total_seconds() / 3600:g} h ago (maximum pointer age)"
        )


def verify_manifest(
    store: Store, model: str, version: str, keyring: KeyRing
) -> tuple[dict[str, Any], bytes, bytes]:
    """A version's manifest, signature-checked and parsed (its files are not read)."""
    check_model_name(model)
    if version_number(version) is None:
        raise VersionMismatchError(f"{version[:40]!r} is not a version name (v000001 style)")
    prefix = version_prefix(model, version)
    what = f"{prefix}/{MANIFEST}"
    data, sig = _read_signed(store, what, FileMissingError, MAX_DOC_BYTES)
    _check_signature(data, sig, what, ManifestInvalidError, keyring)
    doc = parse_manifest(data)
    keyring.check_scope(doc["key_id"], model, what)
    if doc["model"] != model or doc["version"] != version:
        raise VersionMismatchError(
            f"{what} describes {str(doc['model'])[:64]}/{str(doc['version'])[:40]}, not "
            f"{model}/{version}: files swapped between versions or models"
        )
    return doc, data, sig


def verify_version(
    store: Store,
    model: str,
    version: str,
    keyring: KeyRing,
    *,
    expected_manifest_sha256: str | None = None,
) -> VerifiedVersion:
    """Verify one version folder: manifest signature, identity, then every file.

    Each file is read at most ``size + 1`` bytes (its signed size), so an oversized or
    endless object is refused while reading.
    """
    doc, data, sig = verify_manifest(store, model, version, keyring)
    prefix = version_prefix(model, version)
    what = f"{prefix}/{MANIFEST}"
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
            blob = store.read(key, max_bytes=entry.size)
        except ObjectNotFoundError:
            raise FileMissingError(
                f"{store.uri}/{key} is listed in the manifest but missing"
            ) from None
        except ObjectTooLargeError:
            raise FileSizeMismatchError(
                f"{prefix}/{entry.path} is larger than the {entry.size} bytes the manifest "
                "says (padded or replaced)"
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
    now: datetime | None = None,
    max_age: timedelta | None = None,
    check_freshness: bool = True,
    check_history: bool = False,
) -> VerifiedVersion:
    """Verify what ``LATEST`` points to (or one explicit ``version``) end to end.

    ``min_sequence``: refuse (``ReplayError``) a pointer whose sequence is not above it.
    ``check_freshness``: refuse (``PointerExpiredError``) a pointer past ``expires`` or older
    than ``max_age`` at ``now``. ``check_history``: refuse (``ReplayError``) a ``LATEST``
    older than the newest verified history entry beside it (see
    :func:`check_against_history`); ``edgeflow verify`` does, a consumer need not.
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
    if check_history:
        check_against_history(store, model, keyring, pointer)
    if check_freshness:
        check_fresh(pointer, now, max_age)
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
        pointer=pointer,
    )


def list_versions(store: Store, model: str) -> list[str]:
    """Version folders of ``model``, oldest first (complete or not)."""
    names = [d for d in store.list_dirs(check_model_name(model)) if version_number(d) is not None]
    return sorted(names, key=lambda v: version_number(v) or 0)


def list_models(store: Store) -> list[str]:
    """Model folders at the store root that hold a pointer or at least one version."""
    out = []
    for name in store.list_dirs(""):
        if MODEL_RE.fullmatch(name) and (
            store.exists(pointer_key(name)) or list_versions(store, name)
        ):
            out.append(name)
    # A model folder replaced by a symlink, a regular file, a FIFO ... is listed too, so
    # verifying it fails by name (unsafe-object) instead of the model silently vanishing.
    unsafe = getattr(store, "list_unsafe_entries", None)
    if unsafe is not None:
        out.extend(name for name in unsafe("", files=True) if MODEL_RE.fullmatch(name))
    return sorted(out)


class ChallengerView(NamedTuple):
    """A verified ``CHALLENGER``: its pointer, and the version it names (``None`` when the
    pointer is a withdrawal: no challenger stands, and its sequence still counts)."""

    pointer: Pointer
    version: VerifiedVersion | None


def read_challenger(
    store: Store,
    model: str,
    keyring: KeyRing,
    *,
    min_sequence: int | None = None,
    now: datetime | None = None,
    max_age: timedelta | None = None,
    check_freshness: bool = True,
) -> ChallengerView | None:
    """Verify ``CHALLENGER`` as :func:`verify_model` verifies ``LATEST``; None when absent.

    The same order and rules: the envelope's signature and scope, the challenger schema (a
    ``LATEST`` envelope copied here is refused), ``min_sequence`` (:class:`ReplayError` for a
    sequence not above the last one the caller accepted), then, for a ``publish`` or
    ``heartbeat``, freshness and every file of the version it names, by hash. A withdrawal
    is returned with ``version=None`` after the sequence check, so a consumer that saw it
    refuses the older challenger envelope someone puts back.
    """
    check_model_name(model)
    key = challenger_key(model)
    try:
        data = store.read(key, max_bytes=MAX_ENVELOPE_BYTES)
    except ObjectNotFoundError:
        return None
    pointer = verify_pointer_bytes(data, None, model, keyring, challenger=True)
    if min_sequence is not None and pointer.sequence <= min_sequence:
        raise ReplayError(
            f"{model}/{CHALLENGER} has sequence {pointer.sequence}, not above the last "
            f"accepted {min_sequence}: an old challenger pointer was replayed"
        )
    if pointer.kind == "withdraw":
        return ChallengerView(pointer, None)
    if check_freshness:
        check_fresh(pointer, now, max_age, name=CHALLENGER)
    vv = verify_version(
        store, model, pointer.version, keyring, expected_manifest_sha256=pointer.manifest_sha256
    )
    return ChallengerView(
        pointer,
        VerifiedVersion(
            model=vv.model,
            version=vv.version,
            manifest=vv.manifest,
            manifest_bytes=vv.manifest_bytes,
            manifest_sig=vv.manifest_sig,
            manifest_sha256=vv.manifest_sha256,
            files=vv.files,
            sequence=pointer.sequence,
            pointer_bytes=data,
            pointer=pointer,
        ),
    )
