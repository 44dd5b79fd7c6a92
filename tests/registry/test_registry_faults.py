"""A publish interrupted after each step (exception, or the process killed) never lets a
consumer load a partial version; a retried publish completes; nothing published is lost."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from registry_support import KEY_HEX, expected_scores, make_onnx

from pipelines.registry import (
    KeyRing,
    ModelClient,
    Store,
    publish_model,
    verify_version,
)

STEPS = ["file:model.onnx", "manifest", "manifest_sig", "history", "pointer", "prune"]
POINTER_DONE = STEPS.index("pointer")
# every step on file://; on S3 (slow listing on moto) the steps around the signed writes
S3_STEPS = ("manifest_sig", "history", "pointer")
CASES = [pytest.param("file", k, id=f"file-{name}") for k, name in enumerate(STEPS)] + [
    pytest.param("s3", STEPS.index(name), id=f"s3-{name}") for name in S3_STEPS
]
CHILD = Path(__file__).with_name("registry_fault_child.py")


class Boom(RuntimeError):
    pass


def _setup(store: Store, keyring: KeyRing, tmp_path: Path) -> ModelClient:
    for seed in (0, 1):
        publish_model(store, "regime", {"model.onnx": make_onnx(seed=seed)}, keyring, keep_last=2)
    client = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert client.refresh() and client.version == "v000002"
    return client


def _check_consumer(client: ModelClient, k: int, *, fresh: bool = False) -> None:
    """After step k the consumer serves v2 (old) or v3 (new, complete) with the right outputs.

    A consumer that serves nothing yet goes by the signed history: once the new version's
    history entry is claimed it gets v3 (complete, and what the next heartbeat makes
    ``LATEST``); one already serving v2 keeps it until ``LATEST`` moves."""
    client.refresh()
    done = STEPS.index("history") if fresh else POINTER_DONE
    expect = "v000003" if k >= done else "v000002"
    x = np.arange(4, dtype=np.float32)
    pred = client.predict(x)
    assert pred.version == expect
    seed = 2 if expect == "v000003" else 1
    np.testing.assert_allclose(pred.outputs["scores"][0], expected_scores(x, seed=seed), rtol=1e-6)


def _retry_and_check(store: Store, keyring: KeyRing, client: ModelClient, k: int) -> None:
    pub = publish_model(store, "regime", {"model.onnx": make_onnx(seed=3)}, keyring, keep_last=2)
    assert client.refresh()
    assert client.version == pub.version
    assert client.sequence == pub.sequence
    # nothing lost: the newest keep_last versions verify, and the live one is the retry
    verify_version(store, "regime", pub.version, keyring)
    if k >= STEPS.index("manifest_sig"):
        verify_version(store, "regime", "v000003", keyring)
    else:
        verify_version(store, "regime", "v000002", keyring)


@pytest.mark.parametrize(("store_uri", "k"), CASES, indirect=["store_uri"])
def test_publish_raising_after_each_step(
    store: Store, keyring: KeyRing, tmp_path: Path, k: int
) -> None:
    client = _setup(store, keyring, tmp_path)
    seen: list[str] = []

    def on_step(name: str) -> None:
        seen.append(name)
        if len(seen) == k + 1:
            raise Boom(name)

    with pytest.raises(Boom):
        publish_model(
            store,
            "regime",
            {"model.onnx": make_onnx(seed=2)},
            keyring,
            keep_last=2,
            on_step=on_step,
        )
    assert seen == STEPS[: k + 1]
    _check_consumer(client, k)
    _retry_and_check(store, keyring, client, k)


@pytest.mark.parametrize(("store_uri", "k"), CASES, indirect=["store_uri"])
def test_publisher_killed_after_each_step(
    store: Store,
    store_uri: str,
    keyring: KeyRing,
    tmp_path: Path,
    k: int,
    request: pytest.FixtureRequest,
    child_env: dict[str, str],
) -> None:
    client = _setup(store, keyring, tmp_path)
    model_file = tmp_path / "new.onnx"
    model_file.write_bytes(make_onnx(seed=2))
    endpoint = request.getfixturevalue("s3_endpoint") if store_uri.startswith("s3") else "-"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), store_uri, endpoint, KEY_HEX, str(model_file), str(k)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline().strip()
        assert line == f"REACHED {STEPS[k]}", (line, proc.stderr.read() if proc.poll() else "")
        _check_consumer(client, k)  # concurrent: the publisher is blocked mid-publish
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _check_consumer(client, k)
    # a restart recovers from its local cache, whatever state the store was left in
    shutil.copytree(tmp_path / "cache", tmp_path / "cache-restart")
    _check_consumer(ModelClient(store, "regime", keyring, tmp_path / "cache-restart"), k)
    # a brand-new consumer without cache always gets a complete version: the pointer is one
    # signed object written in one rename/PUT, so there is no torn-pointer window any more
    fresh = ModelClient(store, "regime", keyring, tmp_path / "cache-fresh")
    _check_consumer(fresh, k, fresh=True)
    _retry_and_check(store, keyring, client, k)
