"""The test vectors published in docs/manifest.md hold for this implementation."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipelines.registry import (
    Ed25519Key,
    HmacKey,
    KeyRing,
    MemoryStore,
    SignatureMismatchError,
    canonical_json,
    verify_version,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"


def _block(name: str) -> bytes:
    m = re.search(rf"^```{re.escape(name)}\n(.*?)\n```$", DOC.read_text("utf-8"), re.M | re.S)
    assert m, f"block {name} missing from {DOC}"
    return m.group(1).encode("utf-8")


def test_hmac_vector() -> None:
    key = bytes.fromhex(_block("hmac-key").decode())
    manifest, sig = _block("hmac-manifest"), _block("hmac-sig")
    # independent of our code: plain HMAC-SHA256 over the stored bytes
    assert hmac.new(key, manifest, hashlib.sha256).hexdigest().encode() == sig
    assert canonical_json(json.loads(manifest)) == manifest
    k = HmacKey("vector-1", key)
    assert k.key_check() == json.loads(manifest)["key_check"]
    _verify_in_store(KeyRing([k]), manifest, sig)


def test_ed25519_vector() -> None:
    priv = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    key = Ed25519Key.from_private("vector-ed", priv)
    assert key.public_bytes().hex().encode() == _block("ed25519-public")
    manifest, sig = _block("ed25519-manifest"), _block("ed25519-sig")
    assert key.sign(manifest).encode() == sig
    _verify_in_store(KeyRing([key.public_only()]), manifest, sig)


def _verify_in_store(ring: KeyRing, manifest: bytes, sig: bytes) -> None:
    store = MemoryStore()
    store.write("regime/v000001/model.onnx", b"edgeflow")
    store.write("regime/v000001/manifest.json", manifest)
    store.write("regime/v000001/manifest.json.sig", sig)
    vv = verify_version(store, "regime", "v000001", ring)
    assert vv.files == {"model.onnx": b"edgeflow"}
    store.write("regime/v000001/manifest.json", manifest.replace(b"0.71", b"0.99"))
    with pytest.raises(SignatureMismatchError):
        verify_version(store, "regime", "v000001", ring)


def test_pointer_envelope_vector_independent_of_our_code() -> None:
    import base64

    key = bytes.fromhex(_block("hmac-key").decode())
    payload, sig, envelope = (
        _block("pointer-payload"),
        _block("pointer-sig"),
        _block("pointer-envelope"),
    )
    env = json.loads(envelope)
    assert canonical_json(env) == envelope
    assert base64.b64decode(env["payload"], validate=True) == payload
    ptype = env["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
    assert hmac.new(key, pae, hashlib.sha256).hexdigest().encode() == sig
    assert env["signatures"] == [{"keyid": "vector-1", "sig": sig.decode()}]
    manifest_sha = hashlib.sha256(_block("hmac-manifest")).hexdigest()
    assert json.loads(payload)["manifest_sha256"] == manifest_sha
