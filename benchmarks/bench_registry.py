"""Verify + load time of a published ONNX model (1 MB and 50 MB) on file:// and S3, and
the crash / race counts of the store (``--faults``).

S3 is moto's server on 127.0.0.1 (real HTTP, boto3), so the S3 figures include HTTP and
moto's own overhead but no network latency. Run:
    .venv/bin/python benchmarks/bench_registry.py            # timings -> results/registry.md
    .venv/bin/python benchmarks/bench_registry.py --faults   # -> results/registry_faults.md
"""

from __future__ import annotations

import datetime as dt
import hashlib
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

from registry_support import KEY_HEX, make_onnx

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
FAULTS_OUT = Path(__file__).resolve().parent / "results" / "registry_faults.md"
# (kills, longest random delay before the kill): an S3 publish takes ~1 s on moto, so its
# window is longer, so kills land in every phase of a publish and not only in its start
KILLS = {"file": (200, 0.4), "s3 (moto, loopback)": (60, 2.5)}
RACE_ROUNDS = 5
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


def faults() -> None:
    """Random SIGKILLs of a publishing/rolling-back process, and racing publishers."""
    from registry_crash import concurrent_publishers, random_kills

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("pipelines.registry").setLevel(logging.ERROR)
    import boto3
    from moto.server import ThreadedMotoServer

    ring = KeyRing([HmacKey("k1", bytes.fromhex(KEY_HEX))], signing_key_id="k1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    kill_rows, race_rows = [], []
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        with tempfile.TemporaryDirectory() as tmp:
            for name, (kills, delay) in KILLS.items():
                if name == "file":
                    uri, ep = f"file://{tmp}/kills", None
                else:
                    admin.create_bucket(Bucket="kills")
                    uri, ep = "s3://kills/p", endpoint
                r = random_kills(
                    open_store(uri, endpoint_url=ep),
                    uri,
                    ep,
                    ring,
                    KEY_HEX,
                    kills,
                    max_delay_s=delay,
                )
                kill_rows.append((name, r))
                print(name, r, flush=True)
            for name in KILLS:
                totals = {
                    "attempts": 0,
                    "successes": 0,
                    "refused": 0,
                    "lost": 0,
                    "heartbeat_failed": 0,
                    "s": 0.0,
                }
                for rnd in range(RACE_ROUNDS):
                    if name == "file":
                        uri, ep = f"file://{tmp}/race{rnd}", None
                    else:
                        admin.create_bucket(Bucket=f"race{rnd}")
                        uri, ep = f"s3://race{rnd}/p", endpoint
                    rr = concurrent_publishers(
                        lambda u=uri, e=ep: open_store(u, endpoint_url=e),
                        ring,
                        publishers=4,
                        each=5,
                    )
                    totals["attempts"] += rr.attempts
                    totals["successes"] += rr.successes
                    totals["refused"] += rr.refused
                    totals["lost"] += rr.lost_updates
                    totals["heartbeat_failed"] += 0 if rr.heartbeat_ok else 1
                    totals["s"] += rr.seconds
                race_rows.append((name, totals))
                print(name, totals, flush=True)
    finally:
        server.stop()
    lines = [
        "## Registry: crashes and concurrent publishers",
        "",
        "Command: `.venv/bin/python benchmarks/bench_registry.py --faults`  ",
        f"Machine: 2-core x86_64 CPU, no GPU ({platform.python_implementation()} "
        f"{platform.python_version()}, shared with other jobs)  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        "Random kills: a child process publishes (75 %) and rolls back (25 %) in a loop and is "
        "SIGKILLed at a uniformly random moment after start-up (0-0.4 s on file, 0-2.5 s on "
        "S3, where a publish takes about a second), again and again; after "
        "each kill a consumer without cache verifies `LATEST` end to end, then the scheduled "
        "heartbeat runs (same publisher state folder as the child). A torn read is any "
        "verification failure; a regression is a sequence below one seen before; a leftover "
        "is a kill that left a verified history entry above `LATEST` (the heartbeat must "
        "complete it); a heartbeat refusal is a heartbeat that failed after a kill; an orphan "
        "is a verified history entry still above `LATEST` after that heartbeat.",
        "",
        "| store | kills | publishes/rollbacks completed | torn reads | regressions | "
        "leftovers (completed) | heartbeat refusals | orphans | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in kill_rows:
        lines.append(
            f"| {name} | {r.kills} | {r.publishes_seen} | {r.torn_reads} | {r.regressions} | "
            f"{r.leftovers} | {r.heartbeat_refusals} | {r.orphans} | {r.seconds:.0f} |"
        )
    lines += [
        "",
        f"Concurrent publishers: 4 threads (own store handle each) x 5 publishes on one model, "
        f"{RACE_ROUNDS} rounds, an observer polling `LATEST` every 5 ms. A lost update is a "
        "reported success later overwritten by a lower sequence, an observed regression, or a "
        "final `LATEST` below the pointer history; refused = `ConcurrentPublishError` (the "
        "caller retries; nothing overwritten). Each round ends with a heartbeat, which must "
        "re-sign the final version at the next sequence.",
        "",
        "| store | publishes attempted | succeeded | refused (concurrent) | lost updates | "
        "final heartbeats failed |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in race_rows:
        lines.append(
            f"| {name} | {t['attempts']} | {t['successes']} | {t['refused']} | {t['lost']} | "
            f"{t['heartbeat_failed']} |"
        )
    FAULTS_OUT.parent.mkdir(parents=True, exist_ok=True)
    FAULTS_OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    if "--faults" in sys.argv[1:]:
        faults()
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    ring = KeyRing(
        [HmacKey("bench", hashlib.sha256(b"edgeflow bench key").digest())], signing_key_id="bench"
    )
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
        f"{REPEATS[1]} (1 MB) / {REPEATS[50]} (50 MB) runs; publish is a single run and "
        "includes the pre-signing check that onnxruntime loads the model and the verification "
        "of the existing manifests; client refresh includes the external-data scan and the "
        "fsynced state write.",
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
