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
import re
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
    RegistryError,
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
    sha256_hex,
    version_number,
)
from pipelines.registry.onnx_check import check_loadable, parse_onnx, refuse_external_data
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store
from pipelines.registry.verify import (
    HISTORY,
    MANIFEST,
    SIG,
    check_fresh,
    pointer_key,
    read_pointer_raw,
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
_MAX_VERSION_SKIPS = 1000
RESERVED = (MANIFEST, MANIFEST + SIG)
_HISTORY_RE = re.compile(r"^(\d{12})\.json$")


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


def _history_sequences(keys: list[str], model: str) -> list[int]:
    seqs = []
    prefix = f"{model}/{HISTORY}/"
    for key in keys:
        if not key.startswith(prefix):
            continue
        m = _HISTORY_RE.fullmatch(key[len(prefix) :])
        if m:
            seqs.append(int(m.group(1)))
    return sorted(seqs)


def _version_folders(keys: list[str], model: str) -> dict[str, set[str]]:
    """Version folder name -> names of the objects in it, from one listing of ``<model>/``."""
    out: dict[str, set[str]] = {}
    for k in keys:
        parts = k.split("/", 2)
        if len(parts) == 3 and parts[0] == model and version_number(parts[1]) is not None:
            out.setdefault(parts[1], set()).add(parts[2])
    return out


def _history_key(model: str, sequence: int) -> str:
    return f"{model}/{HISTORY}/{sequence:012d}.json"


def _read_history(store: Store, model: str, keyring: KeyRing, seq: int) -> Pointer:
    key = _history_key(model, seq)
    data = store.read(key, max_bytes=MAX_ENVELOPE_BYTES)
    sig = None
    if b'"payloadType"' not in data:  # legacy history entry: document + .sig
        sig = store.read(key + SIG, max_bytes=MAX_SIG_BYTES)
    pointer = verify_pointer_bytes(data, sig, model, keyring, what=key)
    if pointer.sequence != seq:
        raise VerificationError(f"{key} carries sequence {pointer.sequence}")
    return pointer


@dataclass
class StoreState:
    """What the publisher may believe about one model: only what verified.

    ``etag`` is the ETag of ``LATEST`` as read (whatever it holds), the precondition of the
    pointer compare-and-swap.
    """

    model: str
    keys: list[str]
    pointer: Pointer | None = None
    etag: str | None = None
    newest_history: Pointer | None = None
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, set[str]] = field(default_factory=dict)

    @property
    def live(self) -> str | None:
        if self.pointer is not None:
            return self.pointer.version
        return self.newest_history.version if self.newest_history else None

    @property
    def top_sequence(self) -> int:
        seqs = [p.sequence for p in (self.pointer, self.newest_history) if p is not None]
        return max(seqs, default=0)

    @property
    def floor(self) -> str | None:
        newest = max(
            (p for p in (self.pointer, self.newest_history) if p is not None),
            key=lambda p: p.sequence,
            default=None,
        )
        return newest.floor if newest else None

    def newest_verified_number(self) -> int:
        numbers = [version_number(v) or 0 for v in self.verified]
        for p in (self.pointer, self.newest_history):
            if p is not None:
                numbers.append(version_number(p.version) or 0)
        return max(numbers, default=0)


def read_state(store: Store, model: str, keyring: KeyRing, *, manifests: bool = True) -> StoreState:
    """One fresh listing of ``<model>/``, the verified pointer and the verified manifests.

    Unsigned folders, junk history entries and an unverifiable ``LATEST`` are ignored (and
    logged), so nothing an attacker without a key writes can move the next version or
    sequence.
    """
    keys = store.list_keys(model)
    state = StoreState(model=model, keys=keys, folders=_version_folders(keys, model))
    try:
        data, sig, state.etag = read_pointer_raw(store, model)
        state.pointer = verify_pointer_bytes(data, sig, model, keyring)
    except ObjectNotFoundError:
        pass
    except VerificationError as exc:
        # a refused object (FIFO, symlink, oversized) still has an ETag to swap it away with
        state.etag = state.etag or exc.etag
        if state.etag is not None:
            log.warning("%s/LATEST does not verify (%s); ignoring it", model, exc)
    for seq in reversed(_history_sequences(keys, model)):
        try:
            state.newest_history = _read_history(store, model, keyring, seq)
            break
        except (VerificationError, ObjectNotFoundError) as exc:
            log.warning("%s: ignoring pointer history entry %d: %s", model, seq, exc)
    if manifests:
        for version, names in state.folders.items():
            if MANIFEST not in names or MANIFEST + SIG not in names:
                continue
            try:
                state.verified[version] = verify_manifest(store, model, version, keyring)[0]
            except (VerificationError, ObjectNotFoundError) as exc:
                log.warning("%s/%s: manifest does not verify, ignoring it: %s", model, version, exc)
    return state


def _next_sequence(state: StoreState, start_sequence: int | None) -> int:
    top = state.top_sequence
    if top == 0 and start_sequence is None:
        if state.verified:
            raise PublishError(
                f"{state.model}: signed versions exist ({', '.join(sorted(state.verified))}) but "
                "no pointer verifies (LATEST and its history were deleted or damaged): refusing "
                "to restart the sequence at 1, which consumers would refuse as a replay; "
                "pass the sequence to continue from explicitly"
            )
        if state.etag is not None:
            raise PublishError(
                f"{state.model}/LATEST exists but does not verify and there is no verified "
                "pointer history: refusing to guess the next sequence"
            )
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


def _next_version(state: StoreState) -> str:
    number = state.newest_verified_number() + 1
    for _ in range(_MAX_VERSION_SKIPS):
        try:
            name = format_version(number)
        except ValueError:
            raise PublishError(f"{state.model}: version numbers exhausted") from None
        if name not in state.folders:
            return name
        number += 1  # an interrupted publish (or junk) left this folder: never reuse it
    raise PublishError(f"{state.model}: {_MAX_VERSION_SKIPS} unsigned version folders in a row")


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
) -> Pointer:
    """Sign one envelope, claim its sequence in the history, then compare-and-swap ``LATEST``.

    Raises :class:`ConcurrentPublishError` when another publisher claimed the sequence or
    moved ``LATEST`` since ``expected_etag`` was read; nothing is overwritten then.
    """
    signer = keyring.signer()
    created = datetime.now(UTC)
    payload_doc = {
        "schema": POINTER_SCHEMA,
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
    if ttl <= timedelta(0):
        raise PublishError("pointer ttl must be positive")
    payload = canonical_json(payload_doc)
    sig = keyring.sign(pae(POINTER_PAYLOAD_TYPE, payload)).decode("ascii")
    envelope = make_envelope(payload, signer.key_id, sig)
    step = on_step or (lambda _name: None)
    hist = _history_key(model, sequence)
    try:
        store.write(hist, envelope, create_only=True)
    except ObjectExistsError:
        try:
            _read_history(store, model, keyring, sequence)
        except (VerificationError, ObjectNotFoundError):
            # junk planted at our sequence (no key can have made it): remove it, claim again
            log.warning("%s: replacing an unverifiable history entry %d", model, sequence)
            store.delete(hist)
            try:
                store.write(hist, envelope, create_only=True)
            except ObjectExistsError:
                raise ConcurrentPublishError(
                    f"{model}: sequence {sequence} was taken by a concurrent publish; retry"
                ) from None
        else:
            raise ConcurrentPublishError(
                f"{model}: sequence {sequence} was taken by a concurrent publish; retry"
            ) from None
    step("history")
    try:
        store.swap(pointer_key(model), envelope, expected_etag)
    except PreconditionFailedError as exc:
        # Our history entry names a sequence LATEST never took: remove it, or the history
        # would stand above LATEST and read as a replayed pointer (heartbeat, verify --state).
        # Nothing references it; a publisher that already counted it just skips a number.
        store.delete(hist)
        raise ConcurrentPublishError(
            f"{model}/LATEST was moved by a concurrent publish ({exc}); nothing was overwritten"
        ) from None
    step("pointer")
    if store.exists(pointer_key(model) + SIG):  # the legacy two-file form is superseded
        store.delete(pointer_key(model) + SIG)
    return verify_pointer_bytes(envelope, None, model, keyring)


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
) -> PublishedVersion:
    """Publish ``files`` as the next version of ``model`` and make it live.

    ``files``: ``{name: path or bytes}`` or a list of paths (published under their names).
    The model file (``model.onnx`` or the only ``.onnx``) must exist, be self-contained (no
    external data) and load in onnxruntime: nothing a consumer cannot load is signed.
    ``inputs``/``outputs``/``opset`` default to what it declares. ``approve``: record this
    version as the operator-approved rollback floor. ``start_sequence``: continue the
    sequence from there when signed versions exist but every pointer was lost. Older
    versions beyond ``keep_last`` are pruned after the pointer moved (see :func:`prune`).
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

    state = read_state(store, model, keyring)
    sequence = _next_sequence(state, start_sequence)
    version = _next_version(state)
    previous = state.live
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
    )
    log.info("published %s/%s sequence %d to %s", model, version, sequence, store.uri)
    pruned = prune(store, model, keep_last, keyring)
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
) -> PublishedVersion:
    """An operator's rollback: a new pointer (higher sequence) to an older, verified version.

    Without ``to``: the live manifest's ``previous_version`` (the version that was live
    before it), never "the newest one that still verifies", which someone damaging newer
    versions could steer. The target becomes the approved floor; a target below the current
    floor is refused unless ``below_floor``. Nothing is deleted. Only ever called on an
    explicit operator command, never by a health check.
    """
    check_model_name(model)
    keyring.signer()
    state = read_state(store, model, keyring, manifests=False)
    live = state.live
    sequence = _next_sequence(state, None)
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
) -> PublishedVersion:
    """Re-sign a fresh pointer (``kind: heartbeat``) to the version ``LATEST`` names now.

    For models the scheduled run did not retrain, so consumers can tell a quiet store from a
    frozen one. It never blesses what it cannot verify: ``LATEST`` must verify, must be the
    newest verified pointer (not a replayed older one), must not have expired unless an
    operator says so (``renew_expired``: after an outage, once they checked the store), and
    every file of its version must verify.
    """
    check_model_name(model)
    keyring.signer()
    state = read_state(store, model, keyring, manifests=False)
    pointer = state.pointer
    if pointer is None:
        raise PublishError(f"{model}/LATEST does not verify: a heartbeat re-signs nothing")
    if state.newest_history is not None and state.newest_history.sequence > pointer.sequence:
        raise PublishError(
            f"{model}/LATEST has sequence {pointer.sequence} but the history holds "
            f"{state.newest_history.sequence}: LATEST was replaced by an older pointer"
        )
    try:
        check_fresh(pointer, now)
    except VerificationError as exc:
        if not renew_expired:
            raise PublishError(
                f"{model}: {exc}; an operator renews it explicitly (heartbeat --renew-expired), "
                "publishes or rolls back"
            ) from None
    target = verify_version(
        store, model, pointer.version, keyring, expected_manifest_sha256=pointer.manifest_sha256
    )
    sequence = _next_sequence(state, None)
    fresh = write_pointer(
        store,
        model,
        keyring,
        version=pointer.version,
        manifest_sha256=pointer.manifest_sha256,
        sequence=sequence,
        expected_etag=state.etag,
        kind="heartbeat",
        previous=pointer.version,
        floor=pointer.floor,
        ttl=ttl,
    )
    log.info(
        "heartbeat %s/%s sequence %d until %s", model, pointer.version, sequence, fresh.expires
    )
    return PublishedVersion(
        store_uri=store.uri,
        model=model,
        version=pointer.version,
        sequence=sequence,
        manifest_sha256=pointer.manifest_sha256,
        files=tuple(target.entries),
        previous_version=pointer.version,
        kind="heartbeat",
        expires=fresh.expires,
    )


def prune(store: Store, model: str, keep_last: int, keyring: KeyRing) -> list[str]:
    """Delete old versions that rollback can do without, from a fresh listing.

    Only versions whose manifests verify are counted and deleted; the newest ``keep_last``
    of them, the live one, the previously live one, the approved floor and everything newer
    than the live one are kept. Interrupted folders (no manifest signature) older than the
    live version go too. Runs under the pointer lock where the store has one (files), and
    stops if ``LATEST`` moves meanwhile (S3), so it never deletes a concurrent rollback's
    target. A version is deleted signature first: a half-deleted folder never looks signed.
    """
    if keep_last < 1:
        raise PublishError("keep_last must be at least 1")
    with store.locked(pointer_key(model)):
        state = read_state(store, model, keyring)
        if state.pointer is None:
            return []  # without a verified live pointer nothing is known to be safe to delete
        live = state.pointer.version
        live_n = version_number(live) or 0
        verified = sorted(state.verified, key=lambda v: version_number(v) or 0)
        keep = set(verified[-keep_last:]) | {live}
        keep |= {v for v in (state.pointer.previous, state.pointer.floor) if v}
        doomed = [v for v in verified if v not in keep and (version_number(v) or 0) < live_n]
        partial = [
            v
            for v, names in state.folders.items()
            if MANIFEST + SIG not in names and (version_number(v) or 0) < live_n
        ]
        deleted: list[str] = []
        for v in sorted(doomed + partial, key=lambda v: version_number(v) or 0):
            try:
                _, _, etag = read_pointer_raw(store, model)
            except RegistryError:
                break
            if etag != state.etag:
                log.info("%s: LATEST moved during pruning; stopping", model)
                break
            prefix = version_prefix(model, v)
            store.delete(f"{prefix}/{MANIFEST}{SIG}")
            store.delete(f"{prefix}/{MANIFEST}")
            for name in state.folders.get(v, set()):
                if name not in RESERVED:
                    store.delete(f"{prefix}/{name}")
            deleted.append(v)
            log.info("pruned %s/%s", model, v)
        oldest_kept = state.pointer.sequence - HISTORY_KEEP
        for seq in _history_sequences(state.keys, model):
            if seq <= oldest_kept:
                key = _history_key(model, seq)
                store.delete(key + SIG)
                store.delete(key)
    return deleted
