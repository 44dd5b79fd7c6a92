"""Publishing, rollback, heartbeat and pruning: files, manifest, signature, then the pointer.

Each version object is written once (``create_only``). The pointer is one signed envelope:
first recorded write-once under ``<model>/pointers/<sequence>.json`` (that claims the
sequence: two publishers cannot both use it), then written to ``LATEST`` in a single
compare-and-swap against the ETag read at the start, so a crash leaves ``LATEST`` on the old
or the new complete version and a concurrent publisher can never be silently overwritten.
Next version and sequence come only from documents that verify; nothing here ever signs a
pointer to a version it has not verified itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.registry.errors import (
    ConcurrentPublishError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
    PublishError,
    UnsafeObjectError,
    VerificationError,
)
from pipelines.registry.manifest import (
    MANIFEST_SCHEMA,
    MAX_ENVELOPE_BYTES,
    MAX_SEQUENCE,
    MAX_SIG_BYTES,
    POINTER_PAYLOAD_TYPE,
    POINTER_SCHEMA,
    FileEntry,
    Pointer,
    canonical_json,
    check_file_path,
    check_finite,
    check_model_name,
    format_time,
    format_version,
    make_envelope,
    pae,
    parse_time,
    sha256_hex,
    version_number,
)
from pipelines.registry.onnx_check import check_loadable, parse_onnx, refuse_external_data
from pipelines.registry.publisher_state import PublisherRecord, read_record, write_record
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store
from pipelines.registry.verify import (
    HISTORY,
    MANIFEST,
    POINTER,
    SIG,
    check_fresh,
    history_key,
    history_sequences,
    is_envelope,
    newest_history,
    pointer_key,
    read_history,
    verify_manifest,
    verify_pointer_bytes,
    verify_version,
    version_prefix,
)

log = logging.getLogger(__name__)

StepHook = Callable[[str], None]
"""Called after each completed publish step with its name (``file:model.onnx``, ``manifest``,
``manifest_sig``, ``history``, ``pointer``, ``prune``). Tests use it to interrupt a publish;
production passes nothing."""

HISTORY_KEEP = 50
DEFAULT_TTL = timedelta(hours=72)
RESERVED = (MANIFEST, MANIFEST + SIG)
WITHHELD_MARGIN = timedelta(minutes=10)
"""How much later than the newest verified pointer an unnamed signed version must be before
a publisher without its record takes it as evidence of deleted history: more than a race
between two publishers or the clock skew between two machines."""
PARTIAL_GRACE = timedelta(hours=1)
"""An unsigned version folder younger than this may be a concurrent publish still writing
it: pruning leaves it alone (older ones are crash leftovers and go)."""
_CLAIM_TRIES = 4


@dataclass(frozen=True)
class PublishedVersion:
    """What a publish or rollback made live."""

    store_uri: str
    model: str
    version: str
    sequence: int
    manifest_sha256: str
    files: tuple[FileEntry, ...]
    previous_version: str | None
    pruned: tuple[str, ...] = ()
    kind: str = "publish"
    expires: str | None = None


def _now() -> str:
    return format_time(datetime.now(UTC))


def _collect_files(files: Mapping[str, Path | bytes] | Sequence[Path]) -> dict[str, bytes]:
    items: list[tuple[str, Path | bytes]]
    if isinstance(files, Mapping):
        items = list(files.items())
    else:
        items = [(Path(p).name, Path(p)) for p in files]
    out: dict[str, bytes] = {}
    for name, src in items:
        check_file_path(name)
        if name in out:
            raise PublishError(f"two files would both be published as {name!r}")
        if isinstance(src, bytes | bytearray):
            out[name] = bytes(src)
        else:
            try:
                out[name] = Path(src).read_bytes()
            except OSError as exc:
                raise PublishError(f"cannot read {src}: {exc.strerror}") from None
    if not out:
        raise PublishError("nothing to publish: no files given")
    return out


def describe_onnx(blob: bytes) -> dict[str, Any]:
    """Inputs, outputs (name, dtype, shape) and default-domain opset of an ONNX model."""
    import onnx
    from onnx import helper

    model = onnx.load_model_from_string(blob)

    def values(vs: Any) -> list[dict[str, Any]]:
        init = {i.name for i in model.graph.initializer}
        out = []
        for v in vs:
            if v.name in init:
                continue
            tt = v.type.tensor_type
            dims: list[int | str | None] = []
            for d in tt.shape.dim:
                dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
            dtype = str(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
            out.append({"name": v.name, "dtype": dtype, "shape": dims})
        return out

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "inputs": values(model.graph.input),
        "outputs": values(model.graph.output),
        "opset": opset,
    }


def _key_name(name: str) -> bool:
    """True for an object name inside a version folder that the store API can address (not
    an S3 folder marker ``v000002/`` nor a name with an empty segment, which only junk has)."""
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _version_folders(keys: list[str], model: str) -> dict[str, set[str]]:
    """Version folder name -> names of the objects in it, from one listing of ``<model>/``.

    Every name counts, S3 folder markers (``<model>/v000002/``) included: any object under
    a version name makes that name taken, and so does an object *at* it (``<model>/v000004``
    itself, a regular file: junk, listed with no names in it, so it is skipped, never
    reused, and never pruned through the version-folder path)."""
    out: dict[str, set[str]] = {}
    for k in keys:
        parts = k.split("/", 2)
        if len(parts) >= 2 and parts[0] == model and version_number(parts[1]) is not None:
            names = out.setdefault(parts[1], set())
            if len(parts) == 3:
                names.add(parts[2])
    return out


@dataclass
class StoreState:
    """What the publisher may believe about one model: only what verified.

    ``etag`` is the ETag of ``LATEST`` as read (whatever it holds, junk included): the
    precondition of the pointer compare-and-swap. ``pointer`` is ``LATEST`` if it verifies,
    ``latest_junk`` says why not. ``local`` is this publisher's own record (its state
    folder), which nobody with only store access can roll back.
    """

    model: str
    keys: list[str]
    pointer: Pointer | None = None
    etag: str | None = None
    latest_junk: str | None = None
    newest_history: Pointer | None = None
    local: PublisherRecord | None = None
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, set[str]] = field(default_factory=dict)

    @property
    def newest(self) -> Pointer | None:
        """The verified pointer with the highest sequence among ``LATEST``, the history and
        the local record: what the fleet was last told. On a tie the store's copy wins."""
        local = self.local.pointer if self.local is not None else None
        return newest_pointer(self.newest_history, self.pointer, local)

    @property
    def live(self) -> str | None:
        newest = self.newest
        return newest.version if newest is not None else None

    @property
    def top_sequence(self) -> int:
        return top_sequence(self.newest, self.local)

    @property
    def floor(self) -> str | None:
        newest = self.newest
        return newest.floor if newest is not None else None

    def newest_verified_number(self) -> int:
        numbers = [version_number(v) or 0 for v in self.verified]
        local = self.local.pointer if self.local is not None else None
        for p in (self.pointer, self.newest_history, local):
            if p is not None:
                numbers.append(version_number(p.version) or 0)
        if self.local is not None:
            numbers.append(self.local.max_version)
        return max(numbers, default=0)

    def describe_drift(self) -> str | None:
        """Why ``LATEST`` is not the newest verified pointer, or None when it is."""
        newest = self.newest
        if newest is None:
            return None
        if self.pointer is None:
            what = f"does not verify ({self.latest_junk})" if self.latest_junk else "is missing"
        elif self.pointer.sequence < newest.sequence:
            what = f"holds the older sequence {self.pointer.sequence} ({self.pointer.version})"
        else:
            return None
        source = (
            "this publisher's state"
            if self.local is not None and newest is self.local.pointer
            else "the verified history"
        )
        return (
            f"{self.model}/LATEST {what}; the newest verified pointer is sequence "
            f"{newest.sequence} ({newest.version}, from {source})"
        )


def read_state(
    store: Store,
    model: str,
    keyring: KeyRing,
    *,
    manifests: bool = True,
    state_dir: Path | None = None,
) -> StoreState:
    """One fresh listing of ``<model>/``, the verified pointers and the verified manifests.

    Unsigned folders, junk history entries and an unverifiable ``LATEST`` are ignored (and
    logged by name), so nothing an attacker without a key writes can move the next version
    or sequence, or block the compare-and-swap that replaces it: the ETag of ``LATEST`` is
    taken from the raw read, whatever it holds.
    """
    _check_model_folder(store, model)
    keys = store.list_keys(model)
    state = StoreState(model=model, keys=keys, folders=_version_folders(keys, model))
    key = pointer_key(model)
    data: bytes | None = None
    try:
        data, state.etag = store.read_etag(key, max_bytes=MAX_ENVELOPE_BYTES)
    except ObjectNotFoundError:
        pass
    except VerificationError as exc:  # refused while reading: FIFO, symlink, oversized
        state.etag = exc.etag
        state.latest_junk = f"[{exc.code}] {exc}"
    if data is not None:
        try:
            sig = None
            if not is_envelope(data):
                try:
                    sig = store.read(key + SIG, max_bytes=MAX_SIG_BYTES)
                except ObjectNotFoundError:
                    sig = None  # verify_pointer_bytes names it: signature-missing
            state.pointer = verify_pointer_bytes(data, sig, model, keyring)
        except VerificationError as exc:
            state.latest_junk = f"[{exc.code}] {exc}"
    if state.latest_junk is not None:
        log.warning(
            "%s/LATEST is junk (%s): ignored, and replaced under compare-and-swap by the next "
            "pointer this publisher signs",
            model,
            state.latest_junk,
        )
    state.newest_history = newest_history(store, model, keyring, keys)
    state.local = read_record(state_dir, store.uri, model, keyring)
    if manifests:
        _verify_manifests(store, state, keyring)
    return state


def _check_model_folder(store: Store, model: str) -> None:
    """:class:`PublishError` naming it when something other than a folder (a regular file,
    symlink, FIFO, socket) stands where the model's folder belongs, in a store with real
    folders. Nothing of the model can be read through it and no version written under it;
    it is not removed automatically (it may be a moved model folder an operator needs to
    look at), so the operator is told what to do instead of every publish failing on the
    first write."""
    unsafe = getattr(store, "list_unsafe_entries", None)
    if unsafe is None or model not in unsafe("", files=True):
        return
    raise PublishError(
        f"{store.uri}/{model} is not a folder (a file, symlink or special file stands where "
        "the model's folder belongs: planted junk or a damaged store); nothing was written. "
        "Move it out of the store after looking at it, then run this again: this publisher's "
        "state (publisher-state/) keeps the sequence, and bots keep refusing anything older "
        "than what they accepted"
    )


def _verify_manifests(store: Store, state: StoreState, keyring: KeyRing) -> None:
    """Fill ``state.verified`` with every version folder whose manifest verifies."""
    model = state.model
    for version, names in state.folders.items():
        if MANIFEST not in names or MANIFEST + SIG not in names:
            continue
        try:
            state.verified[version] = verify_manifest(store, model, version, keyring)[0]
        except (VerificationError, ObjectNotFoundError) as exc:
            log.warning("%s/%s: manifest does not verify, ignoring it: %s", model, version, exc)


def check_withheld_history(store: Store, state: StoreState, keyring: KeyRing) -> None:
    """What a publisher without its own record can still see of deleted pointer history.

    Signed manifests cannot be withheld without also deleting the versions, and each names
    the version that was live when it was published (``previous_version``). A signed version
    that no verified pointer names, signed more than ``WITHHELD_MARGIN`` after the newest
    verified pointer and on top of a different version than that pointer's, was published
    after a pointer this store no longer shows: newer history was deleted and an older
    pointer put back. Continuing from that older pointer would reuse sequences the fleet
    already accepted (running bots refuse them, fresh bots load them) or re-sign an older
    version, so :class:`PublishError`. A crash leftover (signed on top of the live version),
    a publish that lost a race (signed within moments of the pointer that won) and an
    operator's rollback (newer than every manifest) are not evidence. A publisher with its
    record (``state_dir``) needs none of this: the record says what it signed.
    """
    if state.local is not None:
        return
    newest = state.newest
    signed_at = newest.created() if newest is not None else None
    if newest is None or signed_at is None:
        return
    suspects = []
    for version, doc in state.verified.items():
        created = parse_time(str(doc.get("created_at")))
        if (
            version != newest.version
            and doc.get("previous_version") != newest.version
            and created is not None
            and created - signed_at > WITHHELD_MARGIN
        ):
            suspects.append((version, doc))
    if not suspects:
        return
    named = {p.version for p in (state.pointer, state.newest_history) if p is not None}
    for seq in history_sequences(state.keys, state.model):
        try:
            named.add(read_history(store, state.model, keyring, seq).version)
        except (VerificationError, ObjectNotFoundError):
            continue
    for version, doc in sorted(suspects, key=lambda vd: version_number(vd[0]) or 0):
        if version in named:
            continue
        raise PublishError(
            f"{state.model}/{version} was signed at {doc.get('created_at')} on top of "
            f"{doc.get('previous_version')}, after the newest verified pointer (sequence "
            f"{newest.sequence}, {newest.version}, signed at {newest.created_at}), yet no "
            "verified pointer names it: newer pointer history was deleted and an older "
            "pointer put back. Without its publisher state this publisher cannot tell which "
            "sequence the fleet accepted; refusing to continue from the older pointer. Run "
            "from the workdir that keeps publisher-state/, or pass a start sequence above the "
            "highest one any bot accepted (its state file holds it)"
        )


def _next_sequence(state: StoreState, start_sequence: int | None) -> int:
    top = state.top_sequence
    if top == 0 and start_sequence is None:
        if state.verified:
            raise PublishError(
                f"{state.model}: signed versions exist ({', '.join(sorted(state.verified))}) but "
                "no pointer verifies (LATEST and its history were deleted or damaged): refusing "
                "to restart the sequence at 1, which consumers would refuse as a replay; "
                "pass the sequence to continue from explicitly (--start-sequence)"
            )
        # Nothing signed exists (a junk LATEST alone is no evidence of a sequence): start at 1.
    if start_sequence is not None:
        if start_sequence <= top:
            raise PublishError(
                f"{state.model}: start sequence {start_sequence} is not above the verified "
                f"sequence {top}"
            )
        top = start_sequence - 1
    if top + 1 > MAX_SEQUENCE:
        raise PublishError(f"{state.model}: pointer sequence exhausted")
    return top + 1


def _next_version(state: StoreState, store: Store) -> str:
    """One above the newest verified version number, past every name already in use.

    The number comes from what verified (manifests, pointers, this publisher's record); a
    name that anything already occupies (a folder with objects in it, an empty folder, an S3
    folder marker, a symlink or other special file: an interrupted publish or planted junk)
    is never reused. The free name is found in the one listing already read, by walking the
    sorted taken numbers above the candidate, so no number of planted folders blocks a
    publish (they only move the number up, and pruning removes those below the live version
    once they have settled).
    """
    number = state.newest_verified_number() + 1
    taken_names = set(state.folders)  # every name with an object under it (S3 markers too)
    unsafe = getattr(store, "list_unsafe_entries", None)  # a store with real folders
    if unsafe is not None:  # empty folders, and symlinks etc. where a folder goes
        taken_names |= set(store.list_dirs(state.model)) | set(unsafe(state.model))
    taken = sorted(n for n in map(version_number, taken_names) if n is not None and n >= number)
    skipped = 0
    for t in taken:
        if t > number:
            break
        if t == number:
            number += 1
            skipped += 1
    if skipped:
        log.warning(
            "%s: %d version name(s) from v%06d on are taken by folders that hold no verified "
            "manifest (interrupted publishes or junk): publishing as the next free name",
            state.model,
            skipped,
            number - skipped,
        )
    try:
        return format_version(number)
    except ValueError:
        raise PublishError(f"{state.model}: version numbers exhausted") from None


@dataclass(frozen=True)
class PointerSlot:
    """One signed pointer of a model, as the publisher writes it: ``LATEST`` or ``CHALLENGER``.

    Both are the same DSSE envelope, claimed write-once in a history of their own, recorded
    in a publisher record of their own and moved by one compare-and-swap
    (:func:`claim_and_swap`). What differs is named here once, so the two stay apart: a
    payload ``schema`` no verifier of the other pointer takes, their own sequence (history
    folder) and their own record folder, so neither envelope can be copied over the other.
    """

    name: str
    """The pointer object under the model folder (``LATEST``)."""
    schema: str
    """The payload schema its envelopes carry."""
    history: str
    """The folder of its write-once history under the model folder."""
    label: str
    """How its sequence is named in errors (``sequence``, ``challenger sequence``)."""
    history_key: Callable[[str, int], str]
    read_history: Callable[[Store, str, KeyRing, int], Pointer]
    """The verified history entry of a sequence (raises when it does not verify)."""
    record_dir: Callable[[Path | None], Path | None]
    """The publisher-state folder of its record, from the workdir's ``publisher-state/``."""

    def key(self, model: str) -> str:
        return f"{model}/{self.name}"


LATEST_SLOT = PointerSlot(
    name=POINTER,
    schema=POINTER_SCHEMA,
    history=HISTORY,
    label="sequence",
    history_key=history_key,
    read_history=read_history,
    record_dir=lambda state_dir: state_dir,
)


def newest_pointer(*pointers: Pointer | None) -> Pointer | None:
    """The pointer with the highest sequence; on a tie the first given wins (the store's copy
    before the publisher's record)."""
    best: Pointer | None = None
    for p in pointers:
        if p is not None and (best is None or p.sequence > best.sequence):
            best = p
    return best


def top_sequence(newest: Pointer | None, local: PublisherRecord | None) -> int:
    """The highest sequence taken: the newest verified pointer's, or one this publisher
    claimed (its record) and never made live."""
    claimed = local.claimed if local is not None else 0
    return max(newest.sequence if newest is not None else 0, claimed)


def sign_pointer(
    keyring: KeyRing,
    slot: PointerSlot,
    model: str,
    *,
    version: str,
    manifest_sha256: str,
    sequence: int,
    kind: str,
    previous: str | None,
    floor: str | None,
    ttl: timedelta,
) -> bytes:
    """The DSSE envelope of one pointer payload of ``slot``'s schema, valid for ``ttl``."""
    signer = keyring.signer()
    created = datetime.now(UTC)
    payload = canonical_json(
        {
            "schema": slot.schema,
            "model": model,
            "version": version,
            "sequence": sequence,
            "manifest_sha256": manifest_sha256,
            "key_id": signer.key_id,
            "algorithm": signer.algorithm,
            "key_check": signer.key_check,
            "created_at": format_time(created),
            "expires": format_time(created + ttl),
            "kind": kind,
            "previous": previous,
            "floor": floor,
        }
    )
    sig = keyring.sign(pae(POINTER_PAYLOAD_TYPE, payload)).decode("ascii")
    return make_envelope(payload, signer.key_id, sig)


def claim_and_swap(
    store: Store,
    model: str,
    keyring: KeyRing,
    slot: PointerSlot,
    envelope: bytes,
    *,
    version: str,
    sequence: int,
    expected_etag: str | None,
    prior: PublisherRecord | None,
    state_dir: Path | None = None,
    on_step: StepHook | None = None,
) -> None:
    """Claim ``sequence`` in ``slot``'s history, record it, then compare-and-swap the pointer.

    The caller holds ``store.locked(slot.key(model))``. The record is written before the
    pointer moves (a crash from there on leaves a record of this sequence); a swap that fails
    for any reason is undone (history entry removed, record put back) before the error is
    raised, unless the pointer now holds ``envelope`` (a write whose reply was lost).
    """
    step = on_step or (lambda _name: None)
    hist = slot.history_key(model, sequence)
    _claim_history(store, model, keyring, slot, hist, envelope, sequence)
    step("history")
    folder = slot.record_dir(state_dir)
    max_version = max(prior.max_version if prior else 0, version_number(version) or 0)
    claimed = max(prior.claimed if prior else 0, sequence)
    try:
        write_record(
            folder, store.uri, model, PublisherRecord(claimed, None, envelope, max_version)
        )
    except PublishError:
        store.delete(hist)
        raise
    try:
        store.swap(slot.key(model), envelope, expected_etag)
    except Exception as exc:  # every failure is undone, then re-raised
        if not isinstance(exc, PreconditionFailedError) and _holds(
            store, slot.key(model), envelope
        ):
            log.warning("%s: the swap reported %s but took effect", slot.key(model), exc)
        else:
            _undo_claim(store, model, slot, hist, folder, prior, claimed, max_version, exc)


def write_pointer(
    store: Store,
    model: str,
    keyring: KeyRing,
    *,
    version: str,
    manifest_sha256: str,
    sequence: int,
    expected_etag: str | None,
    kind: str = "publish",
    previous: str | None = None,
    floor: str | None = None,
    ttl: timedelta = DEFAULT_TTL,
    on_step: StepHook | None = None,
    state_dir: Path | None = None,
    prior: PublisherRecord | None = None,
) -> Pointer:
    """Sign one envelope, claim its sequence in the history, record it in the publisher's
    state (``state_dir``), then compare-and-swap ``LATEST`` (:func:`claim_and_swap`).

    Raises :class:`ConcurrentPublishError` when another publisher claimed the sequence or
    moved ``LATEST`` since ``expected_etag`` was read; nothing is overwritten then. Junk at
    the history slot (anything that does not verify, a planted folder included) is removed
    and the slot claimed again. Claim, record and swap run under the pointer lock (file
    stores), taken first; a swap that fails for any reason is undone (history entry removed,
    record put back) before the error is raised, so a failed publish or rollback never goes
    live later.
    """
    keyring.signer()
    if ttl <= timedelta(0):
        raise PublishError("pointer ttl must be positive")
    envelope = sign_pointer(
        keyring,
        LATEST_SLOT,
        model,
        version=version,
        manifest_sha256=manifest_sha256,
        sequence=sequence,
        kind=kind,
        previous=previous,
        floor=floor,
        ttl=ttl,
    )
    # The pointer lock (file stores) is taken before anything is written: a lock that cannot
    # be had within LOCK_WAIT_S fails here with nothing claimed and nothing recorded.
    with store.locked(pointer_key(model)):
        claim_and_swap(
            store,
            model,
            keyring,
            LATEST_SLOT,
            envelope,
            version=version,
            sequence=sequence,
            expected_etag=expected_etag,
            prior=prior,
            state_dir=state_dir,
            on_step=on_step,
        )
    if on_step is not None:
        on_step("pointer")
    if store.exists(pointer_key(model) + SIG):  # the legacy two-file form is superseded
        store.delete(pointer_key(model) + SIG)
    return verify_pointer_bytes(envelope, None, model, keyring)


def _holds(store: Store, key: str, envelope: bytes) -> bool:
    """True when the pointer ``key`` now holds exactly ``envelope`` (a write whose reply was
    lost)."""
    try:
        return store.read(key, max_bytes=MAX_ENVELOPE_BYTES) == envelope
    except Exception:  # unreadable now: as far as we know it did not take effect
        return False


def _undo_claim(
    store: Store,
    model: str,
    slot: PointerSlot,
    hist: str,
    folder: Path | None,
    prior: PublisherRecord | None,
    claimed: int,
    max_version: int,
    exc: Exception,
) -> None:
    """A swap of the pointer that failed, for any reason: remove the history entry that
    claimed the sequence and put the record back on the pointer that is live, then raise.

    Left behind, the entry would stand above the pointer and be taken for an interrupted
    publish: fresh bots would serve it and the next heartbeat would sign it, so a rollback
    the operator was told had failed would go live. The record keeps the claimed number
    (never reused). Only a crash leaves the entry behind, and that is the documented
    interrupted-publish case."""
    where = slot.key(model)
    undo_failed: list[str] = []
    try:
        store.delete(hist)
    except Exception as undo_exc:  # reported below, by name
        undo_failed.append(f"{hist} could not be removed ({undo_exc})")
    try:
        back = PublisherRecord(claimed, None, prior.envelope if prior else None, max_version)
        write_record(folder, store.uri, model, back)
    except PublishError as undo_exc:
        undo_failed.append(str(undo_exc))
    if undo_failed:
        raise PublishError(
            f"{where} was not replaced ({exc}), and undoing the claim failed: "
            f"{'; '.join(undo_failed)}. The next publish or heartbeat would complete the "
            "claimed pointer: check the store before either"
        ) from None
    if isinstance(exc, PreconditionFailedError):
        # Our history entry named a sequence the pointer never took: removed above.
        raise ConcurrentPublishError(
            f"{where} was moved by a concurrent publish ({exc}); nothing was overwritten"
        ) from None
    raise PublishError(
        f"{where} was not replaced ({exc}); its claimed history entry was removed and "
        "the publisher record put back: nothing was made live"
    ) from None


def _claim_history(
    store: Store,
    model: str,
    keyring: KeyRing,
    slot: PointerSlot,
    hist: str,
    envelope: bytes,
    sequence: int,
) -> None:
    """Write-once claim of ``sequence``. A verified entry there is another publisher's claim
    (:class:`ConcurrentPublishError`); anything else is junk: removed, with a log line."""
    for _ in range(_CLAIM_TRIES):
        try:
            store.write(hist, envelope, create_only=True)
            return
        except ObjectExistsError:
            try:
                slot.read_history(store, model, keyring, sequence)
            except (VerificationError, ObjectNotFoundError) as exc:
                log.warning(
                    "%s: %s is junk that does not verify (%s): replacing it", model, hist, exc
                )
                store.delete(hist)  # a file store removes a planted folder too
                continue
            raise ConcurrentPublishError(
                f"{model}: {slot.label} {sequence} was taken by a concurrent publish; retry"
            ) from None
        except UnsafeObjectError as exc:  # a symlink or special file where a folder belongs
            folder = f"{model}/{slot.history}"
            log.warning("%s: %s is not a plain folder (%s): replacing it", model, folder, exc)
            store.delete(folder)
    raise ConcurrentPublishError(
        f"{model}: could not claim {slot.label} {sequence}: {hist} was replaced {_CLAIM_TRIES} "
        "times while claiming it; retry"
    )


def _check_model_files(blobs: Mapping[str, bytes]) -> dict[str, Any]:
    """What the primary ONNX model declares, after checking every consumer can load it.

    A version with ONNX files must have one primary (``model.onnx`` or the only ``.onnx``)
    that onnxruntime loads from its bytes, and no ``.onnx`` may use external data. A version
    without any ``.onnx`` (a data artifact such as a recommendation table) is published as is.
    """
    onnx_names = sorted(n for n in blobs if n.endswith(".onnx"))
    if not onnx_names:
        return {"inputs": [], "outputs": [], "opset": None}
    primary = _primary_onnx(onnx_names)
    if primary is None:
        raise PublishError(
            f"no model file among {onnx_names}: name the one to serve model.onnx "
            "(a consumer could not tell which to load)"
        )
    try:
        for name in onnx_names:
            if name != primary:
                refuse_external_data(parse_onnx(blobs[name], name), name)
        check_loadable(blobs[primary], primary)
        return describe_onnx(blobs[primary])
    except VerificationError as exc:
        raise PublishError(f"{primary} is not a readable ONNX model: {exc}") from None


def _primary_onnx(names: Sequence[str]) -> str | None:
    if "model.onnx" in names:
        return "model.onnx"
    onnx_names = [n for n in names if n.endswith(".onnx")]
    return onnx_names[0] if len(onnx_names) == 1 else None


@dataclass(frozen=True)
class VersionFacts:
    """What a new version's manifest says besides its files (see :func:`publish_model`)."""

    version: str
    previous: str | None
    metrics: Mapping[str, float] | None = None
    gates: Sequence[Mapping[str, Any]] | None = None
    lineage: Mapping[str, Any] | None = None
    inputs: Sequence[Mapping[str, Any]] | None = None
    outputs: Sequence[Mapping[str, Any]] | None = None
    opset: int | None = None


@dataclass(frozen=True)
class WrittenVersion:
    """A version folder written and verified, not yet named by any pointer."""

    entries: tuple[FileEntry, ...]
    manifest_sha256: str


def write_version(
    store: Store,
    model: str,
    blobs: Mapping[str, bytes],
    keyring: KeyRing,
    facts: VersionFacts,
    described: Mapping[str, Any],
    on_step: StepHook | None = None,
) -> WrittenVersion:
    """Files, manifest, then its signature, each write-once, then a re-verification of the
    whole folder: the step every pointer (``LATEST`` or ``CHALLENGER``) is signed after."""
    signer = keyring.signer()
    version, previous = facts.version, facts.previous
    metrics, gates, lineage = facts.metrics, facts.gates, facts.lineage
    inputs, outputs, opset = facts.inputs, facts.outputs, facts.opset
    entries = tuple(FileEntry(n, sha256_hex(b), len(b)) for n, b in sorted(blobs.items()))
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "model": model,
        "version": version,
        "created_at": _now(),
        "key_id": signer.key_id,
        "algorithm": signer.algorithm,
        "key_check": signer.key_check,
        "files": [e.as_dict() for e in entries],
        "inputs": list(inputs) if inputs is not None else described["inputs"],
        "outputs": list(outputs) if outputs is not None else described["outputs"],
        "opset": opset if opset is not None else described["opset"],
        "metrics": dict(metrics or {}),
        "gates": [dict(g) for g in (gates or [])],
        "lineage": dict(lineage or {}),
        "previous_version": previous,
    }
    check_finite(manifest)
    manifest_bytes = canonical_json(manifest)
    step = on_step or (lambda _name: None)
    prefix = version_prefix(model, version)
    try:
        for name, blob in sorted(blobs.items()):
            store.write(f"{prefix}/{name}", blob, create_only=True)
            step(f"file:{name}")
        store.write(f"{prefix}/{MANIFEST}", manifest_bytes, create_only=True)
        step("manifest")
        store.write(f"{prefix}/{MANIFEST}{SIG}", keyring.sign(manifest_bytes), create_only=True)
        step("manifest_sig")
    except ObjectExistsError as exc:
        raise ConcurrentPublishError(
            f"{prefix} is being written by a concurrent publish: {exc}"
        ) from None
    digest = sha256_hex(manifest_bytes)
    try:  # what was just written is still all there (nothing pruned or replaced it meanwhile)
        verify_version(store, model, version, keyring, expected_manifest_sha256=digest)
    except (VerificationError, ObjectNotFoundError) as exc:
        store.delete(f"{prefix}/{MANIFEST}{SIG}")  # never leave it looking signed
        raise ConcurrentPublishError(
            f"{prefix} changed while it was being published ([{exc.code}] {exc}); unsigned it, "
            "nothing was made live; retry"
        ) from None
    return WrittenVersion(entries, digest)


def publish_model(
    store: Store,
    model: str,
    files: Mapping[str, Path | bytes] | Sequence[Path],
    keyring: KeyRing,
    *,
    metrics: Mapping[str, float] | None = None,
    gates: Sequence[Mapping[str, Any]] | None = None,
    lineage: Mapping[str, Any] | None = None,
    inputs: Sequence[Mapping[str, Any]] | None = None,
    outputs: Sequence[Mapping[str, Any]] | None = None,
    opset: int | None = None,
    keep_last: int = 5,
    ttl: timedelta = DEFAULT_TTL,
    approve: bool = False,
    start_sequence: int | None = None,
    on_step: StepHook | None = None,
    state_dir: Path | None = None,
) -> PublishedVersion:
    """Publish ``files`` as the next version of ``model`` and make it live.

    ``files``: ``{name: path or bytes}`` or a list of paths (published under their names).
    The model file (``model.onnx`` or the only ``.onnx``) must exist, be self-contained (no
    external data) and load in onnxruntime: nothing a consumer cannot load is signed.
    ``inputs``/``outputs``/``opset`` default to what it declares. ``approve``: record this
    version as the operator-approved rollback floor. ``start_sequence``: continue the
    sequence from there when signed versions exist but every pointer was lost. Older
    versions beyond ``keep_last`` are pruned after the pointer moved (see :func:`prune`).
    ``state_dir``: this publisher's own record of what it signed (see
    ``pipelines.registry.publisher_state``), so a truncated or replayed history never makes
    it reuse a sequence or version; without it only verified history counts.
    """
    check_model_name(model)
    if keep_last < 1:
        raise PublishError("keep_last must be at least 1")
    signer = keyring.signer()  # fail before writing anything
    try:
        keyring.check_scope(signer.key_id, model, f"publish {model}")
    except VerificationError as exc:
        raise PublishError(str(exc)) from None
    blobs = _collect_files(files)
    described = _check_model_files(blobs)

    state = read_state(store, model, keyring, state_dir=state_dir)
    if start_sequence is None:  # an operator's start sequence is the answer to this check
        check_withheld_history(store, state, keyring)
    drift = state.describe_drift()
    if drift is not None:
        log.warning("%s; publishing on top of the latter", drift)
    sequence = _next_sequence(state, start_sequence)
    version = _next_version(state, store)
    previous = state.live
    written = write_version(
        store,
        model,
        blobs,
        keyring,
        VersionFacts(version, previous, metrics, gates, lineage, inputs, outputs, opset),
        described,
        on_step,
    )
    entries, digest = written.entries, written.manifest_sha256
    step = on_step or (lambda _name: None)
    pointer = write_pointer(
        store,
        model,
        keyring,
        version=version,
        manifest_sha256=digest,
        sequence=sequence,
        expected_etag=state.etag,
        kind="publish",
        previous=previous,
        floor=version if approve else state.floor,
        ttl=ttl,
        on_step=on_step,
        state_dir=state_dir,
        prior=state.local,
    )
    log.info("published %s/%s sequence %d to %s", model, version, sequence, store.uri)
    pruned = prune(store, model, keep_last, keyring, state_dir=state_dir)
    step("prune")
    return PublishedVersion(
        store_uri=store.uri,
        model=model,
        version=version,
        sequence=sequence,
        manifest_sha256=digest,
        files=entries,
        previous_version=previous,
        pruned=tuple(pruned),
        kind="publish",
        expires=pointer.expires,
    )


def rollback(
    store: Store,
    model: str,
    keyring: KeyRing,
    to: str | None = None,
    *,
    below_floor: bool = False,
    ttl: timedelta = DEFAULT_TTL,
    on_step: StepHook | None = None,
    state_dir: Path | None = None,
    start_sequence: int | None = None,
) -> PublishedVersion:
    """An operator's rollback: a new pointer (higher sequence) to an older, verified version.

    Without ``to``: the live manifest's ``previous_version`` (the version that was live
    before it), never "the newest one that still verifies", which someone damaging newer
    versions could steer. The target becomes the approved floor; a target below the current
    floor is refused unless ``below_floor``. Nothing is deleted. Only ever called on an
    explicit operator command, never by a health check. "Live" and the floor come from the
    newest verified pointer (history and ``state_dir``), not from whatever ``LATEST`` holds.
    With no pointer left that verifies (``LATEST`` and its history deleted) and no record of
    its own, it refuses to restart the sequence at 1, as publishing does (the fleet would
    refuse that pointer as a replay while the command said it succeeded), unless the operator
    gives ``start_sequence``: above the highest sequence any bot accepted.
    """
    check_model_name(model)
    keyring.signer()
    state = read_state(store, model, keyring, manifests=False, state_dir=state_dir)
    drift = state.describe_drift()
    if drift is not None:
        log.warning("%s; rolling back from the latter", drift)
    live = state.live
    if to is None:
        if live is None:
            raise PublishError(f"{model}: no verified live pointer; name the version with --to")
        try:
            live_doc = verify_manifest(store, model, live, keyring)[0]
        except VerificationError as exc:
            raise PublishError(
                f"{model}/{live}: its manifest does not verify ({exc.code}), so its previous "
                "version is unknown; name the version with --to"
            ) from None
        to = live_doc.get("previous_version")
        if not isinstance(to, str):
            raise PublishError(f"{model}: no older verified version to roll back to")
    if to == live:
        raise PublishError(f"{model}/{to} is already live")
    floor = state.floor
    if floor is not None and (version_number(to) or 0) < (version_number(floor) or 0):
        if not below_floor:
            raise PublishError(
                f"{model}/{to} is below the approved floor {floor}; an operator must confirm "
                "rolling back below it explicitly"
            )
    target = verify_version(store, model, to, keyring)
    if state.top_sequence == 0 and start_sequence is None:
        raise PublishError(
            f"{model}: signed version {target.version} exists but no pointer verifies (LATEST "
            "and its history were deleted or damaged): refusing to restart the sequence at 1, "
            "which running bots would refuse as a replay; pass --start-sequence above the "
            "highest sequence any bot accepted (its state file holds it)"
        )
    sequence = _next_sequence(state, start_sequence)
    pointer = write_pointer(
        store,
        model,
        keyring,
        version=target.version,
        manifest_sha256=target.manifest_sha256,
        sequence=sequence,
        expected_etag=state.etag,
        kind="rollback",
        previous=live,
        floor=target.version,
        ttl=ttl,
        on_step=on_step,
        state_dir=state_dir,
        prior=state.local,
    )
    log.info("rolled %s back from %s to %s (sequence %d)", model, live, target.version, sequence)
    return PublishedVersion(
        store_uri=store.uri,
        model=model,
        version=target.version,
        sequence=sequence,
        manifest_sha256=target.manifest_sha256,
        files=tuple(target.entries),
        previous_version=live,
        kind="rollback",
        expires=pointer.expires,
    )


def heartbeat(
    store: Store,
    model: str,
    keyring: KeyRing,
    *,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
    renew_expired: bool = False,
    state_dir: Path | None = None,
) -> PublishedVersion:
    """Re-sign a fresh pointer (``kind: heartbeat``) to the version the newest verified
    pointer names.

    For models the scheduled run did not retrain, so consumers can tell a quiet store from a
    frozen one. "Newest" is the highest sequence among a verifying ``LATEST``, the verified
    history and this publisher's own record (``state_dir``): a ``LATEST`` that is junk, or an
    older envelope copied over it, is replaced (logged), never re-signed, so a heartbeat
    never signs a rollback; an interrupted publish or rollback (its history entry above
    ``LATEST``) is completed. It never blesses what it cannot verify: the newest pointer must
    not have expired unless an operator says so (``renew_expired``: after an outage, once
    they checked the store), and every file of its version must verify.
    """
    check_model_name(model)
    keyring.signer()
    state = read_state(store, model, keyring, manifests=False, state_dir=state_dir)
    if state.local is None:  # no record of its own: look for withheld history
        _verify_manifests(store, state, keyring)
        check_withheld_history(store, state, keyring)
    newest = state.newest
    if newest is None:
        why = state.latest_junk or "missing"
        raise PublishError(
            f"{model}: no pointer verifies (LATEST: {why}; no verified history): a heartbeat "
            "re-signs nothing; publish or roll back"
        )
    drift = state.describe_drift()
    if drift is not None:
        log.warning("%s: re-signing the latter, replacing LATEST", drift)
    try:
        check_fresh(newest, now)
    except VerificationError as exc:
        if not renew_expired:
            raise PublishError(
                f"{model}: {exc}; an operator renews it explicitly (heartbeat --renew-expired), "
                "publishes or rolls back"
            ) from None
    target = verify_version(
        store, model, newest.version, keyring, expected_manifest_sha256=newest.manifest_sha256
    )
    sequence = _next_sequence(state, None)
    fresh = write_pointer(
        store,
        model,
        keyring,
        version=newest.version,
        manifest_sha256=newest.manifest_sha256,
        sequence=sequence,
        expected_etag=state.etag,
        kind="heartbeat",
        previous=newest.version,
        floor=newest.floor,
        ttl=ttl,
        state_dir=state_dir,
        prior=state.local,
    )
    log.info("heartbeat %s/%s sequence %d until %s", model, newest.version, sequence, fresh.expires)
    return PublishedVersion(
        store_uri=store.uri,
        model=model,
        version=newest.version,
        sequence=sequence,
        manifest_sha256=newest.manifest_sha256,
        files=tuple(target.entries),
        previous_version=newest.version,
        kind="heartbeat",
        expires=fresh.expires,
    )


def prune(
    store: Store,
    model: str,
    keep_last: int,
    keyring: KeyRing,
    *,
    state_dir: Path | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Delete old versions that rollback can do without, from a fresh listing.

    Only versions whose manifests verify are counted and deleted; the newest ``keep_last``
    of them, the live one, the previously live one, the approved floor and everything newer
    than the live one are kept ("live": the newest verified pointer, not whatever ``LATEST``
    holds). Interrupted folders (no manifest signature) older than the live version go too,
    but only once every object in them is older than ``PARTIAL_GRACE``: a younger one may be
    a concurrent publisher still writing it. Runs under the pointer lock where the store has
    one (files), and stops if ``LATEST`` moves meanwhile (S3), so it never deletes a
    concurrent rollback's target. A version is deleted signature first: a half-deleted
    folder never looks signed.
    """
    if keep_last < 1:
        raise PublishError("keep_last must be at least 1")
    now = now or datetime.now(UTC)
    with store.locked(pointer_key(model)):
        state = read_state(store, model, keyring, state_dir=state_dir)
        newest = state.newest
        if newest is None:
            return []  # without a verified live pointer nothing is known to be safe to delete
        live = newest.version
        live_n = version_number(live) or 0
        verified = sorted(state.verified, key=lambda v: version_number(v) or 0)
        keep = set(verified[-keep_last:]) | {live}
        keep |= {v for v in (newest.previous, newest.floor) if v}
        doomed = [v for v in verified if v not in keep and (version_number(v) or 0) < live_n]
        partial = [
            v
            for v, names in state.folders.items()
            if MANIFEST + SIG not in names
            and (version_number(v) or 0) < live_n
            and any(_key_name(n) for n in names)
            and _settled(store, model, v, names, now)
        ]
        deleted: list[str] = []
        for v in sorted(doomed + partial, key=lambda v: version_number(v) or 0):
            if _latest_etag(store, model) != state.etag:
                log.info("%s: LATEST moved during pruning; stopping", model)
                break
            prefix = version_prefix(model, v)
            store.delete(f"{prefix}/{MANIFEST}{SIG}")
            store.delete(f"{prefix}/{MANIFEST}")
            for name in state.folders.get(v, set()):
                if name not in RESERVED and _key_name(name):  # a folder marker is left be
                    store.delete(f"{prefix}/{name}")
            deleted.append(v)
            log.info("pruned %s/%s", model, v)
        oldest_kept = newest.sequence - HISTORY_KEEP
        for seq in history_sequences(state.keys, model):
            if seq <= oldest_kept:
                key = history_key(model, seq)
                store.delete(key + SIG)
                store.delete(key)
    return deleted


def _settled(store: Store, model: str, version: str, names: set[str], now: datetime) -> bool:
    """True when no object of an unsigned folder was written within ``PARTIAL_GRACE``."""
    prefix = version_prefix(model, version)
    for name in filter(_key_name, names):
        when = store.modified_at(f"{prefix}/{name}")
        if when is not None and now - when < PARTIAL_GRACE:
            return False
    return True


def _latest_etag(store: Store, model: str) -> str | None:
    """The ETag of ``LATEST`` as it is now, whatever it holds (None: absent)."""
    try:
        return store.read_etag(pointer_key(model), max_bytes=MAX_ENVELOPE_BYTES)[1]
    except ObjectNotFoundError:
        return None
    except VerificationError as exc:
        return exc.etag
