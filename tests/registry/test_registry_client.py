"""ModelClient: hot reload, keeps the last good model, refuses replays, recovers from cache."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from registry_support import expected_scores, make_onnx

from pipelines.registry import (
    FileHashMismatchError,
    KeyRing,
    ModelClient,
    NoModelLoadedError,
    ReplayError,
    Store,
    publish_model,
    rollback,
)

X = np.array([0.5, -1.0, 2.0, 0.25], dtype=np.float32)


def _assert_serves(client: ModelClient, version: str, seed: int) -> None:
    pred = client.predict(X)
    assert pred.version == version
    np.testing.assert_allclose(pred.outputs["scores"][0], expected_scores(X, seed=seed), rtol=1e-6)


def test_hot_reload_and_keep_last_good(store: Store, keyring: KeyRing, tmp_path: Path) -> None:
    client = ModelClient(store, "regime", keyring, tmp_path / "cache")
    with pytest.raises(NoModelLoadedError):
        client.predict(X)
    assert not client.refresh()  # nothing published yet: logged, no crash
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=0)}, keyring)
    assert client.refresh()
    _assert_serves(client, "v000001", 0)
    assert not client.refresh()  # same pointer: no reload
    assert client.last_error is None
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=1)}, keyring)
    store.write("regime/v000002/model.onnx", make_onnx(seed=9))  # corrupt the new version
    assert not client.refresh()
    assert isinstance(client.last_error, FileHashMismatchError)
    _assert_serves(client, "v000001", 0)
    # rollback is a new signed pointer with a higher sequence: accepted
    rollback(store, "regime", keyring, to="v000001")
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=2)}, keyring)
    assert client.refresh()
    _assert_serves(client, "v000003", 2)


def test_replayed_pointer_refused(store: Store, keyring: KeyRing, tmp_path: Path) -> None:
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=0)}, keyring)
    old = store.read("regime/LATEST")
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=1)}, keyring)
    client = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert client.refresh() and client.sequence == 2
    store.write("regime/LATEST", old)
    assert not client.refresh()
    assert isinstance(client.last_error, ReplayError)
    _assert_serves(client, "v000002", 1)
    # and after a restart too: the accepted sequence is remembered on disk
    restarted = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert not restarted.refresh()
    assert isinstance(restarted.last_error, ReplayError)
    _assert_serves(restarted, "v000002", 1)
    # even when the model cache is wiped: the sequence lives in its own state file
    import shutil

    shutil.rmtree(tmp_path / "cache" / "regime")
    blind = ModelClient(store, "regime", keyring, tmp_path / "cache", check_history=False)
    assert not blind.refresh()
    assert isinstance(blind.last_error, ReplayError)
    # one that reads the signed history beside LATEST goes by its newer entry (and says so)
    wiped = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert wiped.refresh() and isinstance(wiped.last_error, ReplayError)
    _assert_serves(wiped, "v000002", 1)


def test_restart_recovers_from_cache_when_store_corrupt(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=4)}, keyring)
    ModelClient(store, "regime", keyring, tmp_path / "cache").refresh()
    for key in store.list_keys("regime"):
        store.write(key, b"garbage")
    restarted = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert not restarted.refresh()
    _assert_serves(restarted, "v000001", 4)
    # a tampered local cache is not trusted either
    cached = tmp_path / "cache" / "regime" / "v000001" / "model.onnx"
    cached.write_bytes(make_onnx(seed=5))
    again = ModelClient(store, "regime", keyring, tmp_path / "cache")
    assert not again.refresh()
    with pytest.raises(NoModelLoadedError):
        again.predict(X)


@pytest.mark.parametrize("store_uri", ["file"], indirect=True)
def test_swap_is_atomic_under_concurrent_predict(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=0)}, keyring)
    client = ModelClient(store, "regime", keyring, tmp_path / "cache", poll_interval=0.01)
    client.refresh()
    expected = {f"v{i + 1:06d}": expected_scores(X, seed=i) for i in range(4)}
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            pred = client.predict(X)
            if not np.allclose(pred.outputs["scores"][0], expected[pred.version], rtol=1e-6):
                errors.append(pred.version)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    client.start()
    try:
        for seed in (1, 2, 3):
            publish_model(store, "regime", {"model.onnx": make_onnx(seed=seed)}, keyring)
            for _ in range(200):
                if client.version == f"v{seed + 1:06d}":
                    break
                threading.Event().wait(0.01)
    finally:
        client.stop()
        stop.set()
        for t in threads:
            t.join()
    assert client.version == "v000004"
    assert errors == []
