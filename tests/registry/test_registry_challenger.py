"""The ``CHALLENGER`` pointer on both backends (a folder and a real S3 server): published
beside ``LATEST`` without moving it, verified like it, never interchangeable with it,
withdrawn by a signed envelope, promoted by moving ``LATEST``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from registry_support import make_onnx

from pipelines.registry import (
    KeyRing,
    PointerExpiredError,
    PointerInvalidError,
    PublishError,
    ReplayError,
    Store,
    StoreError,
    publish_model,
    verify_model,
)
from pipelines.registry.challenger import (
    promote_challenger,
    publish_challenger,
    standing_challenger,
    withdraw_challenger,
)
from pipelines.registry.verify import read_challenger


def _champion_and_challenger(store: Store, keyring: KeyRing, state: Path) -> None:
    publish_model(store, "bandit", {"model.onnx": make_onnx(seed=1)}, keyring, state_dir=state)
    publish_challenger(
        store,
        "bandit",
        {"model.onnx": make_onnx(seed=2)},
        keyring,
        metrics={"onnx_max_abs_diff": 0.0},
        state_dir=state,
    )


def test_challenger_is_published_beside_latest(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    state = tmp_path / "publisher-state"
    _champion_and_challenger(store, keyring, state)
    latest_before = store.read("bandit/LATEST")
    live = verify_model(store, "bandit", keyring)
    assert (live.version, live.sequence) == ("v000001", 1)  # the champion still serves
    view = read_challenger(store, "bandit", keyring)
    assert view is not None and view.version is not None
    assert (view.version.version, view.pointer.sequence, view.pointer.kind) == (
        "v000002",
        1,
        "publish",
    )
    assert view.version.files["model.onnx"] == make_onnx(seed=2)
    assert view.version.manifest["previous_version"] == "v000001"
    assert store.exists("bandit/challenger-pointers/000000000001.json")
    payload = json.loads(base64.b64decode(json.loads(store.read("bandit/CHALLENGER"))["payload"]))
    assert payload["schema"] == "edgeflow.challenger/1"
    # a second challenger replaces the first under a higher challenger sequence
    publish_challenger(store, "bandit", {"model.onnx": make_onnx(seed=3)}, keyring, state_dir=state)
    again = read_challenger(store, "bandit", keyring, min_sequence=1)
    assert again is not None and again.version is not None
    assert (again.version.version, again.pointer.sequence) == ("v000003", 2)
    assert store.read("bandit/LATEST") == latest_before


def test_envelopes_are_not_interchangeable(store: Store, keyring: KeyRing, tmp_path: Path) -> None:
    """A challenger envelope copied over LATEST would promote an unconfirmed model with a
    valid signature; a LATEST envelope copied over CHALLENGER would shadow the champion."""
    state = tmp_path / "publisher-state"
    _champion_and_challenger(store, keyring, state)
    latest, challenger = store.read("bandit/LATEST"), store.read("bandit/CHALLENGER")
    store.write("bandit/LATEST", challenger)
    with pytest.raises(PointerInvalidError, match="schema"):
        verify_model(store, "bandit", keyring)
    store.write("bandit/LATEST", latest)
    store.write("bandit/CHALLENGER", latest)
    with pytest.raises(PointerInvalidError, match="schema"):
        read_challenger(store, "bandit", keyring)


def test_challenger_sequence_and_expiry_rules(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    state = tmp_path / "publisher-state"
    _champion_and_challenger(store, keyring, state)
    first = store.read("bandit/CHALLENGER")
    with pytest.raises(ReplayError):
        read_challenger(store, "bandit", keyring, min_sequence=1)
    later = datetime.now(UTC) + timedelta(hours=73)
    with pytest.raises(PointerExpiredError, match="CHALLENGER"):
        read_challenger(store, "bandit", keyring, now=later)
    # withdrawn: a signed "no challenger", and the withdrawn envelope put back is a replay
    withdrawn = withdraw_challenger(store, "bandit", keyring, state_dir=state)
    assert withdrawn is not None and (withdrawn.kind, withdrawn.sequence) == ("withdraw", 2)
    view = read_challenger(store, "bandit", keyring)
    assert view is not None and view.version is None
    assert standing_challenger(store, "bandit", keyring, state_dir=state) is None
    store.write("bandit/CHALLENGER", first)
    with pytest.raises(ReplayError):
        read_challenger(store, "bandit", keyring, min_sequence=withdrawn.sequence)
    assert standing_challenger(store, "bandit", keyring, state_dir=state) is None
    with pytest.raises(PublishError, match="no challenger stands"):
        promote_challenger(store, "bandit", keyring, state_dir=state)
    assert verify_model(store, "bandit", keyring).version == "v000001"


def test_promotion_moves_latest_and_withdraws(
    store: Store, keyring: KeyRing, tmp_path: Path
) -> None:
    state = tmp_path / "publisher-state"
    _champion_and_challenger(store, keyring, state)
    with pytest.raises(PublishError, match="not v000009"):
        promote_challenger(store, "bandit", keyring, expected_version="v000009", state_dir=state)
    assert verify_model(store, "bandit", keyring).version == "v000001"
    done = promote_challenger(store, "bandit", keyring, expected_version="v000002", state_dir=state)
    assert (done.version, done.sequence, done.previous_version) == ("v000002", 2, "v000001")
    live = verify_model(store, "bandit", keyring, min_sequence=1)
    assert (live.version, live.pointer.kind if live.pointer else None) == ("v000002", "publish")
    view = read_challenger(store, "bandit", keyring)
    assert view is not None and view.version is None and view.pointer.kind == "withdraw"
    # the next direct publish continues both the version and the LATEST sequence
    nxt = publish_model(
        store, "bandit", {"model.onnx": make_onnx(seed=4)}, keyring, state_dir=state
    )
    assert (nxt.version, nxt.sequence, nxt.previous_version) == ("v000003", 3, "v000002")


def test_challenger_without_champion(store: Store, keyring: KeyRing, tmp_path: Path) -> None:
    """A slot that never published (the bot plays its fallback) can shadow a challenger."""
    state = tmp_path / "publisher-state"
    pub = publish_challenger(
        store, "sizer", {"model.onnx": make_onnx(seed=5)}, keyring, state_dir=state
    )
    assert (pub.version, pub.previous_version) == ("v000001", None)
    assert not store.exists("sizer/LATEST")
    done = promote_challenger(store, "sizer", keyring, state_dir=state)
    assert (done.version, done.sequence) == ("v000001", 1)
    assert verify_model(store, "sizer", keyring).version == "v000001"


def test_a_challenger_swap_is_undone_or_kept_as_a_latest_swap_is(
    store: Store, keyring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``CHALLENGER`` moves through the same claim-and-swap as ``LATEST``: a write that took
    effect but whose reply was lost stands (undoing it would delete the history entry of the
    envelope ``CHALLENGER`` holds, and the next publish would reuse its sequence); a swap
    that did not take effect is undone, so nothing of it can go live later."""
    state = tmp_path / "publisher-state"
    _champion_and_challenger(store, keyring, state)
    real_swap = store.swap

    def lost_reply(key: str, data: bytes, expected_etag: str | None) -> None:
        real_swap(key, data, expected_etag)
        raise StoreError(f"{store.uri}/{key}: connection reset after the write")

    monkeypatch.setattr(store, "swap", lost_reply)
    kept = publish_challenger(
        store, "bandit", {"model.onnx": make_onnx(seed=3)}, keyring, state_dir=state
    )
    monkeypatch.undo()
    assert (kept.version, kept.sequence) == ("v000003", 2)
    assert store.exists("bandit/challenger-pointers/000000000002.json")
    view = standing_challenger(store, "bandit", keyring, state_dir=state)
    assert view is not None and view.version is not None and view.version.version == "v000003"

    def broken_swap(key: str, data: bytes, expected_etag: str | None) -> None:
        raise StoreError(f"{store.uri}/{key}: write failed: InternalError")

    monkeypatch.setattr(store, "swap", broken_swap)
    with pytest.raises(PublishError, match="CHALLENGER was not replaced"):
        withdraw_challenger(store, "bandit", keyring, state_dir=state)
    monkeypatch.undo()
    assert not store.exists("bandit/challenger-pointers/000000000003.json")
    view = standing_challenger(store, "bandit", keyring, state_dir=state)
    assert view is not None and view.version is not None and view.version.version == "v000003"
    assert verify_model(store, "bandit", keyring).version == "v000001"
