"""Child process for the fault-injection tests: publish, and block after step ``k``.

Usage: python registry_fault_child.py STORE_URI ENDPOINT|- KEY_HEX MODEL_FILE STEP_INDEX
Prints ``REACHED <step>`` and sleeps until killed when it reaches step STEP_INDEX.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipelines.registry import HmacKey, KeyRing, open_store, publish_model


def main() -> None:
    uri, endpoint, key_hex, model_file, stop_at = sys.argv[1:6]
    store = open_store(uri, endpoint_url=None if endpoint == "-" else endpoint)
    ring = KeyRing([HmacKey("k1", bytes.fromhex(key_hex))], signing_key_id="k1")
    seen = [0]

    def on_step(name: str) -> None:
        if seen[0] == int(stop_at):
            print(f"REACHED {name}", flush=True)
            while True:
                time.sleep(60)
        seen[0] += 1

    publish_model(
        store,
        "regime",
        {"model.onnx": Path(model_file).read_bytes()},
        ring,
        keep_last=2,
        on_step=on_step,
    )
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
