"""Regression tests for the store-hardening failure classes, on file:// and on S3 (moto).

An attacker with write access to the store but no key, crashes and concurrent publishers:
each class below used to break the store; each test reproduces the attack and checks the fix.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from registry_support import KEY_HEX, expected_scores, make_onnx

from flows.health import _store_checks
from pipelines.registry import (
    BadKeyError,
    ConcurrentPublishError,
    Ed25519Key,
    ExternalDataError,
    FileStore,
    HmacKey,
    KeyRing,
    ModelClient,
    ObjectTooLargeError,
    PointerExpiredError,
    PublishError,
    ReplayError,
    RevokedKeyError,
    Store,
    StoreError,
    UnsafeObjectError,
    VerificationError,
    WeakKeyError,
    WrongKeyError,
    canonical_json,
    heartbeat,
    list_versions,
    parse_hmac_keys,
    publish_model,
    read_client_state,
    read_pointer,
    rollback,
    verify_model,
    verify_version,
)
from pipelines.registry.manifest import MAX_ENVELOPE_BYTES, format_time
from pipelines.registry.publish import write_pointer

X = np.array([0.5, -1.0, 2.0, 0.25], dtype=np.float32)
BOTH = pytest.mark.parametrize("store_uri", ["file", "s3"], indirect=True)
FILE_ONLY = pytest.mark.parametrize("store_uri", ["file"], indirect=True)


def _publish(store: Store, keyring: KeyRing, n: int, model: str = "regime", **kw: Any) -> None:
    for seed in range(n):
        publish_model(store, model, {"model.onnx": make_onnx(seed=seed)}, keyring, **kw)


def _snapshot(store: Store, model: str = "regime") -> dict[str, bytes]:
    return {k: store.read(k) for k in store.list_keys(model)}


def _sign_version(
    store: Store, keyring: KeyRing, version: str, files: dict[str, bytes], sequence: int
) -> None:
    """A validly signed version that skipped the publisher's checks (older tooling)."""
    from pipelines.registry.manifest import sha256_hex

    signer = keyring.signer()
    manifest = {
        "schema": "edgeflow.manifest/1",
        "model": "regime",
        "version": version,
        "created_at": "2026-01-01T00:00:00.000000Z",
        "key_id": signer.key_id,
        "algorithm": signer.algorithm,
        "key_check": signer.key_check,
        "files": [
            {"path": n, "sha256": sha256_hex(b), "size": len(b)} for n, b in sorted(files.items())
        ],
        "inputs": [],
        "outputs": [],
        "opset": 17,
        "metrics": {},
        "gates": [],
        "lineage": {},
        "previous_version": None,
    }
    raw = canonical_json(manifest)
    for name, blob in files.items():
        store.write(f"regime/{version}/{name}", blob)
    store.write(f"regime/{version}/manifest.json", raw)
    store.write(f"regime/{version}/manifest.json.sig", keyring.sign(raw))
    etag = store.read_etag("regime/LATEST")[1] if store.exists("regime/LATEST") else None
    write_pointer(
        store,
        "regime",
        keyring,
        version=version,
        manifest_sha256=sha256_hex(raw),
        sequence=sequence,
        expected_etag=etag,
    )


# 1 ------------------------------------------------------------------ health never signs
@BOTH
def test_health_reports_tampering_and_signs_nothing(store: Store, keyring: KeyRing) -> None:
    _publish(store, keyring, 3)
    key = "regime/v000003/model.onnx"
    blob = store.read(key)
    store.write(key, blob[:40] + bytes([blob[40] ^ 1]) + blob[41:])
    before = _snapshot(store)
    checks = _store_checks(store, keyring, datetime.now(UTC), 48.0)
    entry = next(c for c in checks if c["check"] == "verify:regime")
    assert not entry["ok"] and entry["code"] == "hash-mismatch"
    assert _snapshot(store) == before  # no pointer, no history entry signed
    with pytest.raises(VerificationError):  # LATEST still names the tampered version
        verify_model(store, "regime", keyring)


@BOTH
def test_rollback_never_below_the_approved_floor(store: Store, keyring: KeyRing) -> None:
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=0)}, keyring)
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=1)}, keyring, approve=True)
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=2)}, keyring)
    assert read_pointer(store, "regime", keyring)[0].floor == "v000002"
    with pytest.raises(PublishError, match="below the approved floor v000002"):
        rollback(store, "regime", keyring, to="v000001")
    done = rollback(store, "regime", keyring, to="v000001", below_floor=True)
    assert done.version == "v000001" and done.kind == "rollback"
    assert read_pointer(store, "regime", keyring)[0].floor == "v000001"


# 2 ------------------------------------------------------------------ ONNX external data
def _external_data_onnx(tmp_path: Path) -> bytes:
    import onnx

    model = onnx.load_model_from_string(make_onnx(seed=0, extra_floats=4096))
    onnx.save_model(
        model,
        str(tmp_path / "ext.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    return (tmp_path / "ext.onnx").read_bytes()


@BOTH
def test_external_data_refused_at_publish_and_at_load(
    store: Store, keyring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = _external_data_onnx(tmp_path)
    with pytest.raises(PublishError, match="external"):
        publish_model(store, "regime", {"model.onnx": ext}, keyring)
    assert list_versions(store, "regime") == []
    # a signed one from elsewhere: the bot refuses it even with weights.bin in its cwd
    _publish(store, keyring, 1)
    _sign_version(store, keyring, "v000002", {"model.onnx": ext}, sequence=2)
    monkeypatch.chdir(tmp_path)  # tmp_path/weights.bin exists: onnxruntime would load it
    client = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert not client.refresh()
    assert isinstance(client.last_error, ExternalDataError)
    fresh_cache = ModelClient(store, "regime", keyring, tmp_path / "cache2")
    fresh_cache.refresh()
    assert fresh_cache.version is None


# 3 ------------------------------------------------------------------ bounded reads
def _in_thread(fn: Any, timeout: float = 10.0) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "read blocked"
    return out


@FILE_ONLY
def test_fifo_and_dev_zero_symlink_refused_without_blocking(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    _publish(store, keyring, 1)
    root = tmp_path / "store" / "regime"
    (root / "LATEST").unlink()
    os.mkfifo(root / "LATEST")
    client = ModelClient(store, "regime", keyring, tmp_path / "cache")
    out = _in_thread(client.refresh)
    assert out["value"] is False and isinstance(client.last_error, UnsafeObjectError)
    (root / "LATEST").unlink()
    (root / "LATEST").symlink_to("/dev/zero")
    out = _in_thread(lambda: verify_model(store, "regime", keyring))
    assert isinstance(out["error"], UnsafeObjectError)
    # the publisher is not bricked: it swaps the refused object away (never following it)
    out = _in_thread(
        lambda: publish_model(store, "regime", {"model.onnx": make_onnx(seed=3)}, keyring)
    )
    assert out["value"].sequence == 2 and not (root / "LATEST").is_symlink()
    assert verify_model(store, "regime", keyring).version == "v000002"
    (root / "LATEST").unlink()
    model = root / "v000001" / "model.onnx"
    model.unlink()
    model.symlink_to("/dev/zero")
    out = _in_thread(lambda: verify_version(store, "regime", "v000001", keyring))
    assert isinstance(out["error"], UnsafeObjectError)
    # a symlinked folder is refused too (the write side never follows one either)
    (tmp_path / "elsewhere").mkdir()
    (root / "v000009").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeObjectError):
        store.write("regime/v000009/x", b"x")
    assert not any((tmp_path / "elsewhere").iterdir())


@FILE_ONLY
def test_symlinked_model_folder_is_refused_by_name_not_hidden(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    from pipelines.registry import list_models

    _publish(store, keyring, 1)
    _publish(store, keyring, 1, model="sizer")
    root = tmp_path / "store"
    (root / "regime").rename(tmp_path / "moved")
    (root / "regime").symlink_to(tmp_path / "moved")
    # listed, so an all-models verify fails on it instead of reporting 1/1 OK
    assert list_models(store) == ["regime", "sizer"]
    with pytest.raises(UnsafeObjectError):
        verify_model(store, "regime", keyring)
    checks = {c["check"]: c for c in _store_checks(store, keyring, datetime.now(UTC), 48.0)}
    assert checks["verify:regime"]["ok"] is False and checks["verify:sizer"]["ok"] is True


@BOTH
def test_oversized_objects_refused_while_reading(store: Store, keyring: KeyRing) -> None:
    _publish(store, keyring, 1)
    store.write("regime/LATEST", b"{" + b" " * (MAX_ENVELOPE_BYTES + 10))
    with pytest.raises(ObjectTooLargeError):
        verify_model(store, "regime", keyring)
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=3)}, keyring)
    assert verify_model(store, "regime", keyring).sequence == pub.sequence == 2
    with pytest.raises(ObjectTooLargeError):
        store.read("regime/v000001/model.onnx", max_bytes=10)


@FILE_ONLY
def test_client_cache_symlink_refused(store: Store, keyring: KeyRing, tmp_path: Path) -> None:
    _publish(store, keyring, 1)
    ModelClient(store, "regime", keyring, tmp_path / "cache").refresh()
    cached = tmp_path / "cache" / "regime" / "v000001" / "model.onnx"
    cached.unlink()
    cached.symlink_to("/dev/zero")
    for key in store.list_keys("regime"):
        store.write(key, b"garbage")
    restarted = ModelClient(store, "regime", keyring, tmp_path / "cache")
    out = _in_thread(restarted.refresh)
    assert out["value"] is False and restarted.version is None


# 4 ------------------------------------------------------------------ unsigned folder
@BOTH
def test_unsigned_huge_version_folder_is_ignored(store: Store, keyring: KeyRing) -> None:
    _publish(store, keyring, 2)
    store.write("regime/v999999999999/junk", b"x")
    store.write("regime/pointers/000000999999.json", b"{}")  # junk history, too
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=7)}, keyring)
    assert (pub.version, pub.sequence) == ("v000003", 3)
    assert verify_model(store, "regime", keyring).version == "v000003"


# 6 ------------------------------------------------------------------ CAS
@BOTH
def test_concurrent_publish_cannot_be_lost(store: Store, keyring: KeyRing) -> None:
    _publish(store, keyring, 1)
    won: list[Any] = []

    def racer(name: str) -> None:
        if name == "manifest_sig" and not won:  # B publishes while A is mid-publish
            won.append(publish_model(store, "regime", {"model.onnx": make_onnx(seed=5)}, keyring))

    with pytest.raises(ConcurrentPublishError):
        publish_model(store, "regime", {"model.onnx": make_onnx(seed=4)}, keyring, on_step=racer)
    live = read_pointer(store, "regime", keyring)[0]
    assert (live.version, live.sequence) == (won[0].version, won[0].sequence)


class _IgnoresConditions:
    """An S3 client in front of a server that silently ignores If-Match / If-None-Match."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def put_object(self, **kw: Any) -> Any:
        kw.pop("IfMatch", None)
        kw.pop("IfNoneMatch", None)
        return self._inner.put_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("store_uri", ["s3"], indirect=True)
def test_store_ignoring_conditional_writes_is_refused(store: Store, keyring: KeyRing) -> None:
    from pipelines.registry import S3Store

    assert isinstance(store, S3Store)
    blind = S3Store(store.bucket, store.prefix, _IgnoresConditions(store.client))
    with pytest.raises(StoreError, match="ignores conditional writes"):
        publish_model(blind, "regime", {"model.onnx": make_onnx()}, keyring)


# 7 ------------------------------------------------------------------ pruning
@BOTH
def test_prune_ignores_dummy_signatures_and_keeps_rollback_targets(
    store: Store, keyring: KeyRing
) -> None:
    _publish(store, keyring, 3, keep_last=2)
    for n in range(4, 9):  # attacker: complete-looking folders with dummy signatures
        store.write(f"regime/v{n:06d}/manifest.json", b"{}")
        store.write(f"regime/v{n:06d}/manifest.json.sig", b"0" * 64)
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=9)}, keyring, keep_last=2)
    live = read_pointer(store, "regime", keyring)[0].version
    verify_version(store, "regime", live, keyring)
    verify_version(store, "regime", "v000003", keyring)  # previously live and in keep_last
    rollback(store, "regime", keyring, to="v000003")
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=10)}, keyring, keep_last=1)
    # the previously live version (v000003, the rollback target) survives keep_last=1
    verify_version(store, "regime", "v000003", keyring)


# 8 ------------------------------------------------------------------ replay protection
@BOTH
def test_publisher_refuses_to_restart_the_sequence(store: Store, keyring: KeyRing) -> None:
    _publish(store, keyring, 2)
    for key in store.list_keys("regime/pointers"):
        store.delete(key)
    store.delete("regime/LATEST")
    with pytest.raises(PublishError, match="refusing to restart the sequence"):
        publish_model(store, "regime", {"model.onnx": make_onnx(seed=3)}, keyring)
    pub = publish_model(
        store, "regime", {"model.onnx": make_onnx(seed=3)}, keyring, start_sequence=100
    )
    assert pub.sequence == 100 and pub.version == "v000003"


@FILE_ONLY
def test_client_state_persisted_before_swap(store: Store, keyring: KeyRing, tmp_path: Path) -> None:
    _publish(store, keyring, 1)
    client = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert client.refresh()
    st = read_client_state(client.state_file)
    assert (st.version, st.sequence) == ("v000001", 1)
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=1)}, keyring)
    (tmp_path / "cache" / "state" / "regime.json").unlink()
    (tmp_path / "cache" / "state").rmdir()
    (tmp_path / "cache" / "state").write_text("not a folder")  # the state write must fail
    assert not client.refresh()
    assert client.version == "v000001"  # not served: its sequence could not be persisted
    assert isinstance(client.last_error, StoreError)


# 9 ------------------------------------------------------------------ error mapping
@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d, s: (d, s[:63] + b"\n"), id="sig-63-hex-newline"),
        pytest.param(
            lambda d, s: (d.replace(b'"key_check":"', b'"key_check":"\xc3\xa9'), s),
            id="non-ascii-key-check",
        ),
        pytest.param(lambda d, s: (b"[" * 100_000 + b"]" * 100_000, s), id="deep-nesting"),
        pytest.param(
            lambda d, s: (d.replace(b'"metrics":{}', b'"metrics":{"x":1e400}'), s), id="1e400"
        ),
        pytest.param(lambda d, s: (b"\xff\xfe", s), id="bad-utf8"),
        pytest.param(lambda d, s: (d.replace(b'"key_id":"k1"', b'"key_id":7'), s), id="type"),
    ],
)
@FILE_ONLY
def test_malformed_input_is_a_verification_error(
    store: Store, keyring: KeyRing, mutate: Any
) -> None:
    _publish(store, keyring, 2)
    key = "regime/v000002/manifest.json"
    data, sig = mutate(store.read(key), store.read(key + ".sig"))
    store.write(key, data)
    store.write(key + ".sig", sig)
    with pytest.raises(VerificationError, match="v000002"):
        verify_model(store, "regime", keyring)
    # and it blocks nothing: rollback to v1 and a new publish both work
    rollback(store, "regime", keyring, to="v000001")
    assert publish_model(store, "regime", {"model.onnx": make_onnx(seed=5)}, keyring).version


@BOTH
def test_malformed_pointer_envelopes(store: Store, keyring: KeyRing) -> None:
    _publish(store, keyring, 1)
    good = json.loads(store.read("regime/LATEST"))
    bad = [
        b"[" * 50_000,
        b'{"payload":"!!!","payloadType":"application/vnd.edgeflow.pointer+json","signatures":[]}',
        canonical_json({**good, "payload": good["payload"][:-4]}),
        canonical_json({**good, "signatures": "x"}),
        canonical_json({**good, "extra": 1}),
        canonical_json({**good, "payloadType": "x"}),
    ]
    for raw in bad:
        store.write("regime/LATEST", raw)
        with pytest.raises(VerificationError, match="LATEST"):
            verify_model(store, "regime", keyring)


# 10 ----------------------------------------------------------------- wasted work
class _CountingStore:
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.reads: list[str] = []
        self.uri = inner.uri

    def read(self, key: str, max_bytes: int | None = None) -> bytes:
        self.reads.append(key)
        return self.inner.read(key, max_bytes)

    def read_etag(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        self.reads.append(key)
        return self.inner.read_etag(key, max_bytes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@BOTH
def test_bad_version_remembered_and_unloadable_never_signed(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    _publish(store, keyring, 2)
    store.write("regime/v000002/model.onnx", make_onnx(seed=9))
    counting = _CountingStore(store)
    client = ModelClient(counting, "regime", keyring, tmp_path / "cache")
    assert not client.refresh()
    assert "regime/v000002/model.onnx" in counting.reads
    counting.reads.clear()
    assert not client.refresh()
    assert counting.reads == ["regime/LATEST"]  # remembered by manifest hash
    assert client.bad_versions and "hash-mismatch" in client.bad_versions.values()
    with pytest.raises(PublishError, match="no model file"):
        publish_model(store, "regime", {"a.onnx": make_onnx(), "b.onnx": make_onnx()}, keyring)
    with pytest.raises(PublishError, match="not a readable ONNX"):
        publish_model(store, "regime", {"model.onnx": b"\x08\x07garbage"}, keyring)
    # a data artifact without any .onnx (the recommendation table) is still publishable
    pub = publish_model(store, "recommendation", {"latest.json": b'{"a": 1}'}, keyring)
    assert verify_model(store, "recommendation", keyring).files == {"latest.json": b'{"a": 1}'}
    assert pub.version == "v000001"


# 11 ----------------------------------------------------------------- secrets
def test_no_secret_is_echoed_on_misconfiguration() -> None:
    from configs.settings import ConfigError, load_config
    from pipelines.registry.keys import keyring_from_env

    secret = KEY_HEX
    cases = [f"{secret}:k1", f"k1:{secret[:-1]}z", f"{secret}"]
    for spec in cases:
        with pytest.raises(BadKeyError) as e:
            parse_hmac_keys(spec)
        assert secret[:16] not in str(e.value) and secret[-16:] not in str(e.value)
    cfg = load_config(environ={})
    with pytest.raises(BadKeyError) as e:
        keyring_from_env(
            {"EDGEFLOW_HMAC_KEYS": f"k1:{secret}", "EDGEFLOW_SIGNING_KEY_ID": secret}, cfg
        )
    assert secret[:16] not in str(e.value)
    with pytest.raises(ConfigError) as ce:
        load_config(environ={"EDGEFLOW_REGISTRY__HMAC_KEYS": f"k1:{secret}"})
    assert secret[:16] not in str(ce.value) and "value not shown" in str(ce.value)
    ring = KeyRing([HmacKey("k1", bytes.fromhex(secret))], signing_key_id="k1")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ring)
    with pytest.raises(TypeError):
        pickle.dumps(ring.get("k1"))


# 12 ----------------------------------------------------------------- keep_cached=1
@FILE_ONLY
def test_keep_cached_one_prunes_the_local_cache(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    client = ModelClient(store, "regime", keyring, tmp_path / "cache", keep_cached=1)
    for seed in range(3):
        publish_model(store, "regime", {"model.onnx": make_onnx(seed=seed)}, keyring)
        assert client.refresh()
    assert list_versions(FileStore(tmp_path / "cache"), "regime") == ["v000003"]


# freshness ------------------------------------------------------------------------------
@BOTH
def test_expired_pointer_keeps_serving_and_alerts(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    publish_model(
        store, "regime", {"model.onnx": make_onnx(seed=1)}, keyring, ttl=timedelta(hours=1)
    )
    now = [datetime.now(UTC)]
    client = ModelClient(store, "regime", keyring, tmp_path / "cache", clock=lambda: now[0])
    assert client.refresh() and client.freshness_error() is None
    now[0] += timedelta(hours=2)
    assert not client.refresh()
    assert isinstance(client.last_error, PointerExpiredError)
    assert isinstance(client.freshness_error(), PointerExpiredError)
    pred = client.predict(X)  # still serving
    np.testing.assert_allclose(pred.outputs["scores"][0], expected_scores(X, seed=1), rtol=1e-6)
    fresh = ModelClient(store, "regime", keyring, tmp_path / "c2", clock=lambda: now[0])
    assert not fresh.refresh() and isinstance(fresh.last_error, PointerExpiredError)
    aged = ModelClient(
        store,
        "regime",
        keyring,
        tmp_path / "c3",
        max_pointer_age=timedelta(minutes=1),
        clock=lambda: datetime.now(UTC) + timedelta(minutes=5),
    )
    assert not aged.refresh() and "maximum pointer age" in str(aged.last_error)


@BOTH
def test_heartbeat_resigns_only_a_verified_current_pointer(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    _publish(store, keyring, 2)
    client = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert client.refresh()
    beat = heartbeat(store, "regime", keyring)
    assert (beat.version, beat.sequence, beat.kind) == ("v000002", 3, "heartbeat")
    assert read_pointer(store, "regime", keyring)[0].kind == "heartbeat"
    assert not client.refresh()  # same version: new sequence accepted, nothing reloaded
    assert client.last_error is None and client.sequence == 3 and client.version == "v000002"
    assert read_client_state(client.state_file).sequence == 3
    # a replayed older LATEST is not blessed by a heartbeat: it re-signs the newest verified
    # pointer (v000002), replacing the replay
    store.write("regime/LATEST", store.read("regime/pointers/000000000001.json"))
    with pytest.raises(ReplayError):
        verify_model(store, "regime", keyring, min_sequence=3)
    beat = heartbeat(store, "regime", keyring)
    assert (beat.version, beat.sequence) == ("v000002", 4)
    later = datetime.now(UTC) + timedelta(days=10)
    with pytest.raises(PublishError, match="expired"):
        heartbeat(store, "regime", keyring, now=later)
    assert heartbeat(store, "regime", keyring, now=later, renew_expired=True).sequence == 5


# keys -----------------------------------------------------------------------------------
@FILE_ONLY
def test_ed25519_only_ring_refuses_hmac_and_revoked_ids(store: Store, keyring: KeyRing) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _publish(store, keyring, 1)
    ed = Ed25519Key.from_private("ed", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    strict = KeyRing([keyring.get("k1"), ed.public_only()], accept=("ed25519",))
    with pytest.raises(WrongKeyError, match="accepts only ed25519"):
        verify_model(store, "regime", strict)
    revoked = KeyRing([keyring.get("k1")], revoked=["k1"])
    with pytest.raises(RevokedKeyError):
        verify_model(store, "regime", revoked)


@pytest.mark.parametrize(
    "secret", [b"\x00" * 32, b"\x11" * 32, b"ab" * 16, b"deadbeef" * 4, bytes(range(7)) * 5]
)
def test_low_entropy_hmac_keys_refused(secret: bytes) -> None:
    with pytest.raises(WeakKeyError):
        HmacKey("k", secret)


# 5 / 6 --------------------------------------------------------------- crash and race counts
@BOTH
def test_random_kills_leave_no_torn_pointer(
    store: Store, store_uri: str, keyring: KeyRing, request: pytest.FixtureRequest
) -> None:
    from registry_crash import random_kills

    endpoint = request.getfixturevalue("s3_endpoint") if store_uri.startswith("s3") else None
    report = random_kills(store, store_uri, endpoint, keyring, KEY_HEX, kills=6, seed=11)
    assert report.kills == 6
    assert report.torn_reads == 0, report.errors
    assert report.regressions == 0
    assert report.heartbeat_refusals == 0 and report.orphans == 0, report.errors


@BOTH
def test_concurrent_publishers_lose_no_update(
    store: Store, store_uri: str, keyring: KeyRing, request: pytest.FixtureRequest
) -> None:
    from registry_crash import concurrent_publishers

    from pipelines.registry import open_store

    if store_uri.startswith("s3"):
        import boto3

        endpoint = request.getfixturevalue("s3_endpoint")

        def make() -> Store:
            c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            return open_store(store_uri, s3_client=c)
    else:

        def make() -> Store:
            return open_store(store_uri)

    report = concurrent_publishers(make, keyring, publishers=3, each=3)
    assert report.successes >= 1
    assert report.successes + report.refused == report.attempts == 9
    assert report.lost_updates == 0, report
    assert report.heartbeat_ok, report


@BOTH
def test_key_scoped_to_one_model_cannot_sign_another(store: Store, keyring: KeyRing) -> None:
    _publish(store, keyring, 1, model="bandit")
    scoped = KeyRing([keyring.get("k1")], signing_key_id="k1", scopes={"k1": ["regime"]})
    with pytest.raises(WrongKeyError, match="may only sign regime"):
        verify_model(store, "bandit", scoped)
    with pytest.raises(PublishError, match="may only sign regime"):
        publish_model(store, "bandit", {"model.onnx": make_onnx()}, scoped)
    publish_model(store, "regime", {"model.onnx": make_onnx()}, scoped)
    assert verify_model(store, "regime", scoped).version == "v000001"


@BOTH
def test_legacy_two_file_pointer_is_read_and_replaced(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    _publish(store, keyring, 1)
    digest = read_pointer(store, "regime", keyring)[0].manifest_sha256
    signer = keyring.signer()
    legacy = canonical_json(
        {
            "schema": "edgeflow.pointer/1",
            "model": "regime",
            "version": "v000001",
            "sequence": 7,
            "manifest_sha256": digest,
            "key_id": signer.key_id,
            "algorithm": signer.algorithm,
            "key_check": signer.key_check,
            "created_at": format_time(datetime.now(UTC) - timedelta(hours=1)),
        }
    )
    store.write("regime/LATEST", legacy)
    store.write("regime/LATEST.sig", keyring.sign(legacy))
    vv = verify_model(store, "regime", keyring)
    assert (vv.version, vv.sequence, vv.pointer.legacy) == ("v000001", 7, True)  # type: ignore[union-attr]
    client = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert client.refresh() and client.sequence == 7
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=2)}, keyring)
    assert pub.sequence == 8 and not store.exists("regime/LATEST.sig")
    assert not read_pointer(store, "regime", keyring)[0].legacy
    assert client.refresh() and client.sequence == 8
