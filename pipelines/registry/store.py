"""One small object-store interface over a local folder, S3 (or any S3-compatible server), memory.

Keys are ``/``-separated paths relative to the store root. Every write is atomic for readers
(a reader sees the old object or the complete new one, never a partial one), and
``create_only`` writes fail with :class:`ObjectExistsError` instead of overwriting, which is
how published version folders are kept immutable. Reads are bounded *while reading*
(``max_bytes``), and :meth:`Store.swap` is a compare-and-swap on an object's ETag, which is
how concurrent publishers are kept from losing each other's pointer updates.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from pipelines.registry.errors import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    PreconditionFailedError,
    StoreError,
    UnsafeObjectError,
)

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
_LOCK_PREFIX = ".lock-"
#: How long a writer waits for a file store's pointer lock before it gives up with an error
#: naming the lock: anyone who can read the lock file can take it, so waiting forever would
#: let them stop every publish and heartbeat without a word.
LOCK_WAIT_S = 120.0
_CHUNK = 1 << 20
_SWAP_READ_LIMIT = 64 << 20  # a swap compares content up to this size, else by stat


def _too_large(uri: str, key: str, limit: int, etag: str | None = None) -> ObjectTooLargeError:
    exc = ObjectTooLargeError(f"{uri}/{key} is larger than its limit of {limit} bytes")
    exc.etag = etag
    return exc


def content_etag(data: bytes) -> str:
    """The ETag a file or memory store reports: sha256 of the content."""
    return hashlib.sha256(data).hexdigest()


class Store(Protocol):
    """What the registry needs from a store; nothing more."""

    uri: str

    def read(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes, or :class:`ObjectNotFoundError`; at most ``max_bytes``, else
        :class:`ObjectTooLargeError` (raised once ``max_bytes + 1`` bytes were read)."""
        ...

    def read_etag(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        """Bytes and the ETag to pass to :meth:`swap`."""
        ...

    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        """Atomically store ``data``; with ``create_only`` refuse to replace an object."""
        ...

    def swap(self, key: str, data: bytes, expected_etag: str | None) -> None:
        """Replace ``key`` only if its ETag is still ``expected_etag`` (``None``: only if it
        does not exist); else :class:`PreconditionFailedError`."""
        ...

    def locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        """Hold the writer lock of ``key`` where the store has one (file stores)."""
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

    def modified_at(self, key: str) -> datetime | None:
        """When the object was last written (the store's clock), or None if it is absent."""
        ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid store key {key!r}")
    return key


def _lstat_mode(path: Path) -> int:
    """The entry's mode, or 0 (neither folder nor file: skipped) when a concurrent writer
    removed it between the folder listing and this look (pruning by another publisher)."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0


def _open_error(uri: str, key: str, exc: OSError) -> Exception:
    """What a failed open of a stored object means to a reader."""
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return UnsafeObjectError(f"{uri}/{key} is a symlink: refused")
    if exc.errno == errno.EISDIR:
        return ObjectNotFoundError(f"{uri}/{key}: not found")
    if exc.errno in (errno.ENXIO, errno.EACCES, errno.EPERM):
        # a socket (ENXIO) or an object this process may not read is junk planted in the
        # store, like a FIFO: refused as unsafe, so readers skip it as they skip any junk,
        # instead of a store error that stops publish and heartbeat
        return UnsafeObjectError(
            f"{uri}/{key} cannot be read as a regular file ({exc.strerror}): refused"
        )
    return StoreError(f"{uri}/{key}: read failed: {exc.strerror}")


def _flock_within(fd: int, wait_s: float, name: str) -> None:
    """Take an exclusive flock on ``fd`` within ``wait_s`` seconds, else a store error."""
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{name}: lock held by another process for over {wait_s:g} s: a writer that "
                    "hangs, or someone holding it on purpose; nothing was written"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class FileStore:
    """A folder: writes go to a temporary file, are fsynced, then renamed into place.

    Nothing is followed: every folder on a key's path below the root must be a real folder
    and the object a regular file (a symlink, FIFO or device is :class:`UnsafeObjectError`),
    files are opened ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO never blocks), and reads stop at
    ``max_bytes + 1``. :meth:`swap` holds an exclusive ``flock`` on ``.lock-<name>`` next to
    the object; the kernel drops it when the process dies, so a crash leaves no stale lock.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = f"file://{self.root}"
        self._held: set[str] = set()
        self._held_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    def _check_parents(self, key: str, create: bool = False) -> Path:
        """The object's path, after checking each folder below the root is a real folder."""
        parts = _check_key(key).split("/")
        cur = self.root
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        for part in parts[:-1]:
            cur = cur / part
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                if not create:
                    raise ObjectNotFoundError(f"{self.uri}/{key}: not found") from None
                try:
                    os.mkdir(cur)
                except FileExistsError:
                    pass
                st = os.lstat(cur)
            except NotADirectoryError:
                raise ObjectNotFoundError(f"{self.uri}/{key}: not found") from None
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeObjectError(
                    f"{self.uri}/{key}: {cur.relative_to(self.root)} is not a plain folder "
                    "(symlink or special file): refused"
                )
        return cur / parts[-1]

    def read(self, key: str, max_bytes: int | None = None) -> bytes:
        if not self.root.exists():
            raise ObjectNotFoundError(f"{self.uri}/{key}: not found")
        path = self._check_parents(key)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(f"{self.uri}/{key}: not found") from None
        except OSError as exc:
            raise _open_error(self.uri, key, exc) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                if stat.S_ISDIR(st.st_mode):
                    raise ObjectNotFoundError(f"{self.uri}/{key}: not found")
                raise UnsafeObjectError(
                    f"{self.uri}/{key} is not a regular file (FIFO, device or socket): refused"
                )
            if max_bytes is not None and st.st_size > max_bytes:
                raise _too_large(self.uri, key, max_bytes)
            chunks: list[bytes] = []
            total = 0
            while True:
                want = _CHUNK if max_bytes is None else min(_CHUNK, max_bytes + 1 - total)
                chunk = os.read(fd, want) if want > 0 else b""
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise _too_large(self.uri, key, max_bytes)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read_etag(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        """Bytes and ETag; a refused object (symlink, FIFO, too large) raises with an
        ``etag`` attribute, so a publisher can still compare-and-swap it away."""
        try:
            data = self.read(key, max_bytes)
        except (UnsafeObjectError, ObjectTooLargeError) as exc:
            exc.etag = self._stat_etag(key)
            raise
        return data, content_etag(data)

    def _stat_etag(self, key: str) -> str | None:
        """An ETag for an object that is not read: type, inode, size and mtime."""
        try:
            st = os.lstat(self._path(key))
        except OSError:
            return None
        return f"stat:{st.st_mode:o}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"

    def _current_etag(self, key: str, expected: str | None) -> str | None:
        if expected is not None and expected.startswith("stat:"):
            return self._stat_etag(key)  # the caller saw a refused object: compare like it
        try:
            return content_etag(self.read(key, max_bytes=_SWAP_READ_LIMIT))
        except ObjectNotFoundError:
            return None
        except (UnsafeObjectError, ObjectTooLargeError):
            return self._stat_etag(key)

    def exists(self, key: str) -> bool:
        try:
            st = os.lstat(self._path(key))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode)

    def modified_at(self, key: str) -> datetime | None:
        try:
            st = os.lstat(self._path(key))
        except (OSError, StoreError):
            return None
        return datetime.fromtimestamp(st.st_mtime, UTC)

    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        path = self._check_parents(key, create=True)
        tmp = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if create_only:
                try:
                    os.link(tmp, path, follow_symlinks=False)  # atomic, fails if it exists
                except FileExistsError:
                    raise ObjectExistsError(f"{self.uri}/{key}: already exists") from None
            else:
                _remove_planted_dir(path, self.uri, key)
                os.replace(tmp, path)  # replaces a symlink itself, never its target
            _fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        path = self._check_parents(key, create=True)
        # re-entrant per thread only: another thread sharing this store must wait for the
        # flock (a second descriptor's flock conflicts with ours even in one process)
        lock_key = f"{threading.get_ident()}:{path}"
        with self._held_guard:
            reentrant = lock_key in self._held
            if not reentrant:
                self._held.add(lock_key)
        if reentrant:
            yield
            return
        lock_path = path.parent / f"{_LOCK_PREFIX}{path.name}"
        try:
            fd = _open_lock(lock_path, self.uri, key)
        except BaseException:
            with self._held_guard:
                self._held.discard(lock_key)
            raise
        try:
            where = lock_path.relative_to(self.root).as_posix()  # names the model
            _flock_within(fd, LOCK_WAIT_S, f"{self.uri}/{where}")
            yield
        finally:
            os.close(fd)  # releases the flock
            with self._held_guard:
                self._held.discard(lock_key)

    def swap(self, key: str, data: bytes, expected_etag: str | None) -> None:
        with self.locked(key):
            current = self._current_etag(key, expected_etag)
            if current != expected_etag:
                raise PreconditionFailedError(
                    f"{self.uri}/{key} changed since it was read (concurrent writer)"
                )
            self.write(key, data)

    def list_dirs(self, prefix: str) -> list[str]:
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir() or base.is_symlink():
            return []
        return sorted(
            p.name
            for p in base.iterdir()
            if not p.name.startswith(".") and stat.S_ISDIR(_lstat_mode(p))
        )

    def list_unsafe_entries(self, prefix: str, *, files: bool = False) -> list[str]:
        """Names directly under ``prefix`` that are neither a real folder nor a regular file
        (with ``files``: that are not a real folder, where only folders belong: the root).

        A symlink, FIFO, device or socket is never followed, but a listing that skipped it
        would let someone with write access hide a model (replace its folder by a symlink or
        a file and ``verify`` reports the rest all OK); callers list these so verification
        refuses them by name (``unsafe-object``).
        """
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir() or base.is_symlink():
            return []
        out = []
        for p in base.iterdir():
            mode = _lstat_mode(p)
            if mode == 0:  # removed since the listing (a concurrent prune): not there
                continue
            if not p.name.startswith(".") and not (
                stat.S_ISDIR(mode) or (stat.S_ISREG(mode) and not files)
            ):
                out.append(p.name)
        return sorted(out)

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir() or base.is_symlink():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith((_TMP_PREFIX, _LOCK_PREFIX)):
                    continue
                out.append((Path(dirpath) / name).relative_to(self.root).as_posix())
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            path = self._check_parents(key)
        except ObjectNotFoundError:
            return
        _remove_planted_dir(path, self.uri, key)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()  # a symlink is removed itself, never its target
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
            parent = parent.parent


_LOCK_TRIES = 4


def _open_lock(lock_path: Path, uri: str, key: str) -> int:
    """A descriptor on the regular lock file at ``lock_path``, created if absent.

    Only a regular file is ever a lock: anything else at its name (a folder, symlink, FIFO,
    socket or device) was planted and would block every publish, heartbeat and rollback of
    the key (a socket cannot even be opened: ENXIO), so it is removed, never followed, with
    a log line naming it, and the lock created in its place. Re-planted between the removal
    and the open, it is removed again, a bounded number of times."""
    last = "not a regular file"
    for _ in range(_LOCK_TRIES):
        _clear_planted_lock(lock_path, uri, key)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EMLINK):
                last = exc.strerror or str(exc)
                continue  # re-planted since it was cleared: clear it again
            raise StoreError(f"{uri}/{key}: cannot open its lock: {exc.strerror}") from None
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        os.close(fd)  # a FIFO or device opened: not a lock either
    raise StoreError(
        f"{uri}/{lock_path.name}: something not a regular file was planted there again each "
        f"of {_LOCK_TRIES} times it was removed ({last}); nothing was written"
    )


def _clear_planted_lock(lock_path: Path, uri: str, key: str) -> None:
    """Remove whatever is at the lock's name unless it is a regular file (see
    :func:`_open_lock`); a symlink is removed itself, never its target."""
    try:
        st = lock_path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        log.warning("%s/%s: a folder at its lock file was planted; removed", uri, key)
        shutil.rmtree(lock_path, ignore_errors=True)  # fd-based: symlinks are not followed
        return
    what = (
        "a symlink"
        if stat.S_ISLNK(st.st_mode)
        else "a FIFO"
        if stat.S_ISFIFO(st.st_mode)
        else "a socket"
        if stat.S_ISSOCK(st.st_mode)
        else "a device or other special file"
    )
    log.warning("%s/%s: %s at its lock file %s was planted; removed", uri, key, what, lock_path)
    lock_path.unlink(missing_ok=True)


def _remove_planted_dir(path: Path, uri: str, key: str) -> None:
    """A real folder where an object belongs is junk someone planted (no writer makes one):
    removed with its content, never following a symlink, so it cannot block the key."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        log.warning("%s/%s is a folder where an object belongs: removing it", uri, key)
        shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: symlinks are not followed


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


_UNREADABLE_CODES = frozenset(
    {
        "InvalidObjectState",  # archived (GLACIER, DEEP_ARCHIVE) and not restored
        "AccessDenied",  # another account's object, a bucket policy or KMS key refusing it
        "403",
        "InvalidRequest",  # stored with SSE-C: readable only with the customer's key
        "InvalidArgument",  # SSE-C headers required and absent
    }
)
"""GET error codes of an object that exists but that this reader may not read."""


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
        self._cas_ok = False

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _err(self, exc: Exception) -> str:
        return (
            str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) or type(exc).__name__
        )

    def _get(self, key: str, max_bytes: int | None) -> tuple[bytes, str]:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            code = self._err(exc)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFoundError(f"{self.uri}/{key}: not found") from None
            if code in _UNREADABLE_CODES or code.startswith("KMS."):
                # an object that exists but nobody here may GET (archived, encrypted with a
                # customer key or a KMS key this reader cannot use, another account's):
                # junk planted in the store, like an unreadable file or a socket on a file
                # store, skipped or replaced by name, never a store error that stops
                # publish and heartbeat for good
                unsafe = UnsafeObjectError(
                    f"{self.uri}/{key} exists but cannot be read ({code}): refused"
                )
                unsafe.etag = self._head_etag(key)
                raise unsafe from None
            raise StoreError(f"{self.uri}/{key}: read failed: {code}") from exc
        body = resp["Body"]
        etag = str(resp.get("ETag", ""))
        try:
            if max_bytes is not None and int(resp.get("ContentLength") or 0) > max_bytes:
                raise _too_large(self.uri, key, max_bytes, etag)
            chunks: list[bytes] = []
            total = 0
            while True:
                want = _CHUNK if max_bytes is None else min(_CHUNK, max_bytes + 1 - total)
                chunk = body.read(want) if want > 0 else b""
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise _too_large(self.uri, key, max_bytes, etag)
        finally:
            body.close()
        return b"".join(chunks), etag

    def _head_etag(self, key: str) -> str | None:
        """The ETag of an object that cannot be read (to compare-and-swap it away), or None
        where even its metadata is refused."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError):
            return None
        return str(resp.get("ETag", "")) or None

    def read(self, key: str, max_bytes: int | None = None) -> bytes:
        return self._get(key, max_bytes)[0]

    def read_etag(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        return self._get(key, max_bytes)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._err(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise StoreError(f"{self.uri}/{key}: head failed: {self._err(exc)}") from exc
        return True

    def modified_at(self, key: str) -> datetime | None:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._err(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StoreError(f"{self.uri}/{key}: head failed: {self._err(exc)}") from exc
        when = resp.get("LastModified")
        return when.astimezone(UTC) if isinstance(when, datetime) else None

    def _put(self, key: str, data: bytes, **conditions: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **conditions)
        except ClientError as exc:
            code = self._err(exc)
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise PreconditionFailedError(
                    f"{self.uri}/{key}: condition failed ({code}): changed by a concurrent writer"
                ) from None
            if code in ("NoSuchKey", "404") and "IfMatch" in conditions:
                raise PreconditionFailedError(
                    f"{self.uri}/{key}: deleted by a concurrent writer"
                ) from None
            raise StoreError(f"{self.uri}/{key}: write failed: {code}") from exc

    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        if not create_only:
            self._put(key, data)
            return
        self.check_conditional_writes()
        try:
            self._put(key, data, IfNoneMatch="*")
        except PreconditionFailedError:
            raise ObjectExistsError(f"{self.uri}/{key}: already exists") from None

    def swap(self, key: str, data: bytes, expected_etag: str | None) -> None:
        self.check_conditional_writes()
        if expected_etag is None:
            self._put(key, data, IfNoneMatch="*")
        else:
            self._put(key, data, IfMatch=expected_etag)

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        yield  # S3 has no locks; the pointer is protected by If-Match instead

    def check_conditional_writes(self) -> None:
        """Refuse a server that ignores ``If-Match`` / ``If-None-Match`` (once per store).

        Such a server would let two publishers both "succeed" with one update silently lost.
        """
        if self._cas_ok:
            return
        probe = f".edgeflow-cas-probe/{uuid.uuid4().hex}"
        self._put(probe, b"probe")
        try:
            for cond in ({"IfMatch": '"00000000000000000000000000000000"'}, {"IfNoneMatch": "*"}):
                try:
                    self._put(probe, b"overwritten", **cond)
                except PreconditionFailedError:
                    continue
                raise StoreError(
                    f"{self.uri}: the server ignores conditional writes ({next(iter(cond))}); "
                    "refusing to publish, concurrent publishers could silently lose updates"
                )
        finally:
            self.delete(probe)
        self._cas_ok = True

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
        self.written: dict[str, datetime] = {}
        self.uri = "memory://"
        self._lock = threading.RLock()

    def read(self, key: str, max_bytes: int | None = None) -> bytes:
        try:
            data = self.objects[_check_key(key)]
        except KeyError:
            raise ObjectNotFoundError(f"memory://{key}: not found") from None
        if max_bytes is not None and len(data) > max_bytes:
            raise _too_large(self.uri, key, max_bytes, content_etag(data))
        return data

    def read_etag(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        data = self.read(key, max_bytes)
        return data, content_etag(data)

    def swap(self, key: str, data: bytes, expected_etag: str | None) -> None:
        with self._lock:
            cur = self.objects.get(_check_key(key))
            if (content_etag(cur) if cur is not None else None) != expected_etag:
                raise PreconditionFailedError(f"memory://{key} changed since it was read")
            self.objects[key] = bytes(data)
            self.written[key] = datetime.now(UTC)

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        yield

    def modified_at(self, key: str) -> datetime | None:
        return self.written.get(_check_key(key)) if key in self.objects else None

    def exists(self, key: str) -> bool:
        return _check_key(key) in self.objects

    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        with self._lock:
            if create_only and _check_key(key) in self.objects:
                raise ObjectExistsError(f"memory://{key}: already exists")
            self.objects[_check_key(key)] = bytes(data)
            self.written[key] = datetime.now(UTC)

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
