"""Verify + load time of a published ONNX model (1 MB and 50 MB) on file:// and S3.

S3 is moto's server on 127.0.0.1 (real HTTP, boto3), so the S3 figures include HTTP and
moto's own overhead but no network latency. Run:
    .venv/bin/python benchmarks/bench_registry.py
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "registry"))

from conftest import make_onnx

from pipelines.registry import (
    HmacKey,
    KeyRing,
    ModelClient,
    Store,
    open_store,
    publish_model,
    verify_model,
)

OUT = Path(__file__).resolve().parent / "results" / "registry.md"
SIZES_MB = (1, 50)
REPEATS = {1: 7, 50: 3}


def _load(blob: bytes) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])


def bench(store: Store, ring: KeyRing, mb: int) -> dict[str, float]:
    blob = make_onnx(n_in=43, n_out=4, extra_floats=mb * 262_144 - 200)
    t0 = time.perf_counter()
    publish_model(store, f"m{mb}", {"model.onnx": blob}, ring)
    publish_s = time.perf_counter() - t0
    ver, load, client = [], [], []
    for i in range(REPEATS[mb]):
        t0 = time.perf_counter()
        vv = verify_model(store, f"m{mb}", ring)
        t1 = time.perf_counter()
        _load(vv.files["model.onnx"])
        t2 = time.perf_counter()
        ver.append(t1 - t0)
        load.append(t2 - t1)
        with tempfile.TemporaryDirectory() as d:
            c = ModelClient(store, f"m{mb}", ring, Path(d))
            t3 = time.perf_counter()
            assert c.refresh()
            client.append(time.perf_counter() - t3)
            c.predict(np.zeros(43, dtype=np.float32))
        del i
    return {
        "size_mb": len(blob) / 1e6,
        "publish_s": publish_s,
        "verify_s": statistics.median(ver),
        "load_s": statistics.median(load),
        "client_s": statistics.median(client),
    }


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    ring = KeyRing([HmacKey("bench", bytes(range(66, 98)))], signing_key_id="bench")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    rows = []
    try:
        import boto3

        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="bench-models")
        with tempfile.TemporaryDirectory() as tmp:
            stores = {
                "file": open_store(f"file://{tmp}/store"),
                "s3 (moto, loopback)": open_store("s3://bench-models/p", endpoint_url=endpoint),
            }
            for mb in SIZES_MB:
                for name, store in stores.items():
                    r = bench(store, ring, mb)
                    rows.append((name, mb, r))
                    print(name, mb, {k: round(v, 4) for k, v in r.items()}, flush=True)
    finally:
        server.stop()
    lines = [
        "## Registry: verify + load of a signed model",
        "",
        "Command: `.venv/bin/python benchmarks/bench_registry.py`  ",
        f"Machine: 2-core x86_64 CPU, no GPU ({platform.python_implementation()} "
        f"{platform.python_version()}, shared with other jobs)  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        "verify = read LATEST + manifest + signatures + every file, sha256 and size checks; "
        "load = onnxruntime session from the verified bytes; client = a fresh `ModelClient."
        "refresh()` (verify, load, write local cache, swap). Medians of "
        f"{REPEATS[1]} (1 MB) / {REPEATS[50]} (50 MB) runs; publish is a single run.",
        "",
        "| store | model | publish s | verify s | load s | verify+load s | client refresh s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, _mb, r in rows:
        lines.append(
            f"| {name} | {_mb} MiB | {r['publish_s']:.3f} | {r['verify_s']:.3f} | "
            f"{r['load_s']:.3f} | {r['verify_s'] + r['load_s']:.3f} | {r['client_s']:.3f} |"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
