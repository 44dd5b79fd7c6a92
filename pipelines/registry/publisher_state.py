"""The publisher's own memory of what it signed, kept outside the store it signs for.

Everything in the store can be rewritten or deleted by someone with write access and no key:
``LATEST`` replaced by an older envelope, newer history entries deleted. Signed documents
cannot be forged, but they can be withheld, and a publisher that derives its next sequence
and its live version only from what is left would sign a rollback (heartbeat) or reuse a
sequence the fleet already accepted (a split fleet: running bots refuse it, fresh bots load
it). So a publisher with a state folder records, per store and model, fsynced before
``LATEST`` moves:

- ``claimed``: the highest sequence it ever claimed (never reused, even after a lost
  compare-and-swap or a crash);
- ``envelope``: the last pointer it made (or was making) live, the exact signed bytes, so it
  is re-verified with the key ring on every read (a damaged file is refused, not trusted);
- ``max_version``: the highest version folder it ever created.

A publisher without a state folder (``state_dir=None``) falls back to verified history alone;
``docs/manifest.md`` says what that leaves open.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipelines.registry.errors import PublishError, RegistryError
from pipelines.registry.manifest import (
    MODEL_RE,
    Pointer,
    canonical_json,
    check_model_name,
    format_version,
    version_number,
)
from pipelines.registry.signing import KeyRing
from pipelines.registry.verify import verify_pointer_bytes

STATE_SCHEMA = "edgeflow.publisher-state/1"
MAX_STATE_BYTES = 128 << 10


@dataclass(frozen=True)
class PublisherRecord:
    """What this publisher signed for one model of one store (verified on read)."""

    claimed: int
    pointer: Pointer | None
    envelope: bytes | None
    max_version: int


def state_file(state_dir: Path, store_uri: str, model: str) -> Path:
    """``<state_dir>/<sha256(store uri)[:16]>/<model>.json``: one file per store and model."""
    digest = hashlib.sha256(store_uri.encode("utf-8")).hexdigest()[:16]
    return Path(state_dir) / digest / f"{check_model_name(model)}.json"


def challenger_state_dir(state_dir: Path | None) -> Path | None:
    """Where the publisher records the ``CHALLENGER`` pointers it signed: a folder of its own
    under ``state_dir``, so the two sequences never share a record and listing the models
    with a record (``recorded_models``) is unchanged."""
    return None if state_dir is None else Path(state_dir) / "challenger"


def recorded_models(state_dir: Path | None, store_uri: str) -> list[str]:
    """The models this publisher holds a record for in ``store_uri`` (sorted).

    Listing a store shows only what is still in it: a model whose whole folder was deleted
    vanishes from ``list_models`` and would be skipped by verify, heartbeat and health alike.
    The publisher's records outlive the store's contents, so the models it signed for are
    checked (and fail by name) even when nothing of them is left in the store.
    """
    if state_dir is None:
        return []
    folder = state_file(state_dir, store_uri, "x").parent
    try:
        names = [p.name for p in folder.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in names:
        stem, dot, ext = name.rpartition(".")
        if dot and ext == "json" and MODEL_RE.fullmatch(stem):
            out.append(stem)
    return sorted(out)


def read_record(
    state_dir: Path | None,
    store_uri: str,
    model: str,
    keyring: KeyRing,
    *,
    challenger: bool = False,
) -> PublisherRecord | None:
    """The record, or None when there is none yet; :class:`PublishError` for a damaged one
    (refusing is safer than forgetting what was signed). ``challenger``: the record of the
    ``CHALLENGER`` pointer (kept in its own folder, see ``challenger_state_dir``)."""
    if state_dir is None:
        return None
    path = state_file(state_dir, store_uri, model)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PublishError(f"publisher state {path}: cannot open ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PublishError(f"publisher state {path}: not a regular file")
        raw = os.read(fd, MAX_STATE_BYTES + 1)
    finally:
        os.close(fd)
    try:
        doc = json.loads(raw.decode("utf-8"))
        if doc.get("schema") != STATE_SCHEMA or doc.get("store") != store_uri:
            raise ValueError("schema or store differs")
        if doc.get("model") != model:
            raise ValueError("model differs")
        claimed = doc["claimed"]
        if not isinstance(claimed, int) or isinstance(claimed, bool) or claimed < 0:
            raise ValueError("claimed is not a non-negative integer")
        max_version = version_number(doc["max_version"]) if doc["max_version"] else 0
        if max_version is None:
            raise ValueError("max_version is not a version name")
        envelope = doc["envelope"].encode("utf-8") if doc["envelope"] else None
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise PublishError(
            f"publisher state {path} is damaged ({exc}); restore it or move it away after "
            "checking the store by hand"
        ) from None
    pointer = None
    if envelope is not None:
        try:
            pointer = verify_pointer_bytes(
                envelope, None, model, keyring, what=str(path), challenger=challenger
            )
        except RegistryError as exc:
            raise PublishError(
                f"publisher state {path}: its pointer does not verify: {exc}"
            ) from None
    return PublisherRecord(
        claimed=max(claimed, pointer.sequence if pointer else 0),
        pointer=pointer,
        envelope=envelope,
        max_version=max_version,
    )


def write_record(
    state_dir: Path | None, store_uri: str, model: str, record: PublisherRecord
) -> None:
    """Temp file, fsync, rename, fsync the folder (the record survives a crash)."""
    if state_dir is None:
        return
    path = state_file(state_dir, store_uri, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = canonical_json(
        {
            "schema": STATE_SCHEMA,
            "store": store_uri,
            "model": model,
            "claimed": record.claimed,
            "envelope": record.envelope.decode("utf-8") if record.envelope else None,
            "max_version": format_version(record.max_version) if record.max_version else None,
        }
    )
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise PublishError(
            f"publisher state {path}: cannot write ({exc.strerror}); nothing was made live"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
