"""The ``CHALLENGER`` pointer: a signed version the bot shadows before it may go live.

A challenger is published like any version (files, manifest, signature, write-once) but the
pointer that names it is ``<model>/CHALLENGER``, not ``LATEST``: the same DSSE envelope, a
strictly increasing sequence of its own claimed write-once under
``<model>/challenger-pointers/<sequence>.json``, the same expiry, compare-and-swap and
publisher record (its own folder in the publisher state). Its payload schema is
``edgeflow.challenger/1``, so no verifier takes a challenger envelope for ``LATEST`` (or the
reverse): moving ``LATEST`` stays the only promotion. A challenger leaves by a signed
``withdraw`` envelope (refused, or promoted), never by deleting ``CHALLENGER``, so a consumer
that saw the withdrawal refuses the older challenger envelope someone puts back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.registry.errors import ObjectNotFoundError, PublishError, VerificationError
from pipelines.registry.manifest import (
    CHALLENGER_SCHEMA,
    MAX_ENVELOPE_BYTES,
    MAX_SEQUENCE,
    Pointer,
    check_model_name,
)
from pipelines.registry.publish import (
    DEFAULT_TTL,
    PointerSlot,
    PublishedVersion,
    StepHook,
    VersionFacts,
    _check_model_files,
    _collect_files,
    _next_sequence,
    _next_version,
    check_withheld_history,
    claim_and_swap,
    newest_pointer,
    prune,
    read_state,
    sign_pointer,
    top_sequence,
    write_pointer,
    write_version,
)
from pipelines.registry.publisher_state import PublisherRecord, challenger_state_dir, read_record
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store
from pipelines.registry.verify import (
    CHALLENGER,
    CHALLENGER_HISTORY,
    ChallengerView,
    challenger_history_key,
    challenger_key,
    check_fresh,
    history_sequences,
    read_challenger,
    verify_pointer_bytes,
    verify_version,
)

log = logging.getLogger(__name__)


@dataclass
class ChallengerState:
    """What the publisher may believe about one model's ``CHALLENGER``: only what verified.

    ``etag``: of ``CHALLENGER`` as read, junk included (the compare-and-swap precondition).
    """

    pointer: Pointer | None = None
    etag: str | None = None
    junk: str | None = None
    newest_history: Pointer | None = None
    local: PublisherRecord | None = None

    @property
    def newest(self) -> Pointer | None:
        """The verified challenger pointer with the highest sequence (store, history, record)."""
        local = self.local.pointer if self.local is not None else None
        return newest_pointer(self.newest_history, self.pointer, local)

    @property
    def top_sequence(self) -> int:
        return top_sequence(self.newest, self.local)


def _read_history(store: Store, model: str, keyring: KeyRing, seq: int) -> Pointer:
    key = challenger_history_key(model, seq)
    data = store.read(key, max_bytes=MAX_ENVELOPE_BYTES)
    pointer = verify_pointer_bytes(data, None, model, keyring, what=key, challenger=True)
    if pointer.sequence != seq:
        raise VerificationError(f"{key} carries sequence {pointer.sequence}")
    return pointer


CHALLENGER_SLOT = PointerSlot(
    name=CHALLENGER,
    schema=CHALLENGER_SCHEMA,
    history=CHALLENGER_HISTORY,
    label="challenger sequence",
    history_key=challenger_history_key,
    read_history=_read_history,
    record_dir=challenger_state_dir,
)
"""``CHALLENGER`` as the publisher writes it: the schema, history and record that keep its
sequence apart from ``LATEST``'s (see :class:`~pipelines.registry.publish.PointerSlot`)."""


def read_challenger_state(
    store: Store, model: str, keyring: KeyRing, *, state_dir: Path | None = None
) -> ChallengerState:
    """``CHALLENGER`` (if it verifies), its newest verified history entry and the record."""
    state = ChallengerState()
    try:
        data, state.etag = store.read_etag(challenger_key(model), max_bytes=MAX_ENVELOPE_BYTES)
        state.pointer = verify_pointer_bytes(data, None, model, keyring, challenger=True)
    except ObjectNotFoundError:
        pass
    except VerificationError as exc:
        state.etag = exc.etag if exc.etag is not None else state.etag
        state.junk = f"[{exc.code}] {exc}"
        log.warning("%s/%s is junk (%s): replaced by the next one signed", model, CHALLENGER, exc)
    listing = store.list_keys(f"{model}/{CHALLENGER_HISTORY}")
    for seq in reversed(history_sequences(listing, model, CHALLENGER_HISTORY)):
        try:
            state.newest_history = _read_history(store, model, keyring, seq)
            break
        except (VerificationError, ObjectNotFoundError) as exc:
            log.warning("%s: ignoring challenger history entry %d: %s", model, seq, exc)
    state.local = read_record(
        challenger_state_dir(state_dir), store.uri, model, keyring, challenger=True
    )
    return state


def write_challenger_pointer(
    store: Store,
    model: str,
    keyring: KeyRing,
    *,
    version: str,
    manifest_sha256: str,
    kind: str,
    previous: str | None,
    ttl: timedelta = DEFAULT_TTL,
    state_dir: Path | None = None,
) -> Pointer:
    """Sign one challenger envelope, claim its sequence, record it, then compare-and-swap
    ``CHALLENGER`` (as :func:`~pipelines.registry.publish.write_pointer` does for ``LATEST``).

    A failed swap is undone (history entry removed, record put back) before it is raised.
    """
    if ttl <= timedelta(0):
        raise PublishError("pointer ttl must be positive")
    keyring.signer()
    with store.locked(challenger_key(model)):
        state = read_challenger_state(store, model, keyring, state_dir=state_dir)
        sequence = state.top_sequence + 1
        if sequence > MAX_SEQUENCE:
            raise PublishError(f"{model}: challenger sequence exhausted")
        envelope = sign_pointer(
            keyring,
            CHALLENGER_SLOT,
            model,
            version=version,
            manifest_sha256=manifest_sha256,
            sequence=sequence,
            kind=kind,
            previous=previous,
            floor=None,
            ttl=ttl,
        )
        claim_and_swap(
            store,
            model,
            keyring,
            CHALLENGER_SLOT,
            envelope,
            version=version,
            sequence=sequence,
            expected_etag=state.etag,
            prior=state.local,
            state_dir=state_dir,
        )
    return verify_pointer_bytes(envelope, None, model, keyring, challenger=True)


def publish_challenger(
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
    ttl: timedelta = DEFAULT_TTL,
    on_step: StepHook | None = None,
    state_dir: Path | None = None,
) -> PublishedVersion:
    """Publish ``files`` as the next version of ``model`` under ``CHALLENGER``; ``LATEST``
    is not touched, so the fleet keeps serving the champion while the bot shadows this.

    The version folder is written and verified exactly as :func:`publish_model` writes it
    (its ``previous_version`` is the live champion); a challenger already standing is
    replaced by the newer envelope.
    """
    check_model_name(model)
    signer = keyring.signer()
    try:
        keyring.check_scope(signer.key_id, model, f"publish {model} challenger")
    except VerificationError as exc:
        raise PublishError(str(exc)) from None
    blobs = _collect_files(files)
    described = _check_model_files(blobs)
    state = read_state(store, model, keyring, state_dir=state_dir)
    check_withheld_history(store, state, keyring)
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
    pointer = write_challenger_pointer(
        store,
        model,
        keyring,
        version=version,
        manifest_sha256=written.manifest_sha256,
        kind="publish",
        previous=previous,
        ttl=ttl,
        state_dir=state_dir,
    )
    log.info("published %s/%s as challenger (sequence %d)", model, version, pointer.sequence)
    return PublishedVersion(
        store_uri=store.uri,
        model=model,
        version=version,
        sequence=pointer.sequence,
        manifest_sha256=written.manifest_sha256,
        files=written.entries,
        previous_version=previous,
        kind="challenger",
        expires=pointer.expires,
    )


def standing_challenger(
    store: Store,
    model: str,
    keyring: KeyRing,
    *,
    state_dir: Path | None = None,
    now: datetime | None = None,
) -> ChallengerView | None:
    """The challenger the publisher may judge: ``CHALLENGER`` verified end to end, a
    ``publish`` or ``heartbeat``, fresh, and the newest challenger pointer it knows of (an
    older envelope put back over a withdrawal is refused: :class:`PublishError`)."""
    cstate = read_challenger_state(store, model, keyring, state_dir=state_dir)
    newest = cstate.newest
    if newest is None:
        return None
    if cstate.pointer is None or cstate.pointer.sequence < newest.sequence:
        if newest.kind == "withdraw":
            return None
        raise PublishError(
            f"{model}/{CHALLENGER} is not the newest signed challenger pointer (sequence "
            f"{newest.sequence}, {newest.version}): it was replaced or a publish was "
            "interrupted; publish or withdraw the challenger again"
        )
    view = read_challenger(store, model, keyring, check_freshness=False)
    if view is None or view.version is None:
        return None
    check_fresh(view.pointer, now, name=CHALLENGER)
    return view


def withdraw_challenger(
    store: Store,
    model: str,
    keyring: KeyRing,
    *,
    ttl: timedelta = DEFAULT_TTL,
    state_dir: Path | None = None,
) -> Pointer | None:
    """Sign a ``withdraw`` over the standing challenger (None when none stands)."""
    cstate = read_challenger_state(store, model, keyring, state_dir=state_dir)
    newest = cstate.newest
    if newest is None or newest.kind == "withdraw":
        return None
    pointer = write_challenger_pointer(
        store,
        model,
        keyring,
        version=newest.version,
        manifest_sha256=newest.manifest_sha256,
        kind="withdraw",
        previous=newest.version,
        ttl=ttl,
        state_dir=state_dir,
    )
    log.info("%s: challenger %s withdrawn (sequence %d)", model, newest.version, pointer.sequence)
    return pointer


def promote_challenger(
    store: Store,
    model: str,
    keyring: KeyRing,
    *,
    expected_version: str | None = None,
    keep_last: int = 5,
    ttl: timedelta = DEFAULT_TTL,
    state_dir: Path | None = None,
    now: datetime | None = None,
) -> PublishedVersion:
    """Move ``LATEST`` to the standing challenger (a ``publish`` pointer: every consumer
    already accepts it), then withdraw ``CHALLENGER``.

    ``expected_version``: the challenger the shadow evidence is about; a different one
    standing now (republished meanwhile) is refused, so evidence about one version never
    promotes another. Its files are verified by hash before ``LATEST`` is signed.
    """
    view = standing_challenger(store, model, keyring, state_dir=state_dir, now=now)
    if view is None or view.version is None:
        raise PublishError(f"{model}: no challenger stands; nothing to promote")
    target = view.version
    if expected_version is not None and target.version != expected_version:
        raise PublishError(
            f"{model}: the standing challenger is {target.version}, not {expected_version} "
            "(the one the shadow decisions were made with); nothing was promoted"
        )
    verify_version(
        store, model, target.version, keyring, expected_manifest_sha256=target.manifest_sha256
    )
    state = read_state(store, model, keyring, manifests=False, state_dir=state_dir)
    sequence = _next_sequence(state, None)
    previous = state.live
    pointer = write_pointer(
        store,
        model,
        keyring,
        version=target.version,
        manifest_sha256=target.manifest_sha256,
        sequence=sequence,
        expected_etag=state.etag,
        kind="publish",
        previous=previous,
        floor=state.floor,
        ttl=ttl,
        state_dir=state_dir,
        prior=state.local,
    )
    withdraw_challenger(store, model, keyring, ttl=ttl, state_dir=state_dir)
    log.info("promoted challenger %s/%s to LATEST (sequence %d)", model, target.version, sequence)
    pruned = prune(store, model, keep_last, keyring, state_dir=state_dir)
    return PublishedVersion(
        store_uri=store.uri,
        model=model,
        version=target.version,
        sequence=sequence,
        manifest_sha256=target.manifest_sha256,
        files=tuple(target.entries),
        previous_version=previous,
        pruned=tuple(pruned),
        kind="promote",
        expires=pointer.expires,
    )
