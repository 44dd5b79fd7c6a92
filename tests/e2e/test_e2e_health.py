"""``edgeflow health``: freshness, disk, store verification; it reports and never signs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from configs import Settings, load_config
from flows.health import check_health
from pipelines.data.store import append_bars
from pipelines.registry.keys import keyring_from_env
from pipelines.registry.publish import publish_model, rollback
from pipelines.registry.store import open_store
from pipelines.registry.verify import verify_model
from pipelines.workdir import WorkdirLayout
from tasks.reporting import record_training

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _onnx(scale: float) -> bytes:
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 2])
    k = helper.make_tensor("k", TensorProto.FLOAT, [1], [scale])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["features", "k"], ["out"])], "g", [x], [y], [k]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


@pytest.fixture()
def workdir_with_two_versions(tmp_path: Path) -> Settings:
    settings = load_config("configs/demo.yaml", overrides={"workdir": str(tmp_path)}, environ={})
    layout = WorkdirLayout(tmp_path)
    ts = pd.date_range(NOW - timedelta(hours=5), periods=5, freq="1h")
    bars = pd.DataFrame(
        {
            "ts": ts,
            "symbol": "SYN1",
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
        }
    )
    append_bars(layout.bars, bars)
    record_training(
        layout,
        {
            "finished_at": (NOW - timedelta(hours=1)).isoformat(),
            "run_id": "r",
            "models": {},
            "data_hash": "h",
        },
        len(bars),
    )
    keyring = keyring_from_env({}, settings, tmp_path)
    store = open_store(layout.store.resolve().as_uri())
    for scale in (1.0, 2.0):
        publish_model(store, "regime", {"model.onnx": _onnx(scale)}, keyring)
    return settings


def test_healthy_when_everything_is_fresh_and_verifies(workdir_with_two_versions: Settings) -> None:
    report = check_health(workdir_with_two_versions, now=NOW + timedelta(minutes=5))
    assert report["healthy"], report
    names = {c["check"] for c in report["checks"]}
    assert {
        "data_freshness",
        "last_training",
        "disk_space",
        "verify:regime",
        "model_freshness:regime",
    } <= names


def test_stale_data_and_old_training_are_unhealthy(workdir_with_two_versions: Settings) -> None:
    report = check_health(workdir_with_two_versions, now=NOW + timedelta(hours=10))
    bad = {c["check"] for c in report["checks"] if not c["ok"]}
    assert not report["healthy"]
    assert bad == {"data_freshness", "last_training"}


def test_tampered_live_model_is_reported_and_nothing_is_signed(
    workdir_with_two_versions: Settings,
) -> None:
    """A flipped byte in the live model must not become a fleet-wide rollback: health
    reports it and exits unhealthy; only an explicit operator rollback moves the pointer."""
    settings = workdir_with_two_versions
    layout = WorkdirLayout(settings.workdir)
    store_root = layout.store / "regime"
    before = {
        p.relative_to(store_root): p.read_bytes() for p in store_root.rglob("*") if p.is_file()
    }
    live = store_root / "v000002" / "model.onnx"
    live.chmod(0o644)
    tampered = live.read_bytes()[:-3] + b"xyz"
    live.write_bytes(tampered)
    for _ in range(2):  # repeated checks change nothing either
        report = check_health(settings, now=NOW + timedelta(minutes=5))
        entry = next(c for c in report["checks"] if c["check"] == "verify:regime")
        assert not report["healthy"]
        assert not entry["ok"] and entry["code"] == "hash-mismatch"
        assert "rolled_back_to" not in entry and "nothing was signed" in entry["detail"]
    after = {
        p.relative_to(store_root): p.read_bytes() for p in store_root.rglob("*") if p.is_file()
    }
    before[Path("v000002/model.onnx")] = tampered
    assert after == before  # no new pointer, no history entry, nothing deleted
    keyring = keyring_from_env({}, settings, settings.workdir, create_dev_key=False)
    store = open_store(layout.store.resolve().as_uri())
    rollback(store, "regime", keyring, to="v000001")  # the operator's explicit decision
    now_live = verify_model(store, "regime", keyring)
    assert now_live.version == "v000001"
    model = onnx.load_from_string(now_live.files["model.onnx"])
    assert model.graph.initializer[0].float_data[0] == 1.0
    again = check_health(settings, now=NOW + timedelta(minutes=5))
    assert again["healthy"], again


def test_expired_pointer_is_unhealthy(workdir_with_two_versions: Settings) -> None:
    report = check_health(workdir_with_two_versions, now=datetime.now(UTC) + timedelta(days=30))
    entry = next(c for c in report["checks"] if c["check"] == "pointer_freshness:regime")
    assert not entry["ok"] and "expired" in entry["detail"]


def test_cli_prints_json_and_exits_nonzero_when_unhealthy(
    workdir_with_two_versions: Settings,
) -> None:
    cli = Path(sys.executable).with_name("edgeflow")
    out = subprocess.run(
        [
            str(cli),
            "health",
            "--workdir",
            str(workdir_with_two_versions.workdir),
            "--data-max-age-h",
            "0.001",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["healthy"] is False
    assert next(c for c in report["checks"] if c["check"] == "data_freshness")["ok"] is False
    assert np.isfinite(report["checks"][0]["age_hours"]["SYN1"])
