"""The model store, round three: what a cold attacker with write access and no key still
found after round two, each on file:// and on S3 (moto, loopback) where it applies.

The principle under test is round two's: the publisher and the heartbeat derive what they
sign from verified history and their own persisted state; anything that does not verify or
cannot be read is junk, replaced under compare-and-swap with a log line naming it; no
planted object blocks publishing; a failed write leaves nothing that goes live later.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from registry_support import KEY_HEX, make_onnx

from pipelines.registry import (
    FileStore,
    KeyRing,
    ModelClient,
    PublishError,
    S3Store,
    Store,
    StoreError,
    UnsafeObjectError,
    VerificationError,
    heartbeat,
    publish_model,
    read_pointer,
    rollback,
    verify_model,
)
from pipelines.registry import store as store_module
from pipelines.registry.publisher_state import read_record
from pipelines.registry.verify import history_sequences

BOTH = pytest.mark.parametrize("store_uri", ["file", "s3"], indirect=True)
FILE_ONLY = pytest.mark.parametrize("store_uri", ["file"], indirect=True)


def _publish(store: Store, keyring: KeyRing, n: int, state: Path | None = None) -> list[Any]:
    return [
        publish_model(store, "regime", {"model.onnx": make_onnx(seed=s)}, keyring, state_dir=state)
        for s in range(n)
    ]


def _history(store: Store) -> list[int]:
    return history_sequences(store.list_keys("regime"), "regime")


def _assert_nothing_went_live(
    store: Store, keyring: KeyRing, tmp_path: Path, state: Path, live: str, seq: int
) -> None:
    """After a failed rollback: no history entry above LATEST, the record on the live
    pointer, a fresh bot serves the live version and the next heartbeat re-signs it."""
    assert read_pointer(store, "regime", keyring)[0].sequence == seq
    assert max(_history(store)) == seq, _history(store)
    record = read_record(state, store.uri, "regime", keyring)
    assert record is not None and record.pointer is not None
    assert (record.pointer.version, record.pointer.sequence) == (live, seq)
    client = ModelClient(store, "regime", keyring, tmp_path / "fresh-bot")
    client.refresh()
    assert client.version == live
    beat = heartbeat(store, "regime", keyring, state_dir=state)
    assert beat.version == live and beat.sequence > seq


# D4 -------------------------------------------------------------- a failed swap is undone
@BOTH
def test_a_pointer_swap_that_fails_for_any_reason_leaves_nothing_to_go_live(
    store: Store, keyring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a cold attacker: a swap that failed with anything but a precondition
    failure left the claimed history entry and the publisher record behind; the "failed"
    rollback was served by fresh bots and signed by the next heartbeat."""
    state = tmp_path / "publisher"
    _publish(store, keyring, 3, state)

    def broken_swap(key: str, data: bytes, expected_etag: str | None) -> None:
        raise StoreError(f"{store.uri}/{key}: write failed: InternalError")

    monkeypatch.setattr(store, "swap", broken_swap)
    with pytest.raises(PublishError, match="nothing was made live"):
        rollback(store, "regime", keyring, to="v000001", state_dir=state)
    monkeypatch.undo()
    _assert_nothing_went_live(store, keyring, tmp_path, state, "v000003", 3)


@FILE_ONLY
def test_a_held_pointer_lock_fails_the_rollback_before_anything_is_claimed(
    store: Store, keyring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker's repro: the lock held past LOCK_WAIT_S; "nothing was written" was
    false (the claimed entry went live at the next heartbeat)."""
    state = tmp_path / "publisher"
    _publish(store, keyring, 3, state)
    monkeypatch.setattr(store_module, "LOCK_WAIT_S", 0.3)
    lock = tmp_path / "store" / "regime" / ".lock-LATEST"
    lock.touch()
    fd = os.open(lock, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(
            StoreError, match=r"regime/\.lock-LATEST: lock held by another .*nothing was written"
        ):
            rollback(store, "regime", keyring, to="v000001", state_dir=state)
    finally:
        os.close(fd)
    _assert_nothing_went_live(store, keyring, tmp_path, state, "v000003", 3)
    assert verify_model(store, "regime", keyring, check_history=True).version == "v000003"


# D3 -------------------------------------------------------------- junk at the lock's name
@FILE_ONLY
@pytest.mark.parametrize("planted", ["socket", "fifo"])
def test_a_socket_or_fifo_at_the_lock_file_blocks_nothing(
    store: Store,
    keyring: KeyRing,
    tmp_path: Path,
    planted: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by a cold attacker: a unix socket at ``<model>/.lock-LATEST`` (open: ENXIO)
    stopped publish, heartbeat and rollback for good; only a regular file is a lock."""
    state = tmp_path / "publisher"
    _publish(store, keyring, 2, state)
    lock = tmp_path / "store" / "regime" / ".lock-LATEST"
    lock.unlink(missing_ok=True)
    sock = None
    if planted == "socket":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cwd = os.getcwd()
        os.chdir(lock.parent)  # a relative bind: AF_UNIX paths are limited to ~108 bytes
        try:
            sock.bind(lock.name)
        finally:
            os.chdir(cwd)
    else:
        os.mkfifo(lock)
    try:
        with caplog.at_level(logging.WARNING, logger="pipelines.registry.store"):
            pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=7)}, keyring)
        assert (pub.version, pub.sequence) == ("v000003", 3)
        assert f"a {planted.replace('fifo', 'FIFO')} at its lock file" in caplog.text
        assert lock.is_file() and not lock.is_symlink()
        stat_mode = lock.lstat().st_mode
        assert stat_mode & 0o170000 == 0o100000  # a regular file now
        assert heartbeat(store, "regime", keyring, state_dir=state).sequence == 4
        back = rollback(store, "regime", keyring, to="v000002", state_dir=state)
        assert (back.version, back.sequence) == ("v000002", 5)
    finally:
        if sock is not None:
            sock.close()


# D5 -------------------------------------------------------------- a file at a taken name
@BOTH
def test_an_object_at_the_next_version_name_is_skipped_not_reused(
    store: Store, keyring: KeyRing
) -> None:
    """Found by a cold attacker: a regular file at ``<model>/v<next>`` (on S3: an object
    whose key is the bare version name) was not counted as taking the name, so every
    publish chose it again and failed on the write."""
    _publish(store, keyring, 3)
    store.write("regime/v000004", b"junk")
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=8)}, keyring)
    assert (pub.version, pub.sequence) == ("v000005", 4)
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=9)}, keyring)
    assert (pub.version, pub.sequence) == ("v000006", 5)
    assert verify_model(store, "regime", keyring, check_history=True).version == "v000006"
    assert store.read("regime/v000004") == b"junk"  # never written into, never pruned


@FILE_ONLY
@pytest.mark.parametrize("planted", ["file", "fifo", "symlink"])
def test_junk_at_the_model_folder_fails_by_name_and_verify_lists_it(
    store: Store, keyring: KeyRing, tmp_path: Path, planted: str
) -> None:
    """A file (or FIFO) where ``<root>/<model>`` belongs hid the model from ``verify``
    (exit 0) while every publish failed on its first write; now verify fails by name and
    the publisher says what the operator does, and goes on once it is moved away."""
    from pipelines.registry import list_models

    state = tmp_path / "publisher"
    _publish(store, keyring, 2, state)
    root = tmp_path / "store"
    (root / "regime").rename(tmp_path / "regime.bak")
    if planted == "file":
        (root / "regime").write_bytes(b"junk")
    elif planted == "fifo":
        os.mkfifo(root / "regime")
    else:
        (root / "regime").symlink_to(tmp_path / "regime.bak")
    assert list_models(store) == ["regime"]
    with pytest.raises(VerificationError):
        verify_model(store, "regime", keyring)
    for attempt in (
        lambda: publish_model(
            store, "regime", {"model.onnx": make_onnx(seed=5)}, keyring, state_dir=state
        ),
        lambda: heartbeat(store, "regime", keyring, state_dir=state),
    ):
        with pytest.raises(PublishError, match=r"regime is not a folder.*Move it out"):
            attempt()
    (root / "regime").unlink()
    (tmp_path / "regime.bak").rename(root / "regime")
    pub = publish_model(
        store, "regime", {"model.onnx": make_onnx(seed=5)}, keyring, state_dir=state
    )
    assert (pub.version, pub.sequence) == ("v000003", 3)


# D2 -------------------------------------------------------------- objects nobody can read
def _plant_unreadable(store: Store, key: str) -> None:
    """An object that exists but cannot be read: on S3 an archived one (GET answers
    InvalidObjectState, like SSE-C, a foreign KMS key or another account's object on AWS),
    on a file store a unix socket (open answers ENXIO)."""
    if isinstance(store, S3Store):
        store.client.put_object(
            Bucket=store.bucket, Key=store._key(key), Body=b"x", StorageClass="GLACIER"
        )
        return
    assert isinstance(store, FileStore)
    path = store.root.joinpath(*key.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.getcwd()
    os.chdir(path.parent)  # a relative bind: AF_UNIX paths are limited to ~108 bytes
    try:
        sock.bind(path.name)
    finally:
        os.chdir(cwd)
    _SOCKETS.append(sock)


_SOCKETS: list[socket.socket] = []


@BOTH
@pytest.mark.parametrize("where", ["history", "next-history", "latest", "manifest"])
def test_an_object_nobody_can_read_is_junk_not_a_store_error(
    store: Store,
    keyring: KeyRing,
    tmp_path: Path,
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by a cold attacker: a GLACIER object at a history slot, at LATEST or as an old
    version's manifest.json raised a bare store error that publish, heartbeat and rollback
    did not treat as junk, so they failed for good while verify said OK."""
    state = tmp_path / "publisher"
    _publish(store, keyring, 3, state)
    key = {
        "history": "regime/pointers/000000000099.json",
        "next-history": "regime/pointers/000000000004.json",
        "latest": "regime/LATEST",
        "manifest": "regime/v000001/manifest.json",
    }[where]
    _plant_unreadable(store, key)
    with pytest.raises(UnsafeObjectError, match="cannot be read"):
        store.read(key)
    try:
        with caplog.at_level(logging.WARNING):
            pub = publish_model(
                store, "regime", {"model.onnx": make_onnx(seed=7)}, keyring, state_dir=state
            )
        assert (pub.version, pub.sequence) == ("v000004", 4)
        assert key.split("/", 1)[1] in caplog.text  # named in a log line
        beat = heartbeat(store, "regime", keyring, state_dir=state)
        assert (beat.version, beat.sequence) == ("v000004", 5)
        back = rollback(store, "regime", keyring, to="v000002", state_dir=state)
        assert (back.version, back.sequence) == ("v000002", 6)
        live = verify_model(store, "regime", keyring, check_history=True)
        assert (live.version, live.sequence) == ("v000002", 6)
        client = ModelClient(store, "regime", keyring, tmp_path / "fresh-bot")
        client.refresh()
        assert (client.version, client.sequence) == ("v000002", 6)
    finally:
        while _SOCKETS:
            _SOCKETS.pop().close()


# D6 -------------------------------------------------------------- health and models
@BOTH
def test_health_compares_latest_with_the_verified_history(store: Store, keyring: KeyRing) -> None:
    """Found by a cold attacker: with an older envelope copied over LATEST (history intact)
    health said the model verifies while ``verify`` failed with replay."""
    from flows.health import _store_checks

    _publish(store, keyring, 3)
    checks = {c["check"]: c for c in _store_checks(store, keyring, datetime.now(UTC), 48.0)}
    assert checks["verify:regime"]["ok"] is True
    store.write("regime/LATEST", store.read("regime/pointers/000000000002.json"))
    checks = {c["check"]: c for c in _store_checks(store, keyring, datetime.now(UTC), 48.0)}
    assert checks["verify:regime"]["ok"] is False
    assert checks["verify:regime"]["code"] == "replay"
    assert "holds sequence 3" in checks["verify:regime"]["detail"]
    heartbeat(store, "regime", keyring)  # re-signs from the verified history: repaired
    checks = {c["check"]: c for c in _store_checks(store, keyring, datetime.now(UTC), 48.0)}
    assert checks["verify:regime"]["ok"] is True
    assert "v000003 (sequence 4) verifies" in checks["verify:regime"]["detail"]


# D1 -------------------------------------------------------------- cloud publisher state
@BOTH
def test_a_cloud_publishers_state_travels_with_the_synced_state(
    store: Store, keyring: KeyRing, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The cloud deployment synced only data/ and state/, so every scheduled runner was a
    stateless publisher: with its newest history entry deleted and an older envelope over
    LATEST, the next run's heartbeat re-signed the older version at a sequence the fleet
    had already accepted. publisher-state/ now travels with the run-to-run state."""
    import boto3

    from pipelines.cloudstate import pull_state, push_state
    from pipelines.workdir import WorkdirLayout

    endpoint = request.getfixturevalue("s3_endpoint")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    state_uri = f"s3://{request.getfixturevalue('s3_bucket')}/cloud"
    first = WorkdirLayout(tmp_path / "runner-1")
    pull_state(client, state_uri, first.root)
    _publish(store, keyring, 2, first.publisher_state)  # sequences 1, 2: v000001, v000002
    push_state(client, state_uri, first.root)
    store.write("regime/LATEST", store.read("regime/pointers/000000000001.json"))
    store.delete("regime/pointers/000000000002.json")  # the attacker withholds sequence 2
    second = WorkdirLayout(tmp_path / "runner-2")  # the next scheduled run: an empty workdir
    pull_state(client, state_uri, second.root)
    beat = heartbeat(store, "regime", keyring, state_dir=second.publisher_state)
    assert (beat.version, beat.sequence) == ("v000002", 3)
    running = ModelClient(store, "regime", keyring, tmp_path / "bot")
    running.refresh()
    assert (running.version, running.sequence) == ("v000002", 3)


@BOTH
def test_models_compares_latest_with_the_verified_history(
    store: Store,
    store_uri: str,
    keyring: KeyRing,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Found by a cold attacker: with an older envelope copied over LATEST (history
    intact) ``edgeflow models`` printed the replayed sequence with exit 0, the one
    operators are told to configure as a bot's min_sequence, while ``verify`` failed with
    replay."""
    import typer
    from typer.testing import CliRunner

    from flows.cli.commands.registry import register

    if store_uri.startswith("s3"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("s3_endpoint"))
    _publish(store, keyring, 3)
    app = typer.Typer()
    register(app)
    env = {"EDGEFLOW_HMAC_KEYS": f"k1:{KEY_HEX}"}
    result = CliRunner().invoke(app, ["models", store_uri], env=env)
    assert result.exit_code == 0 and "LATEST -> v000003 (sequence 3)" in result.output
    store.write("regime/LATEST", store.read("regime/pointers/000000000002.json"))
    result = CliRunner().invoke(app, ["models", store_uri], env=env)
    assert result.exit_code == 1, result.output
    assert "(sequence 2) REPLAYED [replay]" in result.output
    assert "holds sequence 3 (v000003)" in result.output
    doc = json.loads(CliRunner().invoke(app, ["models", store_uri, "--json"], env=env).stdout)
    assert doc["models"][0]["replayed"] is True and doc["models"][0]["sequence"] == 2
    heartbeat(store, "regime", keyring)  # re-signs from the verified history: repaired
    result = CliRunner().invoke(app, ["models", store_uri], env=env)
    assert result.exit_code == 0 and "LATEST -> v000003 (sequence 4)" in result.output


@BOTH
def test_a_stateless_rollback_never_restarts_the_sequence_at_one(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    """LATEST and its history deleted, no publisher state: a rollback signed sequence 1 and
    exited 0, which every running bot refuses as a replay (publishing already refused)."""
    _publish(store, keyring, 3)
    for key in store.list_keys("regime"):
        if key.endswith("/LATEST") or "/pointers/" in key:
            store.delete(key)
    with pytest.raises(PublishError, match="refusing to restart the sequence at 1"):
        rollback(store, "regime", keyring, to="v000002")
    with pytest.raises(PublishError, match="--start-sequence"):
        publish_model(store, "regime", {"model.onnx": make_onnx(seed=9)}, keyring)
    assert not _history(store)  # nothing was claimed
    done = rollback(store, "regime", keyring, to="v000002", start_sequence=7)
    assert (done.version, done.sequence) == ("v000002", 7)
    assert verify_model(store, "regime", keyring).sequence == 7


@FILE_ONLY
def test_the_cli_takes_the_operators_start_sequence(
    store: Store,
    store_uri: str,
    keyring: KeyRing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From a workdir with no record of the model (the publisher ran elsewhere)."""
    import typer
    from typer.testing import CliRunner

    from flows.cli.commands.registry import register

    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    register(app)
    env = {"EDGEFLOW_HMAC_KEYS": f"k1:{KEY_HEX}"}
    runner = CliRunner()
    _publish(store, keyring, 2)
    for key in store.list_keys("regime"):
        if key.endswith("/LATEST") or "/pointers/" in key:
            store.delete(key)
    args = ["rollback", store_uri, "-m", "regime", "--to", "v000001"]
    refused = runner.invoke(app, args, env=env)
    assert refused.exit_code != 0 and "--start-sequence" in refused.output, refused.output
    done = runner.invoke(app, [*args, "--start-sequence", "5"], env=env)
    assert done.exit_code == 0 and "(sequence 5," in done.output, done.output
