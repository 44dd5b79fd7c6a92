"""Publish, verify, prune, rollback on both backends (a folder and a real S3 server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from registry_support import make_onnx

from pipelines.registry import (
    KeyRing,
    ObjectExistsError,
    PublishError,
    Store,
    VerificationError,
    list_models,
    list_versions,
    publish_model,
    read_pointer,
    rollback,
    verify_model,
    verify_version,
)


def test_publish_then_verify_roundtrip(store: Store, keyring: KeyRing, tmp_path: Path) -> None:
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(make_onnx(seed=1))
    extra = tmp_path / "params.json"
    extra.write_text('{"a": 1}')
    pub = publish_model(
        store,
        "regime",
        [onnx_path, extra],
        keyring,
        metrics={"onnx_max_abs_diff": 1.5e-7},
        gates=[{"name": "acc", "value": 0.7, "threshold": 0.5, "passed": True}],
        lineage={"mlflow_run_id": "abc", "git_commit": "deadbeef"},
    )
    assert (pub.version, pub.sequence, pub.previous_version) == ("v000001", 1, None)
    vv = verify_model(store, "regime", keyring)
    assert vv.version == "v000001" and vv.sequence == 1
    assert vv.files["model.onnx"] == onnx_path.read_bytes()
    assert vv.files["params.json"] == b'{"a": 1}'
    m = vv.manifest
    assert m["inputs"] == [{"name": "X", "dtype": "float32", "shape": ["batch", 4]}]
    assert m["outputs"][0]["name"] == "scores" and m["opset"] == 17
    assert m["metrics"] == {"onnx_max_abs_diff": 1.5e-7}
    assert m["gates"][0]["passed"] is True and m["lineage"]["git_commit"] == "deadbeef"
    # canonical bytes: what is stored is exactly the canonical form
    raw = store.read("regime/v000001/manifest.json")
    assert (
        raw
        == json.dumps(
            json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )
    assert list_models(store) == ["regime"]


def test_sequence_increases_keep_last_and_prune(store: Store, keyring: KeyRing) -> None:
    pubs = [
        publish_model(store, "bandit", {"model.onnx": make_onnx(seed=i)}, keyring, keep_last=3)
        for i in range(5)
    ]
    assert [p.sequence for p in pubs] == [1, 2, 3, 4, 5]
    assert [p.previous_version for p in pubs[1:]] == ["v000001", "v000002", "v000003", "v000004"]
    assert pubs[3].pruned == ("v000001",) and pubs[4].pruned == ("v000002",)
    assert list_versions(store, "bandit") == ["v000003", "v000004", "v000005"]
    assert not store.list_keys("bandit/v000001")
    for v in list_versions(store, "bandit"):
        verify_version(store, "bandit", v, keyring)


def test_rollback_publishes_new_pointer_to_older_version(store: Store, keyring: KeyRing) -> None:
    for i in range(3):
        publish_model(store, "sizer", {"model.onnx": make_onnx(seed=i)}, keyring)
    back = rollback(store, "sizer", keyring)
    assert (back.version, back.sequence, back.previous_version) == ("v000002", 4, "v000003")
    vv = verify_model(store, "sizer", keyring)
    assert (vv.version, vv.sequence) == ("v000002", 4)
    back2 = rollback(store, "sizer", keyring, to="v000003")
    assert (back2.version, back2.sequence) == ("v000003", 5)
    with pytest.raises(PublishError, match="already live"):
        rollback(store, "sizer", keyring, to="v000003")
    # the next publish continues the sequence and keeps the rolled-back-to version
    nxt = publish_model(store, "sizer", {"model.onnx": make_onnx(seed=9)}, keyring)
    assert (nxt.version, nxt.sequence, nxt.previous_version) == ("v000004", 6, "v000003")


def test_rollback_goes_to_the_previous_version_only(store: Store, keyring: KeyRing) -> None:
    """Damaging newer versions must not steer a rollback to an older one of the attacker's
    choosing: without --to it targets the live manifest's previous_version, or refuses."""
    for i in range(3):
        publish_model(store, "regime", {"model.onnx": make_onnx(seed=i)}, keyring)
    store.write("regime/v000002/model.onnx", b"corrupted")
    before = store.read("regime/LATEST")
    with pytest.raises(VerificationError):
        rollback(store, "regime", keyring)
    assert store.read("regime/LATEST") == before  # nothing signed
    assert rollback(store, "regime", keyring, to="v000001").version == "v000001"


def test_published_objects_are_write_once(store: Store, keyring: KeyRing) -> None:
    publish_model(store, "regime", {"model.onnx": make_onnx()}, keyring)
    with pytest.raises(ObjectExistsError):
        store.write("regime/v000001/model.onnx", b"x", create_only=True)
    assert store.read("regime/v000001/model.onnx") == make_onnx()


def test_same_inputs_give_same_files_and_hashes(store: Store, keyring: KeyRing) -> None:
    a = publish_model(store, "regime", {"model.onnx": make_onnx(seed=3)}, keyring)
    b = publish_model(store, "bandit", {"model.onnx": make_onnx(seed=3)}, keyring)
    assert a.files == b.files
    pa, _, _ = read_pointer(store, "regime", keyring)
    assert pa.manifest_sha256 == a.manifest_sha256


def test_publish_refuses_bad_input(store: Store, keyring: KeyRing) -> None:
    with pytest.raises(ValueError, match="invalid model name"):
        publish_model(store, "../x", {"model.onnx": make_onnx()}, keyring)
    with pytest.raises(ValueError, match="finite"):
        publish_model(
            store, "regime", {"model.onnx": make_onnx()}, keyring, metrics={"x": float("nan")}
        )
    with pytest.raises(PublishError, match="not a readable ONNX"):
        publish_model(store, "regime", {"model.onnx": b"not onnx"}, keyring)
    verify_only = KeyRing([keyring.get("k1")])
    with pytest.raises(ValueError, match="no signing key"):
        publish_model(store, "regime", {"model.onnx": make_onnx()}, verify_only)
    assert list_models(store) == []
