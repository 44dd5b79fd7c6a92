"""The CLI commands and keyring_from_env (dev key, production refusal, rotation)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import typer
from registry_support import KEY_HEX, make_onnx
from typer.testing import CliRunner

from configs.settings import load_config
from flows.cli.commands.registry import register
from pipelines.registry import BadKeyError, KeyTooShortError
from pipelines.registry.keys import dev_key_path, keyring_from_env

OLD_HEX = "9c3e71a0d45b28f6e1c09a7d3b5f8e24c6a1d07f93e52b8d4a6c1e0f7b392d58"
ENV = {"EDGEFLOW_HMAC_KEYS": f"old:{OLD_HEX},k1:{KEY_HEX}", "EDGEFLOW_SIGNING_KEY_ID": "k1"}


@pytest.fixture()
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


def _run(app: typer.Typer, args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=ENV if env is None else env)
    return result.exit_code, result.output


def test_publish_verify_models_rollback(
    app: typer.Typer,
    store_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if store_uri.startswith("s3"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("s3_endpoint"))
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "model.onnx"
    for seed in (0, 1):
        f.write_bytes(make_onnx(seed=seed))
        code, out = _run(app, ["publish", store_uri, "--model", "regime", str(f)])
        assert code == 0, out
        assert f"regime/v00000{seed + 1}" in out
    code, out = _run(app, ["verify", store_uri])
    assert code == 0 and "OK    regime v000002 sequence 2" in out, out
    code, out = _run(app, ["models", store_uri])
    assert code == 0 and "LATEST -> v000002" in out and "v000001  ok" in out, out
    code, out = _run(app, ["rollback", store_uri, "--model", "regime"])
    assert code == 0 and "LATEST -> v000001 (sequence 3" in out, out
    code, out = _run(app, ["verify", store_uri, "--model", "regime", "--version", "v000002"])
    assert code == 0, out
    # unknown key id -> a clear verdict, exit 1, no traceback
    code, out = _run(app, ["verify", store_uri], env={"EDGEFLOW_HMAC_KEYS": f"zz:{KEY_HEX}"})
    assert code == 1 and "FAIL  regime: [unknown-key-id]" in out and "Traceback" not in out


def test_models_names_the_slots_that_never_published(app: typer.Typer, tmp_path: Path) -> None:
    """A slot whose every run kept the fallback has nothing in the store; the listing says so
    by name instead of leaving it out silently."""
    import json

    uri = f"file://{tmp_path / 's'}"
    (tmp_path / "s").mkdir()
    code, out = _run(app, ["models", uri])
    assert code == 0 and "never published to this store: regime, bandit, sizer, metalabel" in out
    f = tmp_path / "model.onnx"
    f.write_bytes(make_onnx())
    assert _run(app, ["publish", uri, "-m", "bandit", str(f)])[0] == 0
    code, out = _run(app, ["models", uri])
    assert code == 0 and "bandit: LATEST -> v000001" in out, out
    assert "never published to this store: regime, sizer, metalabel (" in out
    doc = json.loads(_run(app, ["models", uri, "--json"])[1])
    assert doc["never_published"] == ["regime", "sizer", "metalabel"]


def test_verify_fails_on_tampering_and_user_errors(app: typer.Typer, tmp_path: Path) -> None:
    uri = f"file://{tmp_path / 's'}"
    f = tmp_path / "model.onnx"
    f.write_bytes(make_onnx())
    assert _run(app, ["publish", uri, "-m", "regime", str(f)])[0] == 0
    assert _run(app, ["publish", uri, "-m", "bandit", str(f)])[0] == 0
    target = tmp_path / "s" / "bandit" / "v000001" / "model.onnx"
    target.write_bytes(target.read_bytes() + b"x")
    code, out = _run(app, ["verify", uri])
    assert code == 1
    assert "OK    regime" in out and "FAIL  bandit: [size-mismatch]" in out
    assert "1/2 model(s) verified" in out
    code, out = _run(app, ["verify", f"file://{tmp_path / 'empty'}"])  # a mistyped path
    assert code == 2 and "no such store" in out and not (tmp_path / "empty").exists()
    (tmp_path / "bare").mkdir()
    code, out = _run(app, ["verify", f"file://{tmp_path / 'bare'}"])
    assert code == 1 and "no models found" in out
    code, out = _run(app, ["verify", "ftp://x"])
    assert code == 2 and "unsupported store scheme" in out and "Traceback" not in out
    code, out = _run(app, ["publish", uri, "-m", "regime", str(tmp_path / "nope.onnx")])
    assert code == 2 and "cannot read" in out
    code, out = _run(app, ["rollback", uri, "-m", "regime"])
    assert code == 2 and "no older verified version" in out
    code, out = _run(app, ["verify", uri], env={"EDGEFLOW_HMAC_KEYS": "k1:abcd"})
    assert code == 2 and "at least 32" in out and "abcd" not in out


def test_dev_key_created_0600_and_refused_in_production(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = load_config(environ={})
    with caplog.at_level(logging.WARNING):
        ring = keyring_from_env({}, cfg, workdir=tmp_path)
    path = dev_key_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.signing_key_id == "dev" and "DEV signing key" in caplog.text
    secret = path.read_text().strip().split(":")[1]
    assert secret not in caplog.text
    assert keyring_from_env({}, cfg, workdir=tmp_path).get("dev") == ring.get("dev")  # reused
    prod_env = {"EDGEFLOW_ENVIRONMENT": "production", "EDGEFLOW_DATA__SOURCE": "s3"}
    prod = load_config(environ=prod_env)
    with pytest.raises(BadKeyError, match="production refuses the dev key"):
        keyring_from_env({}, prod, workdir=tmp_path)
    with pytest.raises(BadKeyError, match="production refuses"):
        keyring_from_env({"EDGEFLOW_HMAC_KEYS": f"dev:{KEY_HEX}"}, prod, workdir=tmp_path)
    # production defaults to Ed25519: HMAC keys alone are refused unless chosen explicitly
    with pytest.raises(BadKeyError, match="algorithm ed25519 is required"):
        keyring_from_env(ENV, prod, workdir=tmp_path / "p")
    prod_hmac = load_config(
        environ=prod_env,
        overrides={"registry.algorithm": "hmac-sha256"},
    )
    ok = keyring_from_env(ENV, prod_hmac, workdir=tmp_path / "p")
    assert ok.key_ids == ("k1", "old") and ok.signing_key_id == "k1"
    assert not dev_key_path(tmp_path / "p").exists()
    with pytest.raises(KeyTooShortError):
        keyring_from_env({"EDGEFLOW_HMAC_KEYS": "a:00"}, cfg, workdir=tmp_path)


def test_key_files_from_config(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv = Ed25519PrivateKey.generate()
    (tmp_path / "ed.pem").write_bytes(
        priv.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "pub.pem").write_bytes(
        priv.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "hmac.keys").write_text(f"# rotated keys\nh1:{KEY_HEX}\n")
    signer_cfg = load_config(
        environ={},
        overrides={
            "registry.algorithm": "ed25519",
            "registry.ed25519_private_key_file": str(tmp_path / "ed.pem"),
            "registry.hmac_keys_file": str(tmp_path / "hmac.keys"),
        },
    )
    ring = keyring_from_env({}, signer_cfg, workdir=tmp_path)
    assert ring.signing_key_id == "ed25519" and set(ring.key_ids) == {"ed25519", "h1"}
    consumer_cfg = load_config(
        environ={},
        overrides={"registry.ed25519_public_key_files": {"ed25519": str(tmp_path / "pub.pem")}},
    )
    consumer = keyring_from_env({}, consumer_cfg, workdir=tmp_path, allow_dev_key=False)
    assert consumer.signing_key_id is None and consumer.key_ids == ("ed25519",)


def test_verify_state_reports_replay_and_heartbeat(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.registry import HmacKey, KeyRing, ModelClient, open_store

    monkeypatch.chdir(tmp_path)  # the publisher's state goes to ./.edgeflow/publisher-state
    uri = f"file://{tmp_path / 's'}"
    f = tmp_path / "model.onnx"
    for seed in (0, 1):
        f.write_bytes(make_onnx(seed=seed))
        assert _run(app, ["publish", uri, "-m", "regime", str(f)])[0] == 0
    store = open_store(uri)
    ring = KeyRing([HmacKey("k1", bytes.fromhex(KEY_HEX))])
    bot = ModelClient(store, "regime", ring, tmp_path / "bot")
    assert bot.refresh() and bot.sequence == 2
    code, out = _run(app, ["verify", uri, "--state", str(bot.state_file)])
    assert code == 0 and "OK    regime v000002 sequence 2" in out, out
    store.write("regime/LATEST", store.read("regime/pointers/000000000001.json"))  # replay
    code, out = _run(app, ["verify", uri])  # without the state: the history beside it
    assert code == 1 and "FAIL  regime: [replay]" in out and "holds sequence 2" in out, out
    code, out = _run(app, ["verify", uri, "--state", str(bot.state_file)])
    assert code == 1 and "FAIL  regime: [replay]" in out, out
    assert "older than sequence 2, which" in out, out  # what the bot accepted, not the floor
    code, out = _run(app, ["heartbeat", uri])  # replaces the replay, re-signs the newest
    assert code == 0 and "v000002 re-signed (sequence 3)" in out, out
    code, out = _run(app, ["heartbeat", uri, "-m", "regime"])
    assert code == 0 and "v000002 re-signed (sequence 4)" in out, out
    code, out = _run(app, ["verify", uri, "--state", str(tmp_path / "missing.json")])
    assert code == 1 and "no state file" in out
