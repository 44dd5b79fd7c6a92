"""Every attack is refused, each with its own error class and code."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from registry_support import KEY_HEX, make_onnx

from pipelines.registry import (
    BadKeyError,
    Ed25519Key,
    FileHashMismatchError,
    FileSizeMismatchError,
    HmacKey,
    KeyRing,
    KeyTooShortError,
    ManifestInvalidError,
    MemoryStore,
    PathEscapeError,
    PointerMismatchError,
    ReplayError,
    SignatureMalformedError,
    SignatureMismatchError,
    SignatureMissingError,
    Store,
    UnknownKeyIdError,
    VersionMismatchError,
    WrongKeyError,
    canonical_json,
    parse_hmac_keys,
    publish_model,
    verify_model,
    verify_version,
)
from pipelines.registry.verify import read_pointer

# Verification is store-agnostic: every attack runs on file://, the main ones also on S3.
S3_TOO = pytest.mark.parametrize("store_uri", ["file", "s3"], indirect=True)
FILE_ONLY = pytest.mark.parametrize("store_uri", ["file"], indirect=True)


@pytest.fixture()
def published(store: Store, keyring: KeyRing) -> Store:
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=0)}, keyring)
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=1)}, keyring)
    return store


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@S3_TOO
def test_tampered_model_bytes(published: Store, keyring: KeyRing) -> None:
    key = "regime/v000002/model.onnx"
    published.write(key, _flip(published.read(key), 40))
    with pytest.raises(FileHashMismatchError, match="modified bytes") as e:
        verify_model(published, "regime", keyring)
    assert e.value.code == "hash-mismatch"


@FILE_ONLY
def test_truncated_file(published: Store, keyring: KeyRing) -> None:
    key = "regime/v000002/model.onnx"
    published.write(key, published.read(key)[:-10])
    with pytest.raises(FileSizeMismatchError, match="truncated"):
        verify_model(published, "regime", keyring)


@S3_TOO
def test_tampered_manifest(published: Store, keyring: KeyRing) -> None:
    key = "regime/v000002/manifest.json"
    raw = published.read(key)
    published.write(key, raw.replace(b'"metrics":{}', b'"metrics":{"x":1}'))
    with pytest.raises(SignatureMismatchError, match="modified after signing"):
        verify_model(published, "regime", keyring)


@FILE_ONLY
def test_wrong_key_same_id(published: Store) -> None:
    other = KeyRing([HmacKey("k1", hashlib.sha256(b"another key").digest())])
    with pytest.raises(WrongKeyError, match="different key"):
        verify_model(published, "regime", other)


@FILE_ONLY
def test_unknown_key_id(published: Store) -> None:
    other = KeyRing([HmacKey("k2", bytes.fromhex(KEY_HEX))])
    with pytest.raises(UnknownKeyIdError, match="'k1'"):
        verify_model(published, "regime", other)


def test_short_key_refused_and_never_echoed() -> None:
    with pytest.raises(KeyTooShortError, match="31 bytes") as e:
        parse_hmac_keys("short:" + "ab" * 31)
    assert "ab" * 31 not in str(e.value)
    with pytest.raises(BadKeyError, match="not hex"):
        parse_hmac_keys("k:zz" + "00" * 32)
    assert "secret" not in repr(
        HmacKey("k", b"sEcReT-7q2LmZ9xKd4WvB8nRt3YhC6pJ")
    ) and "sEcReT" not in repr(KeyRing([HmacKey("k", b"sEcReT-7q2LmZ9xKd4WvB8nRt3YhC6pJ")]))


def _envelope_with_sig(store: Store, sig: str | None, keyid: str = "k1") -> bytes:
    import json

    env = json.loads(store.read("regime/LATEST"))
    env["signatures"] = (
        [{"keyid": keyid, "sig": sig}]
        if sig is not None
        else [{"keyid": "someone-else", "sig": "00" * 32}]
    )
    return canonical_json(env)


@FILE_ONLY
def test_missing_signature(published: Store, keyring: KeyRing) -> None:
    published.delete("regime/v000002/manifest.json.sig")
    with pytest.raises(SignatureMissingError, match="missing"):
        verify_model(published, "regime", keyring)


@S3_TOO
def test_pointer_envelope_without_its_signers_signature(published: Store, keyring: KeyRing) -> None:
    published.write("regime/LATEST", _envelope_with_sig(published, None))
    with pytest.raises(SignatureMissingError, match="no signature by the payload's signer"):
        verify_model(published, "regime", keyring)


@FILE_ONLY
def test_truncated_signature(published: Store, keyring: KeyRing) -> None:
    target = "regime/v000002/manifest.json.sig"
    published.write(target, published.read(target)[:-2])
    with pytest.raises(SignatureMalformedError, match="truncated"):
        verify_model(published, "regime", keyring)
    published.write(target, published.read(target).upper() + b"AB")
    with pytest.raises(SignatureMalformedError):
        verify_model(published, "regime", keyring)


@pytest.mark.parametrize(
    "mangle", [lambda s: s[:-2], lambda s: s.upper(), lambda s: s[:-1] + "\n", lambda s: s + "00"]
)
@FILE_ONLY
def test_malformed_envelope_signature(published: Store, keyring: KeyRing, mangle: Any) -> None:
    import json

    sig = json.loads(published.read("regime/LATEST"))["signatures"][0]["sig"]
    published.write("regime/LATEST", _envelope_with_sig(published, mangle(sig)))
    with pytest.raises(SignatureMalformedError):
        verify_model(published, "regime", keyring)


@S3_TOO
def test_files_swapped_between_versions(published: Store, keyring: KeyRing) -> None:
    for name in ("model.onnx", "manifest.json", "manifest.json.sig"):
        published.write(f"regime/v000002/{name}", published.read(f"regime/v000001/{name}"))
    with pytest.raises(VersionMismatchError, match="swapped"):
        verify_model(published, "regime", keyring)
    with pytest.raises(VersionMismatchError):
        verify_version(published, "regime", "v000002", keyring)


@FILE_ONLY
def test_only_model_file_swapped(published: Store, keyring: KeyRing) -> None:
    published.write("regime/v000002/model.onnx", published.read("regime/v000001/model.onnx"))
    with pytest.raises(FileHashMismatchError):
        verify_model(published, "regime", keyring)


@S3_TOO
def test_replayed_older_latest(published: Store, keyring: KeyRing) -> None:
    old = published.read("regime/pointers/000000000001.json")
    accepted = verify_model(published, "regime", keyring)
    assert accepted.sequence == 2
    published.write("regime/LATEST", old)
    # the old pointer is authentic, so only the sequence check can refuse it
    assert read_pointer(published, "regime", keyring)[0].sequence == 1
    with pytest.raises(ReplayError, match="replayed"):
        verify_model(published, "regime", keyring, min_sequence=accepted.sequence)


@FILE_ONLY
def test_pointer_names_a_replaced_manifest(published: Store, keyring: KeyRing) -> None:
    # a validly signed manifest for the same folder, but not the one the pointer names
    raw = published.read("regime/v000002/manifest.json")
    forged = raw.replace(b'"lineage":{}', b'"lineage":{"x":"y"}')
    published.write("regime/v000002/manifest.json", forged)
    published.write("regime/v000002/manifest.json.sig", keyring.sign(forged))
    with pytest.raises(PointerMismatchError, match="replaced"):
        verify_model(published, "regime", keyring)


@pytest.mark.parametrize("path", ["../LATEST", "/etc/passwd", "a/../../x", "..", "C:\\x", "./m"])
@FILE_ONLY
def test_manifest_path_outside_version_folder(
    published: Store, keyring: KeyRing, path: str
) -> None:
    import json

    doc = json.loads(published.read("regime/v000002/manifest.json"))
    doc["files"][0]["path"] = path
    raw = canonical_json(doc)  # signed by the real key: only the path check can refuse it
    published.write("regime/v000002/manifest.json", raw)
    published.write("regime/v000002/manifest.json.sig", keyring.sign(raw))
    with pytest.raises(PathEscapeError):
        verify_version(published, "regime", "v000002", keyring)


@FILE_ONLY
def test_non_canonical_manifest_refused(published: Store, keyring: KeyRing) -> None:
    import json

    doc = json.loads(published.read("regime/v000002/manifest.json"))
    raw = json.dumps(doc, indent=1).encode()
    published.write("regime/v000002/manifest.json", raw)
    published.write("regime/v000002/manifest.json.sig", keyring.sign(raw))
    with pytest.raises(ManifestInvalidError, match="canonical"):
        verify_version(published, "regime", "v000002", keyring)


@S3_TOO
def test_ed25519_public_only_consumer(store: Store) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    signer = KeyRing([Ed25519Key.from_private("ed1", priv)], signing_key_id="ed1")
    publish_model(store, "bandit", {"model.onnx": make_onnx()}, signer)
    consumer = signer.public_only()
    vv = verify_model(store, "bandit", consumer)
    assert vv.manifest["algorithm"] == "ed25519"
    with pytest.raises(BadKeyError, match="public key"):
        KeyRing(consumer_keys := [consumer.get("ed1")], signing_key_id="ed1")
    assert consumer_keys
    # a forger holding only the public key cannot make an HMAC that passes as this key id
    pub_raw = consumer.get("ed1").public_bytes()  # type: ignore[union-attr]
    forger = KeyRing([HmacKey("ed1", pub_raw)], signing_key_id="ed1")
    scratch = MemoryStore()
    publish_model(scratch, "bandit", {"model.onnx": make_onnx(seed=5)}, forger)
    for key, data in scratch.objects.items():  # the forger overwrites the store's objects
        store.write(key, data)
    with pytest.raises(WrongKeyError, match="algorithm"):
        verify_model(store, "bandit", consumer)
