"""The model store, round two: what someone with write access and no key could
still do after the envelope redesign, each on file:// and on S3 (moto, loopback).

The principle under test: the publisher and the heartbeat derive what they sign from
verified history and their own persisted state, never from whatever ``LATEST`` holds;
anything that does not verify is junk, replaced under compare-and-swap, never a reason to
stop publishing nor to sign an older version.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from registry_support import KEY_HEX, make_onnx
from typer.testing import CliRunner

from pipelines.registry import (
    ConcurrentPublishError,
    FileStore,
    HmacKey,
    KeyRing,
    ModelClient,
    PointerExpiredError,
    PublishError,
    ReplayError,
    Store,
    StoreError,
    VerificationError,
    WeakKeyError,
    canonical_json,
    heartbeat,
    parse_hmac_keys,
    prune,
    publish_model,
    read_pointer,
    rollback,
    verify_model,
    verify_version,
)
from pipelines.registry.manifest import format_time
from pipelines.registry.publisher_state import state_file

BOTH = pytest.mark.parametrize("store_uri", ["file", "s3"], indirect=True)
HIST = "regime/pointers/{:012d}.json"


def _publish(
    store: Store, keyring: KeyRing, n: int, state: Path | None = None, **kw: Any
) -> list[Any]:
    if state is not None:
        kw["state_dir"] = state
    return [
        publish_model(store, "regime", {"model.onnx": make_onnx(seed=s)}, keyring, **kw)
        for s in range(n)
    ]


def _replay(store: Store, seq: int, *, drop_above: bool) -> None:
    """The attack: an older, validly signed envelope over LATEST; newer history deleted."""
    store.write("regime/LATEST", store.read(HIST.format(seq)))
    if drop_above:
        for key in store.list_keys("regime/pointers"):
            if int(key.rsplit("/", 1)[1][:12]) > seq:
                store.delete(key)


def _orphans(store: Store, keyring: KeyRing) -> int:
    """Verified history entries above the verified LATEST."""
    from pipelines.registry.verify import history_sequences, read_history

    live = read_pointer(store, "regime", keyring)[0].sequence
    n = 0
    for seq in history_sequences(store.list_keys("regime"), "regime"):
        if seq > live:
            try:
                read_history(store, "regime", keyring, seq)
                n += 1
            except VerificationError:
                pass
    return n


# 1 --------------------------------------------------------------- heartbeat and replays
@BOTH
def test_heartbeat_never_launders_a_replay_into_a_signed_rollback(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    state = tmp_path / "publisher"
    _publish(store, keyring, 2, state)  # v1 seq 1, v2 seq 2
    bot = ModelClient(store, "regime", keyring, tmp_path / "bot")
    assert bot.refresh() and (bot.version, bot.sequence) == ("v000002", 2)
    _replay(store, 1, drop_above=True)  # LATEST = seq 1 (v1), history entry 2 deleted
    beat = heartbeat(store, "regime", keyring, state_dir=state)
    assert (beat.version, beat.sequence) == ("v000002", 3)  # not v000001
    assert not bot.refresh() and (bot.version, bot.sequence) == ("v000002", 3)
    # after an operator's rollback the same trick must not undo it, nor lose the floor
    _publish(store, keyring, 1, state)  # v3 seq 4
    done = rollback(store, "regime", keyring, to="v000002", state_dir=state)
    assert (done.version, done.sequence) == ("v000002", 5)
    _replay(store, 4, drop_above=True)  # the pre-rollback pointer (v3) put back
    beat = heartbeat(store, "regime", keyring, state_dir=state)
    live = read_pointer(store, "regime", keyring)[0]
    assert (beat.version, live.version, live.sequence, live.floor) == (
        "v000002",
        "v000002",
        6,
        "v000002",
    )
    # with the history intact, even a publisher without state re-signs the newest pointer
    _replay(store, 4, drop_above=False)
    beat = heartbeat(store, "regime", keyring)
    assert (beat.version, beat.sequence) == ("v000002", 7)


# 2 --------------------------------------------------------------- junk LATEST
JUNK = {
    "empty": lambda env: b"",
    "truncated": lambda env: env[: len(env) // 2],
    "no-payloadType": lambda env: env.replace(b'"payloadType"', b'"payload_type"'),
}


@BOTH
@pytest.mark.parametrize("junk", sorted(JUNK))
def test_junk_latest_is_replaced_not_taken_for_a_concurrent_writer(
    store: Store, keyring: KeyRing, junk: str, caplog: pytest.LogCaptureFixture
) -> None:
    _publish(store, keyring, 2)
    store.write("regime/LATEST", JUNK[junk](store.read("regime/LATEST")))
    caplog.set_level(logging.WARNING, logger="pipelines.registry")
    beat = heartbeat(store, "regime", keyring)  # re-signs the newest verified pointer
    assert (beat.version, beat.sequence) == ("v000002", 3)
    assert "regime/LATEST is junk" in caplog.text
    store.write("regime/LATEST", JUNK[junk](store.read("regime/LATEST")))
    assert rollback(store, "regime", keyring, to="v000001").sequence == 4
    store.write("regime/LATEST", JUNK[junk](store.read("regime/LATEST")))
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=7)}, keyring)
    assert (pub.version, pub.sequence) == ("v000003", 5)
    assert verify_model(store, "regime", keyring).version == "v000003"


# 3 --------------------------------------------------------------- planted folder
@BOTH
def test_folder_planted_at_the_next_history_slot_blocks_nothing(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    _publish(store, keyring, 1)
    # a folder where pointers/<next>.json belongs (on S3: an object "under" that key)
    store.write("regime/pointers/000000000002.json/x", b"junk")
    store.write("regime/pointers/000000000003.json/y/z", b"junk")
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=1)}, keyring)
    assert (pub.version, pub.sequence) == ("v000002", 2)
    assert heartbeat(store, "regime", keyring).sequence == 3
    assert verify_model(store, "regime", keyring).sequence == 3
    if isinstance(store, FileStore):  # and a symlink where the next version folder goes
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "store" / "regime" / "v000003").symlink_to(tmp_path / "elsewhere")
        pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=2)}, keyring)
        assert pub.version == "v000004" and not any((tmp_path / "elsewhere").iterdir())


@pytest.mark.parametrize("planted", ["folder", "symlink"])
def test_folder_or_symlink_at_the_lock_file_blocks_nothing(
    keyring: KeyRing, tmp_path: Path, planted: str
) -> None:
    """Found by a cold attacker's try: only a regular file is a lock; a folder or symlink at
    its name blocked publish, heartbeat and rollback until the pointers expired."""
    store = FileStore(tmp_path / "store")
    _publish(store, keyring, 1)
    lock = tmp_path / "store" / "regime" / ".lock-LATEST"
    lock.unlink(missing_ok=True)
    (tmp_path / "target").mkdir()
    if planted == "folder":
        (lock / "inner").mkdir(parents=True)
    else:
        lock.symlink_to(tmp_path / "target")
    assert heartbeat(store, "regime", keyring).sequence == 2
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=1)}, keyring)
    assert (pub.version, pub.sequence) == ("v000002", 3)
    assert lock.is_file() and not lock.is_symlink()
    assert (tmp_path / "target").is_dir() and not any((tmp_path / "target").iterdir())


# 4 --------------------------------------------------------------- legacy downgrade
def _legacy(store: Store, keyring: KeyRing, created: datetime, sequence: int) -> None:
    digest = read_pointer(store, "regime", keyring)[0].manifest_sha256
    signer = keyring.signer()
    doc = canonical_json(
        {
            "schema": "edgeflow.pointer/1",
            "model": "regime",
            "version": "v000001",
            "sequence": sequence,
            "manifest_sha256": digest,
            "key_id": signer.key_id,
            "algorithm": signer.algorithm,
            "key_check": signer.key_check,
            "created_at": format_time(created),
        }
    )
    store.write("regime/LATEST", doc)
    store.write("regime/LATEST.sig", keyring.sign(doc))


@BOTH
def test_old_signed_legacy_pointer_is_not_served_to_a_fresh_bot(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    _publish(store, keyring, 1)
    for key in store.list_keys("regime/pointers"):
        store.delete(key)
    _legacy(store, keyring, datetime.now(UTC) - timedelta(days=330), sequence=7)
    fresh = ModelClient(store, "regime", keyring, tmp_path / "bot")
    assert not fresh.refresh() and fresh.version is None
    assert isinstance(fresh.last_error, PointerExpiredError)
    with pytest.raises(PointerExpiredError, match="legacy"):
        verify_model(store, "regime", keyring)
    with pytest.raises(PublishError, match="expired"):  # nor re-signed by a heartbeat
        heartbeat(store, "regime", keyring)
    # it still counts for the sequence: the next publish continues above it
    assert _publish(store, keyring, 1)[0].sequence == 8


# 5 --------------------------------------------------------------- crash leftovers
class _Killed(BaseException):
    """Stands for SIGKILL at a step (BaseException: nothing in the publisher catches it)."""


def _kill_at(step: str) -> Any:
    def hook(name: str) -> None:
        if name == step:
            raise _Killed(name)

    return hook


@BOTH
def test_crash_leftover_above_latest_is_completed_not_refused(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    _publish(store, keyring, 2)
    with pytest.raises(_Killed):
        publish_model(
            store, "regime", {"model.onnx": make_onnx(seed=5)}, keyring, on_step=_kill_at("history")
        )
    assert read_pointer(store, "regime", keyring)[0].sequence == 2 and store.exists(HIST.format(3))
    beat = heartbeat(store, "regime", keyring)  # completes the interrupted publish
    assert (beat.version, beat.sequence) == ("v000003", 4) and _orphans(store, keyring) == 0
    with pytest.raises(_Killed):
        rollback(store, "regime", keyring, to="v000001", on_step=_kill_at("history"))
    beat = heartbeat(store, "regime", keyring)  # completes the interrupted rollback
    live = read_pointer(store, "regime", keyring)[0]
    assert (beat.version, live.sequence, live.floor) == ("v000001", 6, "v000001")
    assert _orphans(store, keyring) == 0
    with pytest.raises(_Killed):
        publish_model(
            store, "regime", {"model.onnx": make_onnx(seed=6)}, keyring, on_step=_kill_at("history")
        )
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=7)}, keyring)
    assert (pub.sequence, pub.previous_version) == (8, "v000004") and _orphans(store, keyring) == 0


# 6 --------------------------------------------------------------- concurrent prune
@BOTH
def test_concurrent_prune_leaves_an_in_flight_version_alone(store: Store, keyring: KeyRing) -> None:
    _publish(store, keyring, 1)
    done: list[Any] = []

    def publisher_b(name: str) -> None:  # B publishes and prunes while A is writing v000002
        if name == "file:model.onnx" and not done:
            done.append(publish_model(store, "regime", {"model.onnx": make_onnx(seed=8)}, keyring))

    with pytest.raises(ConcurrentPublishError):  # B took the sequence: A is refused cleanly
        publish_model(
            store, "regime", {"model.onnx": make_onnx(seed=2)}, keyring, on_step=publisher_b
        )
    assert done[0].version == "v000003"
    # no signed version lacks a file: A's folder is complete (never made live)
    assert verify_version(store, "regime", "v000002", keyring).files
    # an interrupted folder that has settled (older than the grace period) is still pruned
    store.write("regime/v000004/model.onnx", b"leftover of a crash")
    _publish(store, keyring, 1)  # v000005 live
    later = datetime.now(UTC) + timedelta(hours=2)
    assert "v000004" in prune(store, "regime", 5, keyring, now=later)
    assert not store.list_keys("regime/v000004")


# 7 --------------------------------------------------------------- verify without --state
@BOTH
def test_verify_without_state_reports_a_replayed_latest(
    store: Store,
    store_uri: str,
    keyring: KeyRing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from flows.cli.commands.registry import register

    if store_uri.startswith("s3"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("s3_endpoint"))
    monkeypatch.chdir(tmp_path)
    _publish(store, keyring, 2)
    app = typer.Typer()
    register(app)
    env = {"EDGEFLOW_HMAC_KEYS": f"k1:{KEY_HEX}"}
    result = CliRunner().invoke(app, ["verify", store_uri], env=env)
    assert result.exit_code == 0, result.output
    _replay(store, 1, drop_above=False)
    with pytest.raises(ReplayError, match="holds sequence 2"):
        verify_model(store, "regime", keyring, check_history=True)
    result = CliRunner().invoke(app, ["verify", store_uri], env=env)
    assert result.exit_code == 1 and "FAIL  regime: [replay]" in result.output, result.output


# 8 --------------------------------------------------------------- publisher state
@BOTH
def test_truncated_history_never_makes_the_publisher_reuse_a_sequence(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    state = tmp_path / "publisher"
    _publish(store, keyring, 3, state)  # sequences 1..3
    running = ModelClient(store, "regime", keyring, tmp_path / "running")
    assert running.refresh() and running.sequence == 3
    _replay(store, 1, drop_above=True)  # history truncated to sequence 1
    pub = _publish(store, keyring, 1, state)[0]
    assert (pub.sequence, pub.version) == (4, "v000004")  # not 2, which the fleet saw as v2
    fresh = ModelClient(store, "regime", keyring, tmp_path / "fresh")
    assert running.refresh() and fresh.refresh()  # one fleet: both on the same pointer
    assert (
        (running.version, running.sequence)
        == (fresh.version, fresh.sequence)
        == (
            "v000004",
            4,
        )
    )
    # the record is verified on read: a damaged one is refused, not trusted
    path = state_file(state, store.uri, "regime")
    path.write_bytes(path.read_bytes().replace(b'"claimed":4', b'"claimed":1'))
    assert _publish(store, keyring, 1, state)[0].sequence == 5  # its envelope says 4
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(PublishError, match="damaged"):
        _publish(store, keyring, 1, state)


# 9 --------------------------------------------------------------- trust on first use
@BOTH
def test_bootstrap_minimum_sequence_bounds_trust_on_first_use(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    _publish(store, keyring, 3)
    _replay(store, 1, drop_above=False)
    naive = ModelClient(store, "regime", keyring, tmp_path / "naive", check_history=False)
    assert naive.refresh() and naive.version == "v000001"  # what TOFU alone accepts
    bootstrapped = ModelClient(  # the floor alone (the history check is tested below)
        store, "regime", keyring, tmp_path / "boot", min_sequence=3, check_history=False
    )
    assert not bootstrapped.refresh() and bootstrapped.version is None
    assert isinstance(bootstrapped.last_error, ReplayError)
    heartbeat(store, "regime", keyring)  # the next scheduled run repairs LATEST
    assert bootstrapped.refresh() and (bootstrapped.version, bootstrapped.sequence) == (
        "v000003",
        4,
    )
    # a restart with an older cache than the floor does not serve that cache either
    cached = ModelClient(store, "regime", keyring, tmp_path / "naive", min_sequence=4)
    store.write("regime/LATEST", b"")  # store broken: only the cache could serve
    assert not cached.refresh() and cached.version is None
    with pytest.raises(ValueError):
        ModelClient(store, "regime", keyring, tmp_path / "x", min_sequence=0)


# 10 -------------------------------------------------------------- weak HMAC keys
WEAK = {
    "counting 00..1f (the spec's old vector key)": bytes(range(32)),
    "counting down": bytes(range(255, 223, -1)),
    "stepping by 3": bytes(range(7, 7 + 3 * 32, 3)),
    "ascii run": b"0123456789abcdefghijklmnopqrstuv",
    "interleaved counters": bytes(x for i in range(16) for x in (i, 255 - i)),
    "counter in blocks": bytes(range(4)) * 8,
    "16-byte block twice": hashlib.sha256(b"x").digest()[:16] * 2,
    "mostly counting": hashlib.sha256(b"y").digest()[:10] + bytes(range(100, 122)),
    "64-byte counting key": bytes(range(64)),
}


@pytest.mark.parametrize("secret", list(WEAK.values()), ids=list(WEAK))
def test_weak_hmac_keys_refused_by_class(secret: bytes) -> None:
    with pytest.raises(WeakKeyError):
        HmacKey("k", secret)
    with pytest.raises(WeakKeyError):
        parse_hmac_keys(f"k:{secret.hex()}")


def test_random_keys_are_not_refused() -> None:
    for i in range(3000):  # sha256 outputs stand in for generated keys (deterministic)
        HmacKey("k", hashlib.sha256(b"key %d" % i).digest())
    HmacKey("k", hashlib.sha256(b"a").digest() + hashlib.sha256(b"b").digest())  # 64 bytes


@BOTH
def test_weak_key_refused_before_anything_is_written(
    store: Store,
    store_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from flows.cli.commands.registry import register

    if store_uri.startswith("s3"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("s3_endpoint"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(make_onnx())
    app = typer.Typer()
    register(app)
    env = {"EDGEFLOW_HMAC_KEYS": f"k1:{bytes(range(32)).hex()}", "EDGEFLOW_SIGNING_KEY_ID": "k1"}
    result = CliRunner().invoke(
        app, ["publish", store_uri, "-m", "regime", str(tmp_path / "model.onnx")], env=env
    )
    assert result.exit_code == 2 and "do not follow from the ones before" in result.output
    assert store.list_keys("regime") == []


# A cold attacker's second try ----------------------------------------------------------
def _plant_folder(store: Store, version: str, junk: bytes | None) -> None:
    """A version folder an attacker planted: with a junk object, or empty (a file store's
    empty folder; on S3 the zero-byte folder marker ``<model>/<version>/``)."""
    if junk is not None:
        store.write(f"regime/{version}/model.onnx", junk)
    elif isinstance(store, FileStore):
        (store.root / "regime" / version).mkdir(parents=True)
    else:
        s3: Any = store
        s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/regime/{version}/", Body=b"")


@BOTH
def test_a_thousand_planted_version_folders_never_block_publish(
    store: Store, keyring: KeyRing
) -> None:
    """Found by a cold attacker's try: 1,000 junk folders from the next version on stopped
    every publish ("1000 unsigned version folders in a row")."""
    _publish(store, keyring, 1)
    for n in range(2, 1103):  # junk in most, nothing in every seventh
        _plant_folder(store, f"v{n:06d}", None if n % 7 == 0 else b"junk %d" % n)
    _plant_folder(store, "v999999999999", b"junk")  # the last name taken: no "exhausted"
    pub = _publish(store, keyring, 1)[0]
    assert (pub.version, pub.sequence) == ("v001103", 2)
    assert verify_model(store, "regime", keyring).version == "v001103"
    assert _publish(store, keyring, 1)[0].version == "v001104"  # then on from there
    # nothing was written into a planted folder: only the three publishes are signed
    signed = {k.split("/")[1] for k in store.list_keys("regime") if k.endswith(".json.sig")}
    assert signed == {"v000001", "v001103", "v001104"}
    assert store.read("regime/v000002/model.onnx") == b"junk 2"


@BOTH
def test_an_empty_planted_version_folder_is_skipped_not_reused(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    """The doc said such folders are skipped; an empty one on a file store was reused (on
    S3 its folder marker already counted). Pruning leaves a marker it cannot address."""
    _publish(store, keyring, 1)
    _plant_folder(store, "v000002", None)
    pub = _publish(store, keyring, 1)[0]
    assert pub.version == "v000003"
    assert not [k for k in store.list_keys("regime/v000002") if not k.endswith("/")]
    later = datetime.now(UTC) + timedelta(hours=2)  # settled: prune runs over the marker
    prune(store, "regime", 1, keyring, now=later)
    assert verify_model(store, "regime", keyring).version == "v000003"
    assert _publish(store, keyring, 1)[0].version == "v000004"


def _cli(store_uri: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    from flows.cli.commands.registry import register

    if store_uri.startswith("s3"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("s3_endpoint"))
    app = typer.Typer()
    register(app)
    env = {"EDGEFLOW_HMAC_KEYS": f"k1:{KEY_HEX}"}

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, ["verify", store_uri, *args], env=env)

    return run


@BOTH
def test_verify_without_a_floor_says_unanchored_and_reads_the_publishers_state(
    store: Store,
    store_uri: str,
    keyring: KeyRing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Newer history deleted and an older envelope in LATEST: verify exited 0 (OK v000001)
    although the workdir's publisher state recorded sequence 3."""
    verify = _cli(store_uri, monkeypatch, request)
    publisher = tmp_path / "publisher"
    (publisher / ".edgeflow").mkdir(parents=True)
    _publish(store, keyring, 3, publisher / ".edgeflow" / "publisher-state")
    _replay(store, 1, drop_above=True)
    monkeypatch.chdir(publisher)  # the publisher's workdir: its record is the floor
    result = verify()
    assert result.exit_code == 1, result.output
    assert "FAIL  regime: [replay]" in result.output
    assert "older than sequence 3, which this workdir's publisher state" in result.output
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no floor at all: it cannot know, so it says so
    result = verify()
    assert result.exit_code == 0 and "OK    regime v000001 sequence 1" in result.output
    assert "WARN  regime: unanchored" in result.output
    assert "1 unanchored (no floor)" in result.output
    assert verify("--require-anchor").exit_code == 3
    doc = json.loads(_stdout(verify("--json")))
    assert doc["unanchored"] == 1 and doc["models"][0]["anchored"] is False
    result = verify("--min-sequence", "3")  # a floor given by hand, as a bot's
    assert result.exit_code == 1 and "older than sequence 3, the --min-sequence" in result.output
    heartbeat(store, "regime", keyring, state_dir=publisher / ".edgeflow" / "publisher-state")
    result = verify("--min-sequence", "3", "--require-anchor")
    assert result.exit_code == 0 and "WARN" not in result.output, result.output
    monkeypatch.chdir(publisher)
    doc = json.loads(_stdout(verify("--json", "--require-anchor")))
    assert doc["models"][0]["anchored"] is True and "publisher state" in doc["models"][0]["anchor"]


def _stdout(result: Any) -> str:
    """The JSON document alone (warnings go to stderr)."""
    return str(result.stdout)


@BOTH
def test_a_fresh_client_goes_by_the_signed_history_not_a_replayed_latest(
    store: Store, keyring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh ModelClient without min_sequence took a replayed LATEST (v000001) while the
    history beside it held the newer signed sequence 3."""
    _publish(store, keyring, 3)
    running = ModelClient(store, "regime", keyring, tmp_path / "running")
    assert running.refresh() and running.sequence == 3
    _replay(store, 1, drop_above=False)
    fresh = ModelClient(store, "regime", keyring, tmp_path / "fresh")
    assert fresh.refresh() and (fresh.version, fresh.sequence) == ("v000003", 3)
    assert isinstance(fresh.last_error, ReplayError)  # serving, and saying LATEST is older
    assert "holds sequence 3" in str(fresh.last_error)
    assert not fresh.refresh() and fresh.version == "v000003"
    assert not running.refresh() and running.version == "v000003"
    assert isinstance(running.last_error, ReplayError)
    restarted = ModelClient(store, "regime", keyring, tmp_path / "fresh")  # from its cache
    assert not restarted.refresh() and (restarted.version, restarted.sequence) == ("v000003", 3)
    tofu = ModelClient(store, "regime", keyring, tmp_path / "tofu", check_history=False)
    assert tofu.refresh() and tofu.version == "v000001"  # what every fresh bot did before
    # a bot whose credentials may not list the store reads the slots above LATEST instead
    listing = store.list_keys

    def no_listing(prefix: str) -> list[str]:
        if "pointers" in prefix:
            raise StoreError("AccessDenied")
        return listing(prefix)

    monkeypatch.setattr(store, "list_keys", no_listing)
    unlisted = ModelClient(store, "regime", keyring, tmp_path / "unlisted")
    assert unlisted.refresh() and (unlisted.version, unlisted.sequence) == ("v000003", 3)
    monkeypatch.setattr(store, "list_keys", listing)
    # below a bootstrap floor the history entry is refused like LATEST
    floored = ModelClient(store, "regime", keyring, tmp_path / "floored", min_sequence=4)
    assert not floored.refresh() and isinstance(floored.last_error, ReplayError)
    heartbeat(store, "regime", keyring)  # the next scheduled run repairs LATEST
    assert not fresh.refresh() and fresh.sequence == 4  # same version, the new pointer
    assert fresh.last_error is None
    assert floored.refresh() and (floored.version, floored.sequence) == ("v000003", 4)


@BOTH
def test_a_stateless_publisher_is_not_steered_below_the_signed_history(
    store: Store, keyring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publisher without its state folder continued from a replayed older LATEST: with
    newer history deleted it reused sequence 2 and its heartbeat re-signed v000001."""
    _publish(store, keyring, 3)  # v1..v3, sequences 1..3, no publisher state
    # history intact: whatever LATEST holds, it continues above the newest verified entry
    _replay(store, 1, drop_above=False)
    pub = _publish(store, keyring, 1)[0]
    assert (pub.sequence, pub.previous_version) == (4, "v000003")
    store.delete("regime/LATEST")
    beat = heartbeat(store, "regime", keyring)
    assert (beat.version, beat.sequence) == ("v000004", 5)
    # newer history deleted: the signed manifests say a pointer is missing, so it refuses
    monkeypatch.setattr("pipelines.registry.publish.WITHHELD_MARGIN", timedelta(0), raising=False)
    _replay(store, 2, drop_above=True)  # LATEST: sequence 2 (v000002); 3..5 gone
    bot = ModelClient(store, "regime", keyring, tmp_path / "fresh")
    with pytest.raises(PublishError, match="history was deleted"):
        _publish(store, keyring, 1)
    with pytest.raises(PublishError, match="history was deleted"):
        heartbeat(store, "regime", keyring)
    assert read_pointer(store, "regime", keyring)[0].sequence == 2  # nothing was signed
    assert bot.refresh() and bot.version == "v000002"  # (what TOFU alone still takes)
    # an operator who knows the fleet's sequence continues above it
    pub = _publish(store, keyring, 1, start_sequence=10)[0]
    assert (pub.sequence, pub.version) == (10, "v000005")
    assert bot.refresh() and bot.sequence == 10
    # a crash leftover (signed on top of the live version) is no such evidence
    with pytest.raises(_Killed):
        publish_model(
            store,
            "regime",
            {"model.onnx": make_onnx(seed=8)},
            keyring,
            on_step=_kill_at("manifest_sig"),
        )
    assert _publish(store, keyring, 1)[0].sequence == 11
    assert heartbeat(store, "regime", keyring).sequence == 12


@BOTH
def test_a_deleted_model_folder_fails_verify_and_heartbeat_by_name(
    store: Store,
    store_uri: str,
    keyring: KeyRing,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Someone with write access and no key deleted regime/ entirely: the store listing no
    longer showed it, so verify (even --require-anchor) and the heartbeat exited 0 although
    this workdir's publisher state recorded what it signed there."""
    from flows.health import _store_checks

    verify = _cli(store_uri, monkeypatch, request)
    publisher = tmp_path / "publisher"
    state = publisher / ".edgeflow" / "publisher-state"
    state.mkdir(parents=True)
    _publish(store, keyring, 2, state)
    publish_model(store, "sizer", {"model.onnx": make_onnx(seed=9)}, keyring, state_dir=state)
    for key in store.list_keys("regime"):
        store.delete(key)
    monkeypatch.chdir(publisher)
    result = verify("--require-anchor")
    assert result.exit_code == 1, result.output
    assert "FAIL  regime: [pointer-missing]" in result.output and "OK    sizer" in result.output
    assert "1/2 model(s) verified" in result.output
    beat = CliRunner().invoke(
        _app(), ["heartbeat", store_uri], env={"EDGEFLOW_HMAC_KEYS": f"k1:{KEY_HEX}"}
    )
    assert beat.exit_code == 1 and "FAIL  regime:" in beat.output, beat.output
    checks = _store_checks(store, keyring, datetime.now(UTC), 48.0, state)
    assert [c["ok"] for c in checks if c["check"] == "verify:regime"] == [False]
    elsewhere = tmp_path / "auditor"  # without the publisher's records it cannot know
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert verify().exit_code == 0


def _app() -> typer.Typer:
    from flows.cli.commands.registry import register

    app = typer.Typer()
    register(app)
    return app
