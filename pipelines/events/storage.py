"""Where event logs come from and where the ingested state lives: a folder or an S3 prefix.

Two small interfaces keep the rest of ``pipelines.events`` storage-agnostic:

* :class:`EventSource` lists the bot's log files and reads one from a byte offset (what
  incremental ingestion needs: an appended file is read from where the last run stopped).
* :class:`StateStorage` holds the ingested state (Parquet parts, the commit record) as keyed
  blobs with an atomic whole-object write. A local folder writes via a temporary name and
  ``os.replace``; an S3 ``PutObject`` is atomic by itself. So a stateless cloud run can keep
  its state under an S3 prefix with the same code as a local run.

S3 access goes through a boto3 client passed in (no credentials or environment are read).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from configs.events import EventsConfig

#: File names a source lists as event logs.
LOG_SUFFIXES: tuple[str, ...] = (".jsonl.gz", ".jsonl")


@dataclass(frozen=True)
class SourceFile:
    """One log file of a source: its name relative to the source root and its size."""

    name: str
    size: int


class EventSource(Protocol):
    """A folder or prefix of the bot's gzip JSON-lines logs."""

    def describe(self) -> str:
        """Where the logs are, for messages (a path or an s3:// URI)."""
        ...

    def list_files(self) -> list[SourceFile]:
        """Every log file (``LOG_SUFFIXES``), sorted by name."""
        ...

    def read_from(self, name: str, offset: int) -> bytes:
        """The bytes of ``name`` from ``offset`` to its current end."""
        ...


class StateStorage(Protocol):
    """Keyed blobs (``/``-separated keys) with atomic whole-object writes."""

    def describe(self) -> str:
        """Where the state is, for messages."""
        ...

    def read(self, key: str) -> bytes | None:
        """The blob at ``key``, or None when there is none."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Replace the blob at ``key`` atomically (a reader sees the old or the new bytes)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        ...


def _is_log(name: str) -> bool:
    return name.endswith(LOG_SUFFIXES)


class FolderSource:
    """Log files under a local folder (recursively); nothing in it is ever written."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def list_files(self) -> list[SourceFile]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"events source {self.root}: not a folder")
        out = [
            SourceFile(p.relative_to(self.root).as_posix(), p.stat().st_size)
            for p in self.root.rglob("*")
            if p.is_file() and _is_log(p.name)
        ]
        return sorted(out, key=lambda f: f.name)

    def read_from(self, name: str, offset: int) -> bytes:
        with open(self.root / name, "rb") as fh:
            fh.seek(offset)
            return fh.read()


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, 'some/prefix/') (prefix '' for a bucket)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/") if prefix else ""


class S3Source:
    """Log objects under an S3 prefix, read with ranged GETs."""

    def __init__(self, client: Any, uri: str) -> None:
        self.client = client
        self.uri = uri
        self.bucket, self.prefix = split_s3_uri(uri)

    def describe(self) -> str:
        return self.uri

    def list_files(self) -> list[SourceFile]:
        out: list[SourceFile] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"][len(self.prefix) :]
                if _is_log(name):
                    out.append(SourceFile(name, int(obj["Size"])))
        return sorted(out, key=lambda f: f.name)

    def read_from(self, name: str, offset: int) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + name}
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
        body: bytes = self.client.get_object(**kwargs)["Body"].read()
        return body


class LocalStorage:
    """State under a local folder; writes go through a temporary file and ``os.replace``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )


class S3Storage:
    """State under an S3 prefix (each PutObject replaces the whole object atomically)."""

    def __init__(self, client: Any, uri: str) -> None:
        self.client = client
        self.uri = uri
        self.bucket, self.prefix = split_s3_uri(uri)

    def describe(self) -> str:
        return self.uri

    def read(self, key: str) -> bytes | None:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)[
                "Body"
            ].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return body

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def list(self, prefix: str) -> list[str]:
        out: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        for page in pages:
            out.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        return sorted(out)


def open_source(cfg: EventsConfig, client: Any = None) -> EventSource | None:
    """The configured log source (None for ``source: none``); s3 needs a boto3 client."""
    if cfg.source == "none":
        return None
    if cfg.source == "folder":
        if cfg.path is None:
            raise ValueError("events.source 'folder' needs events.path")
        return FolderSource(cfg.path)
    if client is None:
        raise ValueError("events.source 's3' needs an S3 client")
    return S3Source(client, str(cfg.s3_uri))


def open_state(cfg: EventsConfig, default_root: Path, client: Any = None) -> StateStorage:
    """Where the ingested state lives: ``state_uri`` (a path or s3://) or ``default_root``
    (``<workdir>/data/events``)."""
    uri = cfg.state_uri
    if uri is None:
        return LocalStorage(default_root)
    if uri.startswith("s3://"):
        if client is None:
            raise ValueError("an s3:// events.state_uri needs an S3 client")
        return S3Storage(client, uri)
    return LocalStorage(Path(uri))
