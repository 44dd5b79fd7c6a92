"""Child for the random-kill crash test: publish (and now and then roll back) forever.

Usage: python registry_crash_child.py STORE_URI ENDPOINT|- KEY_HEX SEED [STATE_DIR]
Prints ``READY`` once imports are done, then ``OK <kind> <version> <sequence>`` per success;
the parent kills it with SIGKILL at a random moment.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from registry_support import make_onnx

from pipelines.registry import (
    ConcurrentPublishError,
    HmacKey,
    KeyRing,
    open_store,
    publish_model,
    rollback,
)


def main() -> None:
    uri, endpoint, key_hex, seed = sys.argv[1:5]
    state_dir = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    store = open_store(uri, endpoint_url=None if endpoint == "-" else endpoint)
    ring = KeyRing([HmacKey("k1", bytes.fromhex(key_hex))], signing_key_id="k1")
    rng = random.Random(int(seed))
    blobs = [make_onnx(seed=s) for s in range(4)]
    print("READY", flush=True)
    while True:
        try:
            if rng.random() < 0.25:
                done = rollback(store, "regime", ring, state_dir=state_dir)
            else:
                done = publish_model(
                    store,
                    "regime",
                    {"model.onnx": rng.choice(blobs)},
                    ring,
                    keep_last=3,
                    state_dir=state_dir,
                )
        except ConcurrentPublishError:
            continue
        except Exception as exc:  # a rollback with no previous version, etc.: keep going
            print(f"ERR {type(exc).__name__}: {exc}", flush=True)
            continue
        print(f"OK {done.kind} {done.version} {done.sequence}", flush=True)


if __name__ == "__main__":
    main()
