"""Two runs of the same config and seed, started as a user starts them (the CLI, a plain
environment without PYTHONHASHSEED, at the same time), write the same bytes.

Compared: every model's ONNX, the report's data files (CSV, JSON) and the store's published
files and manifests. Left out, and why: wall-clock fields (a manifest's ``created_at``, the
recommendation's ``generated_at`` and so that file's sha256 and size in its manifest), the
MLflow run id (a new id per run), the
signatures and pointers (they sign those times) and ``summary.json`` (run id, times).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

TINY = Path(__file__).with_name("tiny.yaml")
PASS_REGIME = ("regime.min_log_loss_lift=-10.0", "regime.coverage_tolerance=0.99")
#: One key for both runs (a test key, fixed bytes from a hash so it is not a placeholder).
KEY = "repro:" + hashlib.sha256(b"edgeflow reproducibility test key").hexdigest()


def _run(workdir: Path) -> None:
    cli = Path(sys.executable).with_name("edgeflow")
    sets = [arg for s in PASS_REGIME for arg in ("--set", s)]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONHASHSEED", "PREFECT_API_URL") and not k.startswith("EDGEFLOW_")
    }
    env.update({"EDGEFLOW_HMAC_KEYS": KEY, "EDGEFLOW_SIGNING_KEY_ID": "repro"})
    args = [str(cli), "run", "--config", str(TINY), "--workdir", str(workdir), *sets]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def _without_times(name: str, blob: bytes) -> bytes:
    if name == "manifest.json":
        doc = json.loads(blob)
        doc.pop("created_at")
        doc["lineage"].pop("mlflow_run_id")
        for entry in doc["files"]:  # that file carries generated_at: compared apart from it
            if entry["path"] == "latest_recommendation.json":
                entry.pop("sha256"), entry.pop("size")
        return json.dumps(doc, sort_keys=True).encode()
    if name == "latest_recommendation.json":
        doc = json.loads(blob)
        doc.pop("generated_at")
        return json.dumps(doc, sort_keys=True).encode()
    return blob


def digests(workdir: Path) -> dict[str, str]:
    """sha256 of every compared artifact of a workdir's only run, by relative path."""
    (run,) = (workdir / "runs").iterdir()
    out: dict[str, str] = {}
    for path in sorted(run.rglob("*")):
        if path.is_file() and path.suffix in (".onnx", ".csv", ".json") and path.parent != run:
            blob = _without_times(path.name, path.read_bytes())
            out[f"run/{path.relative_to(run)}"] = hashlib.sha256(blob).hexdigest()
    store = workdir / "store"
    for path in sorted(store.glob("*/v*/*")):
        if path.is_file() and not path.name.endswith(".sig"):
            blob = _without_times(path.name, path.read_bytes())
            out[f"store/{path.relative_to(store)}"] = hashlib.sha256(blob).hexdigest()
    return out


@pytest.mark.slow
def test_two_plain_runs_write_the_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(_run, [a, b]))
    da, db = digests(a), digests(b)
    for model in ("regime", "bandit", "sizer", "metalabel"):
        assert any(k.startswith(f"run/{model}/") and k.endswith(".onnx") for k in da), model
    assert "store/regime/v000001/model.onnx" in da
    assert "store/recommendation/v000001/manifest.json" in da
    assert da.keys() == db.keys()
    assert [k for k in da if da[k] != db[k]] == []
    manifest = json.loads((a / "store" / "regime" / "v000001" / "manifest.json").read_bytes())
    lineage = manifest["lineage"]
    assert lineage["seed"] == 7 and lineage["data_hash"] and lineage["config_hash"]
    assert {"onnx", "onnxruntime", "skl2onnx", "onnxmltools", "torch"} <= set(lineage["packages"])
    assert not any(k.startswith("time/") for k in manifest["metrics"])
