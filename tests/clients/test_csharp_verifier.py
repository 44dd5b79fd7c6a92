"""The C# reference verifier against stores the Python side published, good and tampered.

Mono's ``mcs`` compiles ``clients/csharp/Verifier.cs``; when ``mcs``/``mono`` are missing the
test installs Debian's ``mono-mcs`` and ``mono-runtime`` with apt-get (CI runs as root).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from apt_packages import apt_install

from pipelines.registry import FileStore, HmacKey, KeyRing, publish_model

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "clients" / "csharp" / "Verifier.cs"
KEY = hashlib.sha256(b"edgeflow csharp verifier tests").digest()
OTHER_KEY = hashlib.sha256(b"some other key").digest()
KEY_ID = "ci-key"


def _onnx(scale: float) -> bytes:
    """A real (loadable) ONNX graph, Y = X * scale, padded to a few KiB of weights."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.full(1024, scale, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["features", "S"], ["probabilities"])],
        "verifier-test",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 1024])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 1024])],
        initializer=[numpy_helper.from_array(weights, "S")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


MODEL_BYTES = _onnx(0.5)


def _ensure_mono() -> None:
    apt_install(["mono-mcs", "mono-runtime"], ["mcs", "mono"])


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _ensure_mono()
    exe = tmp_path_factory.mktemp("csharp") / "Verifier.exe"
    build = subprocess.run(
        ["mcs", "-warnaserror", f"-out:{exe}", str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return exe


def _ring() -> KeyRing:
    return KeyRing([HmacKey(KEY_ID, KEY)], signing_key_id=KEY_ID)


def _publish(root: Path, payload: bytes = MODEL_BYTES) -> str:
    done = publish_model(
        FileStore(root),
        "regime",
        {"model.onnx": payload, "regime_export.json": b'{"classes":["TREND_UP"]}'},
        _ring(),
        metrics={"onnx_max_abs_diff": 1.5e-07, "holdout/balanced_accuracy": 0.8123456789},
        gates=[{"name": "balanced_accuracy", "value": 0.81, "threshold": 0.8, "passed": True}],
        lineage={"mlflow_run_id": "r1", "git_commit": "abc", "data_hash": "d", "config_hash": "c"},
        inputs=[{"name": "features", "dtype": "float32", "shape": ["N", 43]}],
        outputs=[{"name": "probabilities", "dtype": "float32", "shape": ["N", 4]}],
        opset=15,
    )
    return done.version


def _run(
    exe: Path, store: Path, *extra: str, key: bytes = KEY, key_id: str = KEY_ID
) -> tuple[int, str]:
    proc = subprocess.run(
        [
            "mono",
            str(exe),
            "--store",
            str(store),
            "--model",
            "regime",
            "--key",
            f"{key_id}:{key.hex()}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    assert _publish(root) == "v000001"
    return root


def test_good_store_is_verified_and_files_handed_over(
    verifier: Path, store: Path, tmp_path: Path
) -> None:
    rc, out = _run(verifier, store, "--out", str(tmp_path / "out"))
    assert rc == 0, out
    assert re.match(
        r"VERIFIED model=regime version=v000001 sequence=1 manifest_sha256=[0-9a-f]{64}", out
    )
    assert (tmp_path / "out" / "model.onnx").read_bytes() == MODEL_BYTES
    print(out)


def _flip(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    data[index] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("flip_model_byte", "hash-mismatch"),
        ("bad_manifest_sig", "signature-mismatch"),
        ("edit_manifest", "signature-mismatch"),
        ("missing_file", "file-missing"),
        ("truncated_file", "size-mismatch"),
        ("padded_file", "size-mismatch"),
        ("symlinked_file", "unsafe-object"),
        ("fifo_file", "unsafe-object"),
        ("missing_pointer", "pointer-missing"),
    ],
)
def test_tampered_store_is_refused(verifier: Path, store: Path, tamper: str, code: str) -> None:
    version = store / "regime" / "v000001"
    model = version / "model.onnx"
    if tamper == "flip_model_byte":
        _flip(model, 100)
    elif tamper == "bad_manifest_sig":
        sig = (version / "manifest.json.sig").read_text()
        (version / "manifest.json.sig").write_text(("0" if sig[0] != "0" else "1") + sig[1:])
    elif tamper == "edit_manifest":
        text = (version / "manifest.json").read_text()
        (version / "manifest.json").write_text(text.replace('"r1"', '"r2"'))
    elif tamper == "missing_file":
        model.unlink()
    elif tamper == "truncated_file":
        model.write_bytes(MODEL_BYTES[:-1])
    elif tamper == "padded_file":
        model.write_bytes(MODEL_BYTES + b"\0")
    elif tamper == "symlinked_file":
        shutil.copy(model, store / "elsewhere.onnx")
        model.unlink()
        model.symlink_to(store / "elsewhere.onnx")
    elif tamper == "fifo_file":  # a FIFO would block a naive reader forever
        model.unlink()
        os.mkfifo(model)
    elif tamper == "missing_pointer":
        (store / "regime" / "LATEST").unlink()
    rc, out = _run(verifier, store)
    assert rc == 2 and out.startswith(f"REFUSED {code}:"), out
    print(tamper, "->", out)


def test_wrong_or_unknown_key_is_refused(verifier: Path, store: Path) -> None:
    rc, out = _run(verifier, store, key=OTHER_KEY)
    assert rc == 2 and out.startswith("REFUSED wrong-key:"), out
    rc, out = _run(verifier, store, key_id="another-id")
    assert rc == 2 and out.startswith("REFUSED unknown-key-id:"), out
    rc, out = _run(verifier, store, "--revoked", KEY_ID)
    assert rc == 2 and out.startswith("REFUSED revoked-key:"), out
    rc, out = _run(verifier, store, "--scope", f"{KEY_ID}:bandit,sizer")
    assert rc == 2 and out.startswith("REFUSED wrong-key:") and "scope" in out, out
    rc, out = _run(verifier, store, "--scope", f"{KEY_ID}:regime")
    assert rc == 0, out


def test_malformed_pointers_are_refusals_not_crashes(verifier: Path, store: Path) -> None:
    latest = store / "regime" / "LATEST"
    for blob, code in (
        (b"\xff\xfe not utf-8", "pointer-invalid"),
        (b"[" * 40 + b"]" * 40, "pointer-invalid"),
        (b'{"payloadType": 1e400}', "pointer-invalid"),
        (b'{"payloadType": 1.5e308}', "pointer-invalid"),
        (b'{"payloadType": -1.7976931348623157e308}', "pointer-invalid"),
        (b"{}" + b" " * (64 * 1024), "too-large"),
    ):
        latest.write_bytes(blob)
        rc, out = _run(verifier, store)
        assert rc == 2 and out.startswith(f"REFUSED {code}:"), (blob[:20], out)


def test_replayed_older_pointer_is_refused_with_the_state_file(
    verifier: Path, store: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "regime.json"
    pointer_files = {
        p.name: p.read_bytes() for p in (store / "regime").iterdir() if p.name.startswith("LATEST")
    }
    rc, out = _run(verifier, store, "--state", str(state))
    assert rc == 0 and "sequence=1" in out, out
    saved = json.loads(state.read_text())
    assert saved["sequence"] == 1 and saved["version"] == "v000001"
    assert _publish(store, _onnx(2.0)) == "v000002"
    rc, out = _run(verifier, store, "--state", str(state))
    assert rc == 0 and "version=v000002 sequence=2" in out, out
    rc, out = _run(verifier, store, "--state", str(state))
    assert rc == 0 and "(already accepted)" in out, out
    for p in (store / "regime").iterdir():  # an attacker puts the old, validly signed pointer back
        if p.name.startswith("LATEST"):
            p.unlink()
    for name, blob in pointer_files.items():
        (store / "regime" / name).write_bytes(blob)
    # The signed history beside LATEST still holds sequence 2 (step 5a): the consumer with
    # state keeps v000002 and alerts; a fresh one goes by the history too (it accepted
    # v000001 before).
    rc, out = _run(verifier, store, "--state", str(state))
    assert rc == 0 and "version=v000002 sequence=2" in out and "(already accepted)" in out, out
    assert "ALERT regime/LATEST has sequence 1 but the signed history holds sequence 2" in out
    rc, out = _run(verifier, store)
    assert rc == 0 and "version=v000002 sequence=2" in out, out
    assert "(v000002): going by the history entry" in out
    (store / "regime" / "pointers" / "000000000003.json").write_bytes(b"{junk")  # ignored
    shutil.copy(  # a copy of entry 1 under a higher name carries the wrong sequence: ignored
        store / "regime" / "pointers" / "000000000001.json",
        store / "regime" / "pointers" / "000000000004.json",
    )
    # numbers near the double range's end once crashed the canonical-number check
    (store / "regime" / "pointers" / "000000000005.json").write_bytes(b'{"payloadType":1.5e308}')
    rc, out = _run(verifier, store)
    assert rc == 0 and "version=v000002 sequence=2" in out, out
    assert "ignoring regime/pointers/000000000004.json: it carries sequence 1" in out
    assert "ignoring regime/pointers/000000000005.json: pointer-invalid" in out
    assert "ignoring regime/pointers/000000000003.json: pointer-invalid" in out
    for seq in (2, 3, 4, 5):  # newer history deleted as well: only the state can tell
        (store / "regime" / "pointers" / f"{seq:012d}.json").unlink()
    rc, out = _run(verifier, store, "--state", str(state))
    assert rc == 2 and out.startswith("REFUSED replay:"), out
    rc, out = _run(verifier, store)
    assert rc == 0 and "version=v000001" in out, out
    (store / "regime" / "pointers").rename(store / "regime" / "pointers-away")
    (store / "regime" / "pointers").symlink_to(store / "regime" / "pointers-away")
    rc, out = _run(verifier, store)  # a symlinked history folder lists nothing
    assert rc == 0 and "version=v000001" in out, out


_MANIFEST_SHA = "8f5fb6bc54469349cec94f3481a8d312ba01316aaaf5b87f2c64972a0a988a6e"


def _doc_block(name: str) -> str | None:
    text = (ROOT / "docs" / "manifest.md").read_text(encoding="utf-8")
    match = re.search(rf"```{re.escape(name)}\n(.*?)\n```", text, re.S)
    return match.group(1) if match else None


def _vector_store(root: Path, pointer: bytes, pointer_sig: str | None) -> Path:
    version = root / "regime" / "v000001"
    version.mkdir(parents=True)
    manifest = _doc_block("hmac-manifest")
    sig = _doc_block("hmac-sig")
    assert manifest and sig
    (version / "manifest.json").write_text(manifest, encoding="utf-8")
    (version / "manifest.json.sig").write_text(sig)
    (version / "model.onnx").write_bytes(b"edgeflow")
    (root / "regime" / "LATEST").write_bytes(pointer)
    if pointer_sig is not None:
        (root / "regime" / "LATEST.sig").write_text(pointer_sig)
    return root


def test_manifest_md_vectors(verifier: Path, tmp_path: Path) -> None:
    key_hex = _doc_block("hmac-key")
    assert key_hex
    key = bytes.fromhex(key_hex)
    envelope = _doc_block("pointer-envelope")
    if envelope is None:  # the spec before the envelope: a legacy pointer over the vector
        payload = json.dumps(
            {
                "algorithm": "hmac-sha256",
                "created_at": "2026-01-01T00:00:00.000000Z",
                "key_check": "3d0cb25b898858d8",
                "key_id": "vector-1",
                "manifest_sha256": _MANIFEST_SHA,
                "model": "regime",
                "schema": "edgeflow.pointer/1",
                "sequence": 1,
                "version": "v000001",
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        sig = hmac.new(key, payload, hashlib.sha256).hexdigest()
        root = _vector_store(tmp_path / "legacy", payload, sig)
        rc, out = _run(verifier, root, key=key, key_id="vector-1")
        assert rc == 0 and "version=v000001 sequence=1" in out and "pointer=legacy" in out, out
        return
    root = _vector_store(tmp_path / "envelope", envelope.encode(), None)
    rc, out = _run(verifier, root, "--now", "2026-01-02T00:00:00Z", key=key, key_id="vector-1")
    assert rc == 0, out
    assert "version=v000001 sequence=1" in out and "pointer=envelope" in out
    assert f"manifest_sha256={_MANIFEST_SHA}" in out
    rc, out = _run(verifier, root, "--now", "2026-01-05T00:00:00Z", key=key, key_id="vector-1")
    assert rc == 2 and out.startswith("REFUSED expired:"), out


def test_old_legacy_pointer_and_bootstrap_floor(verifier: Path, store: Path) -> None:
    """A signed legacy pointer is bounded by age (72 h after created_at), like an envelope's
    expiry; ``--min-sequence`` refuses a replayed older pointer a fresh bot would accept."""
    latest = store / "regime" / "LATEST"
    digest = json.loads(base64.b64decode(json.loads(latest.read_bytes())["payload"]))[
        "manifest_sha256"
    ]
    key_check = hmac.new(KEY, b"edgeflow-key-check-v1", hashlib.sha256).hexdigest()[:16]

    def legacy(created: str) -> None:
        doc = json.dumps(
            {
                "algorithm": "hmac-sha256",
                "created_at": created,
                "key_check": key_check,
                "key_id": KEY_ID,
                "manifest_sha256": digest,
                "model": "regime",
                "schema": "edgeflow.pointer/1",
                "sequence": 7,
                "version": "v000001",
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        latest.write_bytes(doc)
        (store / "regime" / "LATEST.sig").write_text(hmac.new(KEY, doc, hashlib.sha256).hexdigest())

    envelope = latest.read_bytes()
    legacy("2026-01-01T00:00:00.000000Z")
    rc, out = _run(verifier, store, "--now", "2026-01-02T00:00:00Z")
    assert rc == 0 and "pointer=legacy" in out, out  # within 72 h of its created_at
    rc, out = _run(verifier, store, "--now", "2026-12-01T00:00:00Z")
    assert rc == 2 and out.startswith("REFUSED expired:"), out  # 11 months later: refused
    (store / "regime" / "LATEST.sig").unlink()
    latest.write_bytes(envelope)  # sequence 1
    rc, out = _run(verifier, store, "--min-sequence", "2")
    assert rc == 2 and out.startswith("REFUSED replay:"), out
    rc, out = _run(verifier, store, "--min-sequence", "1")
    assert rc == 0, out


def _publish_challenger(root: Path, payload: bytes) -> str:
    from pipelines.registry.challenger import publish_challenger

    done = publish_challenger(
        FileStore(root),
        "regime",
        {"model.onnx": payload},
        _ring(),
        metrics={"onnx_max_abs_diff": 0.0},
        lineage={"mlflow_run_id": "r2", "git_commit": "abc", "data_hash": "d", "config_hash": "c"},
    )
    return done.version


def test_challenger_pointer_is_verified_like_latest(
    verifier: Path, store: Path, tmp_path: Path
) -> None:
    """--pointer CHALLENGER: the challenger a bot shadows, with every LATEST check; the two
    envelopes are not interchangeable; a withdrawal is recorded and a put-back is a replay."""
    rc, out = _run(verifier, store, "--pointer", "CHALLENGER")
    assert rc == 2 and out.startswith("REFUSED pointer-missing:") and "no challenger" in out, out
    assert _publish_challenger(store, _onnx(3.0)) == "v000002"
    state = tmp_path / "state" / "regime-challenger.json"
    rc, out = _run(
        verifier,
        store,
        "--pointer",
        "CHALLENGER",
        "--state",
        str(state),
        "--out",
        str(tmp_path / "o"),
    )
    assert rc == 0 and "VERIFIED model=regime version=v000002 sequence=1" in out, out
    assert (tmp_path / "o" / "model.onnx").read_bytes() == _onnx(3.0)
    rc, out = _run(verifier, store)  # LATEST still serves the champion
    assert rc == 0 and "version=v000001 sequence=1" in out, out
    # expiry: the same rule as LATEST
    rc, out = _run(verifier, store, "--pointer", "CHALLENGER", "--now", "2099-01-01T00:00:00Z")
    assert rc == 2 and out.startswith("REFUSED expired:"), out
    # a challenger envelope copied over LATEST, and the reverse, are refused by schema
    latest = (store / "regime" / "LATEST").read_bytes()
    challenger = (store / "regime" / "CHALLENGER").read_bytes()
    (store / "regime" / "LATEST").write_bytes(challenger)
    rc, out = _run(verifier, store, "--state", str(tmp_path / "fresh.json"))
    assert rc == 2 and out.startswith("REFUSED pointer-invalid:") and "schema" in out, out
    (store / "regime" / "LATEST").write_bytes(latest)
    (store / "regime" / "CHALLENGER").write_bytes(latest)
    rc, out = _run(verifier, store, "--pointer", "CHALLENGER")
    assert rc == 2 and out.startswith("REFUSED pointer-invalid:") and "schema" in out, out
    (store / "regime" / "CHALLENGER").write_bytes(challenger)
    # tampered challenger files are refused as LATEST's are
    blob = store / "regime" / "v000002" / "model.onnx"
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    rc, out = _run(verifier, store, "--pointer", "CHALLENGER")
    assert rc == 2 and out.startswith("REFUSED hash-mismatch:"), out
    blob.write_bytes(good)
    # withdrawn: exit 3, recorded; the withdrawn envelope put back is a replay for this bot
    from pipelines.registry.challenger import withdraw_challenger

    assert withdraw_challenger(FileStore(store), "regime", _ring()) is not None
    rc, out = _run(verifier, store, "--pointer", "CHALLENGER", "--state", str(state))
    assert rc == 3 and out.startswith("WITHDRAWN model=regime version=v000002 sequence=2"), out
    assert json.loads(state.read_text())["sequence"] == 2
    (store / "regime" / "CHALLENGER").write_bytes(challenger)
    rc, out = _run(verifier, store, "--pointer", "CHALLENGER", "--state", str(state))
    # the signed history beside it still holds the withdrawal: the bot goes by it
    assert rc == 3 and "WITHDRAWN" in out and "(already accepted)" in out, out
    assert "ALERT regime/CHALLENGER has sequence 1 but the signed history holds sequence 2" in out
    (store / "regime" / "challenger-pointers" / "000000000002.json").unlink()
    rc, out = _run(verifier, store, "--pointer", "CHALLENGER", "--state", str(state))
    assert rc == 2 and out.startswith("REFUSED replay:"), out
