"""Crash and race harnesses shared by the tests and ``benchmarks/bench_registry.py``.

``random_kills``: a publisher process (publishing and rolling back in a loop, with its own
state folder) is SIGKILLed at a random moment, N times; after each kill a fresh consumer
with no cache must verify ``LATEST`` end to end (a failure is a *torn read*) and the
sequence must not have gone back. Then the scheduled heartbeat runs (same state folder): a
refusal is a *heartbeat refusal*; a verified history entry still above ``LATEST`` after it
is an *orphan*. ``leftovers`` counts kills that left a history entry above ``LATEST``
(the heartbeat must complete those).

``concurrent_publishers``: several publishers race on one model while an observer polls
``LATEST``; a *lost update* is a publish that reported success but whose pointer was
overwritten by a lower sequence, an observed sequence regression, or a final ``LATEST``
below the highest verified history entry.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry_support import make_onnx

from pipelines.registry import (
    ConcurrentPublishError,
    KeyRing,
    RegistryError,
    Store,
    VerificationError,
    heartbeat,
    publish_model,
    read_pointer,
    verify_model,
)
from pipelines.registry.publish import read_state
from pipelines.registry.verify import history_sequences, read_history

CHILD = Path(__file__).with_name("registry_crash_child.py")


@dataclass
class KillReport:
    kills: int = 0
    torn_reads: int = 0
    regressions: int = 0
    leftovers: int = 0
    heartbeat_refusals: int = 0
    orphans: int = 0
    publishes_seen: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def random_kills(
    store: Store,
    store_uri: str,
    endpoint: str | None,
    keyring: KeyRing,
    key_hex: str,
    kills: int,
    *,
    max_delay_s: float = 0.4,
    seed: int = 0,
    state_dir: Path | None = None,
) -> KillReport:
    """Kill a looping publisher ``kills`` times at random moments; count torn reads, then
    heartbeat after each kill and count refusals and orphaned history entries."""
    import tempfile

    own_state = tempfile.TemporaryDirectory() if state_dir is None else None
    state = Path(own_state.name) if own_state is not None else Path(state_dir or ".")
    rng = random.Random(seed)
    report = KillReport()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(CHILD.parent), env.get("PYTHONPATH", ""), str(CHILD.parents[2])]
    )
    last_seq = 0
    t0 = time.perf_counter()
    publish_model(
        store, "regime", {"model.onnx": make_onnx(seed=9)}, keyring, keep_last=3, state_dir=state
    )
    for i in range(kills):
        proc = subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                store_uri,
                endpoint or "-",
                key_hex,
                str(seed + i),
                str(state),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline().strip()
        if line != "READY":
            proc.kill()
            raise RuntimeError(f"crash child did not start: {line} {proc.stderr.read()}")
        time.sleep(rng.uniform(0.0, max_delay_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out = proc.stdout.read()
        report.publishes_seen += out.count("\nOK ") + out.startswith("OK ")
        report.kills += 1
        try:
            vv = verify_model(store, "regime", keyring)
        except VerificationError as exc:
            report.torn_reads += 1
            report.errors.append(f"kill {i}: {exc.code}: {exc}")
            continue
        if vv.sequence is not None and vv.sequence < last_seq:
            report.regressions += 1
        last_seq = max(last_seq, vv.sequence or 0)
        if _above_latest(store, keyring):
            report.leftovers += 1
        try:
            beat = heartbeat(store, "regime", keyring, state_dir=state)
        except RegistryError as exc:
            report.heartbeat_refusals += 1
            report.errors.append(f"heartbeat after kill {i}: {exc.code}: {exc}")
        else:
            last_seq = max(last_seq, beat.sequence)
        report.orphans += _above_latest(store, keyring)
    report.seconds = time.perf_counter() - t0
    if own_state is not None:
        own_state.cleanup()
    return report


def _above_latest(store: Store, keyring: KeyRing) -> int:
    """Verified history entries above the verified ``LATEST`` (0 when ``LATEST`` is newest)."""
    state = read_state(store, "regime", keyring, manifests=False)
    if state.pointer is None:
        return 1
    return sum(
        1
        for seq in history_sequences(state.keys, "regime")
        if seq > state.pointer.sequence and _verifies(store, keyring, seq)
    )


def _verifies(store: Store, keyring: KeyRing, seq: int) -> bool:
    try:
        read_history(store, "regime", keyring, seq)
    except RegistryError:
        return False
    return True


@dataclass
class RaceReport:
    publishers: int = 0
    attempts: int = 0
    successes: int = 0
    refused: int = 0
    lost_updates: int = 0
    regressions_observed: int = 0
    final_sequence: int = 0
    heartbeat_ok: bool = False
    seconds: float = 0.0


def concurrent_publishers(
    make_store: Callable[[], Store],
    keyring: KeyRing,
    *,
    publishers: int = 4,
    each: int = 5,
) -> RaceReport:
    """``publishers`` threads, each with its own store handle, publish ``each`` times."""
    report = RaceReport(publishers=publishers)
    successes: list[Any] = []
    lock = threading.Lock()
    stop = threading.Event()
    observed: list[int] = []
    seed_store = make_store()
    publish_model(seed_store, "regime", {"model.onnx": make_onnx(seed=0)}, keyring)

    def publisher(idx: int) -> None:
        store = make_store()
        for j in range(each):
            try:
                pub = publish_model(
                    store, "regime", {"model.onnx": make_onnx(seed=1 + (idx + j) % 3)}, keyring
                )
            except ConcurrentPublishError:
                with lock:
                    report.attempts += 1
                    report.refused += 1
                continue
            with lock:
                report.attempts += 1
                successes.append(pub)

    def observer() -> None:
        store = make_store()
        while not stop.is_set():
            try:
                observed.append(read_pointer(store, "regime", keyring)[0].sequence)
            except VerificationError:
                observed.append(-1)
            time.sleep(0.005)

    t0 = time.perf_counter()
    obs = threading.Thread(target=observer)
    obs.start()
    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(publishers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    obs.join()
    report.seconds = time.perf_counter() - t0
    final = read_pointer(seed_store, "regime", keyring)[0]
    state = read_state(seed_store, "regime", keyring, manifests=False)
    report.successes = len(successes)
    report.final_sequence = final.sequence
    report.regressions_observed = sum(
        1 for a, b in itertools.pairwise(observed) if b < a or b == -1
    )
    seqs = sorted(p.sequence for p in successes)
    report.lost_updates = (
        sum(1 for s in seqs if s > final.sequence)
        + report.regressions_observed
        + (1 if state.top_sequence > final.sequence else 0)
        + (1 if seqs and final.sequence != seqs[-1] else 0)
        + (len(seqs) - len(set(seqs)))  # two successes with one sequence
    )
    beat = heartbeat(seed_store, "regime", keyring)  # and the scheduled heartbeat still works
    report.heartbeat_ok = (beat.sequence, beat.version) == (final.sequence + 1, final.version)
    return report
