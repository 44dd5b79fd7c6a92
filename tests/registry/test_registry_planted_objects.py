"""Objects an attacker with write access to a file store plants to stop the publisher.

A socket where a pointer, a history entry or a manifest should be, and a lock file held by
another process: found by a cold attacker's try (publish, heartbeat and rollback failed with
"read failed: No such device or address" for good, and a held lock hung them forever)."""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from registry_support import make_onnx

from pipelines.registry import (
    KeyRing,
    ModelClient,
    Store,
    StoreError,
    UnsafeObjectError,
    heartbeat,
    publish_model,
    verify_model,
)
from pipelines.registry import store as store_module
from pipelines.registry.errors import PublishError

FILE_ONLY = pytest.mark.parametrize("store_uri", ["file"], indirect=True)


@contextmanager
def _socket_at(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(path.parent)  # a relative bind: AF_UNIX paths are limited to ~108 bytes
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path.name)
    finally:
        os.chdir(cwd)
    try:
        yield
    finally:
        sock.close()


def _publish(store: Store, keyring: KeyRing, seed: int) -> str:
    return publish_model(store, "regime", {"model.onnx": make_onnx(seed=seed)}, keyring).version


@FILE_ONLY
@pytest.mark.parametrize("where", ["history", "manifest", "latest"])
def test_a_planted_socket_never_stops_publish_or_heartbeat(
    store: Store, keyring: KeyRing, tmp_path: Path, where: str
) -> None:
    _publish(store, keyring, 0)
    root = tmp_path / "store" / "regime"
    target = {
        "history": root / "pointers" / "000000000999.json",
        "manifest": root / "v000007" / "manifest.json",
        "latest": root / "LATEST",
    }[where]
    if where == "latest":
        target.unlink()
    if where == "manifest":
        (root / "v000007").mkdir()
        (root / "v000007" / "manifest.json.sig").write_bytes(b"")
    with _socket_at(target):
        with pytest.raises(UnsafeObjectError, match="regular file"):
            store.read(str(target.relative_to(tmp_path / "store")))
        v = _publish(store, keyring, 1)
        assert verify_model(store, "regime", keyring).version == v
        beat = heartbeat(store, "regime", keyring)
        assert beat.version == v
        client = ModelClient(store, "regime", keyring, tmp_path / "cache")
        client.refresh()
        assert client.version == v


@FILE_ONLY
def test_a_held_lock_fails_the_publish_in_bounded_time_and_names_it(
    store: Store, keyring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _publish(store, keyring, 0)
    lock = tmp_path / "store" / "regime" / ".lock-LATEST"
    lock.touch()
    fd = os.open(lock, os.O_RDONLY)  # a read-only descriptor is enough to hold a flock
    fcntl.flock(fd, fcntl.LOCK_EX)
    monkeypatch.setattr(store_module, "LOCK_WAIT_S", 0.5)
    out: dict[str, BaseException] = {}

    def attempt() -> None:
        try:
            _publish(store, keyring, 1)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=attempt, daemon=True)
    try:
        t.start()
        t.join(30)  # generous: the wait itself is 0.5 s; this only catches a hang
        assert not t.is_alive(), "publish hung on a held lock"
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    err = out.get("error")
    assert isinstance(err, (StoreError, PublishError)), err
    assert ".lock-LATEST" in str(err) and "held" in str(err)
    assert verify_model(store, "regime", keyring).version == first  # nothing moved
    assert _publish(store, keyring, 2) != first  # and the next publish goes through
