"""One small object-store interface over a local folder, S3 (or any S3-compatible server), memory.

Keys are ``/``-separated paths relative to the store root. Every write is atomic for readers
(a reader sees the old object or the complete new one, never a partial one), and
``create_only`` writes fail with :class:`ObjectExistsError` instead of overwriting, which is
how published version folders are kept immutable.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from pipelines.registry.errors import ObjectExistsError, ObjectNotFoundError, StoreError

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"


class Store(Protocol):
    """What the registry needs from a store; nothing more."""

    uri: str

    def read(self, key: str) -> bytes:
        """The object's bytes, or :class:`ObjectNotFoundError`."""
        ...

    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        """Atomically store ``data``; with ``create_only`` refuse to replace an object."""
        ...

    def exists(self, key: str) -> bool: ...

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix`` (sorted)."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (full keys, sorted)."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object; a missing object is not an error."""
        ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid store key {key!r}")
    return key


class FileStore:
    """A folder: writes go to a temporary file, are fsynced, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = f"file://{self.root}"

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFoundError(f"{self.uri}/{key}: not found") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if create_only:
                try:
                    os.link(tmp, path)  # atomic, and fails if the target exists
                except FileExistsError:
                    raise ObjectExistsError(f"{self.uri}/{key}: already exists") from None
            else:
                os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def list_dirs(self, prefix: str) -> list[str]:
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith(_TMP_PREFIX):
                out.append(p.relative_to(self.root).as_posix())
        return sorted(out)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class S3Store:
    """``s3://BUCKET/PREFIX`` through a boto3 client (AWS, MinIO, moto, any S3-compatible).

    A single ``PutObject`` is atomic for readers; ``create_only`` uses ``If-None-Match: *``
    so the server refuses to overwrite an existing object.
    """

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _err(self, exc: Exception) -> str:
        return (
            str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) or type(exc).__name__
        )

    def read(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(resp["Body"].read())
        except ClientError as exc:
            if self._err(exc) in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFoundError(f"{self.uri}/{key}: not found") from None
            raise StoreError(f"{self.uri}/{key}: read failed: {self._err(exc)}") from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._err(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise StoreError(f"{self.uri}/{key}: head failed: {self._err(exc)}") from exc
        return True

    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        from botocore.exceptions import ClientError

        extra: dict[str, str] = {"IfNoneMatch": "*"} if create_only else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        except ClientError as exc:
            code = self._err(exc)
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise ObjectExistsError(f"{self.uri}/{key}: already exists") from None
            raise StoreError(f"{self.uri}/{key}: write failed: {code}") from exc

    def _list(self, prefix: str, delimiter: bool) -> tuple[list[str], list[str]]:
        full = (
            self._key(prefix.strip("/")) + "/"
            if prefix.strip("/")
            else (f"{self.prefix}/" if self.prefix else "")
        )
        keys: list[str] = []
        dirs: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        if delimiter:
            kwargs["Delimiter"] = "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(**kwargs):
            keys.extend(o["Key"] for o in page.get("Contents", []))
            dirs.extend(
                p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", [])
            )
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[strip:] for k in keys), sorted(d for d in dirs if d)

    def list_dirs(self, prefix: str) -> list[str]:
        # Derived from keys, not CommonPrefixes: some S3-compatible servers keep reporting a
        # prefix whose objects were all deleted in a versioned bucket (delete markers).
        p = prefix.strip("/")
        base = f"{p}/" if p else ""
        names = {k[len(base) :].split("/")[0] for k in self.list_keys(p) if "/" in k[len(base) :]}
        return sorted(names)

    def list_keys(self, prefix: str) -> list[str]:
        return self._list(prefix, delimiter=False)[0]

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


class MemoryStore:
    """A dict: for tests and fuzzing, same semantics as the others."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uri = "memory://"
        self._lock = threading.Lock()

    def read(self, key: str) -> bytes:
        try:
            return self.objects[_check_key(key)]
        except KeyError:
            raise ObjectNotFoundError(f"memory://{key}: not found") from None

    def exists(self, key: str) -> bool:
        return _check_key(key) in self.objects

    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        with self._lock:
            if create_only and _check_key(key) in self.objects:
                raise ObjectExistsError(f"memory://{key}: already exists")
            self.objects[_check_key(key)] = bytes(data)

    def list_dirs(self, prefix: str) -> list[str]:
        p = prefix.strip("/") + "/" if prefix.strip("/") else ""
        names = {
            k[len(p) :].split("/")[0]
            for k in self.objects
            if k.startswith(p) and "/" in k[len(p) :]
        }
        return sorted(names)

    def list_keys(self, prefix: str) -> list[str]:
        p = prefix.strip("/") + "/" if prefix.strip("/") else ""
        return sorted(k for k in self.objects if k.startswith(p))

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(_check_key(key), None)


def open_store(uri: str, endpoint_url: str | None = None, s3_client: Any = None) -> Store:
    """``file://PATH`` (or a bare path) or ``s3://BUCKET[/PREFIX]``.

    ``endpoint_url`` selects an S3-compatible server; when ``None`` boto3 applies its own
    configuration chain (``AWS_ENDPOINT_URL``, profiles), so this module reads no environment.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"{uri}: an s3 store needs a bucket: s3://BUCKET/PREFIX")
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3", endpoint_url=endpoint_url)
        return S3Store(parsed.netloc, parsed.path, s3_client)
    if parsed.scheme == "file":
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        if not path:
            raise StoreError(f"{uri}: a file store needs a path: file:///abs/path or file://rel")
        return FileStore(Path(path))
    if parsed.scheme == "":
        return FileStore(Path(uri))
    raise StoreError(f"{uri}: unsupported store scheme {parsed.scheme!r} (use file:// or s3://)")
