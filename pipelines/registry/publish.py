"""Publishing, rollback and pruning: files, manifest, signature, then the signed pointer.

Each step is a separate atomic write, and each version object is written once
(``create_only``), so a crash at any point leaves ``LATEST`` on a complete version and a
retry simply publishes the next version. The pointer is first recorded, write-once, under
``<model>/pointers/<sequence>.json``: that claims the sequence (two publishers cannot both
use it) and lets a retry find the highest sequence even when ``LATEST`` and ``LATEST.sig``
were interrupted between their two writes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.registry.errors import (
    ObjectExistsError,
    PublishError,
    VerificationError,
)
from pipelines.registry.manifest import (
    MANIFEST_SCHEMA,
    MAX_SEQUENCE,
    POINTER_SCHEMA,
    FileEntry,
    canonical_json,
    check_file_path,
    check_finite,
    check_model_name,
    format_version,
    sha256_hex,
    version_number,
)
from pipelines.registry.signing import KeyRing
from pipelines.registry.store import Store
from pipelines.registry.verify import (
    HISTORY,
    MANIFEST,
    SIG,
    VerifiedVersion,
    list_versions,
    pointer_key,
    read_pointer,
    verify_pointer_bytes,
    verify_version,
    version_prefix,
)

log = logging.getLogger(__name__)

StepHook = Callable[[str], None]
"""Called after each completed publish step with its name (``file:model.onnx``, ``manifest``,
``manifest_sig``, ``history``, ``history_sig``, ``pointer``, ``pointer_sig``, ``prune``).
Tests use it to interrupt a publish; production passes nothing."""

HISTORY_KEEP = 50
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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def _history_sequences(keys: list[str]) -> list[int]:
    seqs = []
    for key in keys:
        if not key.split("/")[-2:-1] == [HISTORY]:
            continue
        m = _HISTORY_RE.match(key.rsplit("/", 1)[-1])
        if m:
            seqs.append(int(m.group(1)))
    return sorted(seqs)


def _versions_in(keys: list[str], model: str) -> list[str]:
    names = {k.split("/")[1] for k in keys if k.count("/") >= 2 and k.startswith(f"{model}/")}
    found = [n for n in names if version_number(n) is not None]
    return sorted(found, key=lambda v: version_number(v) or 0)


def _current(store: Store, model: str, keyring: KeyRing, keys: list[str]) -> tuple[str | None, int]:
    """(live version or None, next sequence). Refuses to guess when nothing can be trusted.

    ``keys``: one listing of ``<model>/`` (listings are the slow call on S3).
    """
    live: str | None = None
    top = 0
    pointer_present = pointer_key(model) in keys
    if pointer_present:
        try:
            pointer, _, _ = read_pointer(store, model, keyring)
            live, top = pointer.version, pointer.sequence
        except VerificationError as exc:
            log.warning("current %s/LATEST does not verify (%s); using pointer history", model, exc)
    history = _history_sequences(keys)
    if history:
        top = max(top, history[-1])
    if pointer_present and top == 0:
        raise PublishError(
            f"{store.uri}/{model}/LATEST exists but does not verify and there is no pointer "
            "history: refusing to guess the next sequence"
        )
    if live is None:  # LATEST torn between its two writes: the newest signed history entry
        for seq in reversed(history):
            key = f"{model}/{HISTORY}/{seq:012d}.json"
            try:
                data, sig = store.read(key), store.read(key + SIG)
                live = verify_pointer_bytes(data, sig, model, keyring).version
                break
            except Exception:
                continue
    if top + 1 > MAX_SEQUENCE:
        raise PublishError(f"{model}: pointer sequence exhausted")
    return live, top + 1


def write_pointer(
    store: Store,
    model: str,
    version: str,
    manifest_sha256: str,
    keyring: KeyRing,
    sequence: int,
    on_step: StepHook | None = None,
) -> None:
    """Sign and write the pointer: history entry (write-once), then ``LATEST``, ``LATEST.sig``."""
    signer = keyring.signer()
    doc = {
        "schema": POINTER_SCHEMA,
        "model": model,
        "version": version,
        "sequence": sequence,
        "manifest_sha256": manifest_sha256,
        "key_id": signer.key_id,
        "algorithm": signer.algorithm,
        "key_check": signer.key_check,
        "created_at": _now(),
    }
    data = canonical_json(doc)
    sig = keyring.sign(data)
    step = on_step or (lambda _name: None)
    hist = f"{model}/{HISTORY}/{sequence:012d}.json"
    try:
        store.write(hist, data, create_only=True)
    except ObjectExistsError:
        raise PublishError(
            f"{model}: sequence {sequence} was taken by a concurrent publish; retry"
        ) from None
    step("history")
    store.write(hist + SIG, sig, create_only=True)
    step("history_sig")
    store.write(pointer_key(model), data)
    step("pointer")
    store.write(pointer_key(model) + SIG, sig)
    step("pointer_sig")


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
    on_step: StepHook | None = None,
) -> PublishedVersion:
    """Publish ``files`` as the next version of ``model`` and make it live.

    ``files``: ``{name: path or bytes}`` or a list of paths (published under their names).
    ``inputs``/``outputs``/``opset`` default to what the ONNX file (``model.onnx`` or the only
    ``.onnx``) declares. Metrics, gates and lineage go into the signed manifest as given.
    Older versions beyond ``keep_last`` (never the live one) are pruned after the pointer moved.
    """
    check_model_name(model)
    if keep_last < 1:
        raise PublishError("keep_last must be at least 1")
    signer = keyring.signer()  # fail before writing anything
    blobs = _collect_files(files)
    onnx_names = [n for n in blobs if n.endswith(".onnx")]
    primary = (
        "model.onnx" if "model.onnx" in blobs else (onnx_names[0] if len(onnx_names) == 1 else None)
    )
    described: dict[str, Any] = {"inputs": [], "outputs": [], "opset": None}
    if primary is not None and (inputs is None or outputs is None or opset is None):
        try:
            described = describe_onnx(blobs[primary])
        except Exception as exc:
            raise PublishError(f"{primary} is not a readable ONNX model: {exc}") from None

    keys = store.list_keys(model)
    previous, sequence = _current(store, model, keyring, keys)
    existing = [version_number(v) or 0 for v in _versions_in(keys, model)]
    version = format_version(max(existing, default=0) + 1)
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
        raise PublishError(f"{prefix} is being written by a concurrent publish: {exc}") from None
    digest = sha256_hex(manifest_bytes)
    write_pointer(store, model, version, digest, keyring, sequence, on_step)
    log.info("published %s/%s sequence %d to %s", model, version, sequence, store.uri)
    pruned = prune(store, model, keep_last, live=version, keys=[*keys, f"{prefix}/{MANIFEST}{SIG}"])
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
    )


def rollback(
    store: Store,
    model: str,
    keyring: KeyRing,
    to: str | None = None,
    on_step: StepHook | None = None,
) -> PublishedVersion:
    """Point ``LATEST`` (with a new, higher sequence) at an older, fully verified version.

    Without ``to``: the newest version older than the live one that verifies. Nothing is
    deleted, so a rollback can itself be rolled forward.
    """
    check_model_name(model)
    keyring.signer()
    live, sequence = _current(store, model, keyring, store.list_keys(model))
    live_n = version_number(live) if live else None
    target: VerifiedVersion | None = None
    if to is not None:
        if to == live:
            raise PublishError(f"{model}/{to} is already live")
        target = verify_version(store, model, to, keyring)
    else:
        candidates = [
            v
            for v in reversed(list_versions(store, model))
            if live_n is None or (version_number(v) or 0) < live_n
        ]
        for v in candidates:
            try:
                target = verify_version(store, model, v, keyring)
                break
            except VerificationError as exc:
                log.warning("rollback: skipping %s/%s: %s", model, v, exc)
        if target is None:
            raise PublishError(f"{model}: no older verified version to roll back to")
    write_pointer(store, model, target.version, target.manifest_sha256, keyring, sequence, on_step)
    log.info("rolled %s back from %s to %s (sequence %d)", model, live, target.version, sequence)
    return PublishedVersion(
        store_uri=store.uri,
        model=model,
        version=target.version,
        sequence=sequence,
        manifest_sha256=target.manifest_sha256,
        files=tuple(target.entries),
        previous_version=live,
    )


def prune(
    store: Store, model: str, keep_last: int, live: str, keys: list[str] | None = None
) -> list[str]:
    """Delete versions beyond the newest ``keep_last`` complete ones (never ``live``, never
    newer ones); interrupted, unsigned version folders older than ``live`` go too.

    A version is deleted signature first, so a half-deleted folder never looks complete.
    Pointer history is trimmed to the newest ``HISTORY_KEEP`` entries. ``keys``: a listing of
    ``<model>/`` already made by the caller (saves a slow S3 listing).
    """
    keys = store.list_keys(model) if keys is None else keys
    versions = _versions_in(keys, model)
    live_n = version_number(live) or 0
    complete = [v for v in versions if f"{version_prefix(model, v)}/{MANIFEST}{SIG}" in keys]
    keep = set(complete[-keep_last:]) | {live}
    doomed = [v for v in versions if v not in keep and (version_number(v) or 0) < live_n]
    for v in doomed:
        prefix = version_prefix(model, v)
        store.delete(f"{prefix}/{MANIFEST}{SIG}")
        store.delete(f"{prefix}/{MANIFEST}")
        for key in keys:
            if key.startswith(prefix + "/") and key[len(prefix) + 1 :] not in RESERVED:
                store.delete(key)
        log.info("pruned %s/%s", model, v)
    for seq in _history_sequences(keys)[:-HISTORY_KEEP]:
        key = f"{model}/{HISTORY}/{seq:012d}.json"
        store.delete(key + SIG)
        store.delete(key)
    return doomed
