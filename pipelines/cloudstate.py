"""State sync for stateless cloud runs: the workdir's ``data/``, ``state/`` and
``publisher-state/`` in S3.

A scheduled GitHub runner starts with an empty workdir. Everything a run needs from the
runs before it lives in three folders: ``data/`` (the bar store with its per-symbol
watermarks, the event store with its per-file watermarks and pending decisions), ``state/``
(the last-training record that ``training.min_new_bars`` is judged against) and
``publisher-state/`` (what the publisher signed: see ``SYNCED_DIRS``). :func:`pull_state`
copies them from ``s3://bucket/prefix/state/`` before a run and :func:`push_state` copies
them back after it, so the next runner continues where this one stopped.

Both ends keep a manifest (``_manifest.json``: relative path -> size and sha256) so only
changed files travel. A push deletes only remote files that the remote manifest lists (files
this sync wrote) and that are gone locally; anything else under the prefix is never touched.
Every push bumps the manifest's ``generation``; a push refuses to overwrite a generation other
than the one its workdir pulled (another run pushed in between), so two overlapping runs
cannot silently lose each other's bars or watermarks.

S3 access goes through a boto3 client passed in; nothing here reads the environment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The workdir folders that carry state between runs. ``publisher-state`` is the signing
#: publisher's record of what it signed (``pipelines.registry.publisher_state``): without it
#: every scheduled runner would publish and heartbeat as a stateless publisher, which
#: someone who rewrites the store can lead into re-signing an older version at a sequence
#: the fleet already accepted. Its records are verified with the key ring on every read, so
#: a writer of the state location can delete or roll them back (back to stateless) or damage
#: them (publishing refuses until an operator looks), never make them name a forged pointer.
SYNCED_DIRS: tuple[str, ...] = ("data", "state", "publisher-state")
#: Remote manifest key under ``<prefix>/state/``.
MANIFEST_KEY = "_manifest.json"
#: Local record of the generation a workdir was pulled at (outside the synced folders).
PULLED_RECORD = ".cloudstate.json"
_FORMAT = 1


class StateConflictError(RuntimeError):
    """The remote state changed since this workdir pulled it (another run pushed)."""


@dataclass(frozen=True)
class SyncResult:
    """What one pull or push moved."""

    uri: str
    generation: int
    transferred: list[str] = field(default_factory=list)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "generation": self.generation,
            "transferred": len(self.transferred),
            "unchanged": self.unchanged,
            "deleted": len(self.deleted),
            "bytes": self.bytes,
        }


def state_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, 'some/prefix/state/')."""
    if not uri.startswith("s3://"):
        raise ValueError(f"state uri must be s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in state uri {uri!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/state/" if prefix else "state/"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local_files(workdir: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of every synced file; temporary dot-files are skipped."""
    for top in SYNCED_DIRS:
        root = workdir / top
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and not any(
                p.startswith(".") for p in path.relative_to(workdir).parts
            ):
                yield path.relative_to(workdir).as_posix(), path


def local_manifest(workdir: Path) -> dict[str, dict[str, Any]]:
    """Relative path -> {size, sha256} of the workdir's synced files."""
    return {
        rel: {"size": path.stat().st_size, "sha256": _sha256(path)}
        for rel, path in _local_files(Path(workdir))
    }


def _read_manifest(client: Any, bucket: str, prefix: str) -> dict[str, Any]:
    try:
        body = client.get_object(Bucket=bucket, Key=prefix + MANIFEST_KEY)["Body"].read()
    except client.exceptions.NoSuchKey:
        return {"format": _FORMAT, "generation": 0, "files": {}}
    manifest: dict[str, Any] = json.loads(body)
    if manifest.get("format") != _FORMAT:
        raise ValueError(
            f"s3://{bucket}/{prefix}{MANIFEST_KEY}: unsupported format {manifest.get('format')!r}"
        )
    return manifest


def _pulled(workdir: Path) -> tuple[int | None, set[str]]:
    """The generation this workdir last pulled or pushed, and the files that state listed."""
    path = workdir / PULLED_RECORD
    if not path.is_file():
        return None, set()
    doc = json.loads(path.read_text(encoding="utf-8"))
    return int(doc["generation"]), set(doc.get("files", ()))


def _record_pulled(workdir: Path, uri: str, generation: int, files: list[str]) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / PULLED_RECORD
    tmp = path.with_name(path.name + ".tmp")
    doc = {"uri": uri, "generation": generation, "files": sorted(files)}
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(path)


def pull_state(client: Any, uri: str, workdir: Path) -> SyncResult:
    """Bring the workdir's synced folders (``SYNCED_DIRS``) up to the remote state.

    Files the remote manifest lists are downloaded unless the local copy has the same size
    and sha256; a downloaded file is checked against the manifest before it replaces the
    local one. A local file the state this workdir last synced listed, and the remote no
    longer lists, was deleted by a later run and is deleted here too; other local files are
    left alone (a first run against an empty prefix keeps what it has and pushes it).
    """
    workdir = Path(workdir)
    bucket, prefix = state_prefix(uri)
    manifest = _read_manifest(client, bucket, prefix)
    _, synced = _pulled(workdir)
    removed = sorted(synced - set(manifest["files"]))
    for rel in removed:
        (workdir / rel).unlink(missing_ok=True)
    have = local_manifest(workdir)
    moved: list[str] = []
    size = 0
    for rel, meta in sorted(manifest["files"].items()):
        if have.get(rel) == meta:
            continue
        body: bytes = client.get_object(Bucket=bucket, Key=prefix + rel)["Body"].read()
        if len(body) != meta["size"] or hashlib.sha256(body).hexdigest() != meta["sha256"]:
            raise ValueError(
                f"s3://{bucket}/{prefix}{rel}: content does not match {MANIFEST_KEY} "
                f"(size {len(body)} vs {meta['size']})"
            )
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.pull")
        tmp.write_bytes(body)
        tmp.replace(path)
        moved.append(rel)
        size += len(body)
    generation = int(manifest["generation"])
    _record_pulled(workdir, uri, generation, list(manifest["files"]))
    unchanged = len(manifest["files"]) - len(moved)
    return SyncResult(uri, generation, moved, unchanged, removed, size)


def push_state(client: Any, uri: str, workdir: Path) -> SyncResult:
    """Upload the workdir's changed files of ``SYNCED_DIRS``, then the manifest.

    Raises :class:`StateConflictError` when the remote generation is not the one this
    workdir pulled (or, never pulled, when the remote already holds state). Remote files of
    the previous manifest that no longer exist locally are deleted after the new manifest is
    written, so a reader never sees a manifest naming a missing file.
    """
    workdir = Path(workdir)
    bucket, prefix = state_prefix(uri)
    remote = _read_manifest(client, bucket, prefix)
    pulled, _ = _pulled(workdir)
    current = int(remote["generation"])
    if (pulled if pulled is not None else 0) != current:
        raise StateConflictError(
            f"{uri}: remote state is at generation {current} but {workdir} pulled "
            f"{'nothing' if pulled is None else pulled}; another run pushed in between "
            "(pull again and re-run)"
        )
    local = local_manifest(workdir)
    moved: list[str] = []
    size = 0
    for rel, meta in local.items():
        if remote["files"].get(rel) == meta:
            continue
        client.put_object(Bucket=bucket, Key=prefix + rel, Body=(workdir / rel).read_bytes())
        moved.append(rel)
        size += int(meta["size"])
    gone = sorted(set(remote["files"]) - set(local))
    generation = current + 1
    if moved or gone:
        doc = {"format": _FORMAT, "generation": generation, "files": local}
        client.put_object(
            Bucket=bucket,
            Key=prefix + MANIFEST_KEY,
            Body=json.dumps(doc, indent=1, sort_keys=True).encode(),
        )
        for rel in gone:
            client.delete_object(Bucket=bucket, Key=prefix + rel)
        _record_pulled(workdir, uri, generation, list(local))
    else:
        generation = current
    return SyncResult(uri, generation, moved, len(local) - len(moved), gone, size)
