"""Random mutations of the signed documents, their signatures and the model: none accepted."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_support import make_onnx

from pipelines.registry import (
    HmacKey,
    KeyRing,
    MemoryStore,
    VerificationError,
    publish_model,
    verify_model,
)

TARGETS = (
    "regime/v000001/manifest.json",
    "regime/v000001/manifest.json.sig",
    "regime/v000001/model.onnx",
    "regime/LATEST",
)
RING = KeyRing([HmacKey("k1", hashlib.sha256(b"edgeflow fuzz key").digest())], signing_key_id="k1")


def _pristine() -> MemoryStore:
    store = MemoryStore()
    publish_model(store, "regime", {"model.onnx": make_onnx(seed=0)}, RING)
    return store


BASE = _pristine().objects


def _mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(7)
    i = rng.randrange(len(data))
    if kind == 0:  # flip one bit
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
    if kind == 1:  # truncate
        return data[:i]
    if kind == 2:  # delete a span
        return data[:i] + data[i + rng.randint(1, 16) :]
    if kind == 3:  # insert random bytes
        return data[:i] + rng.randbytes(rng.randint(1, 8)) + data[i:]
    if kind == 4:  # overwrite a span
        n = rng.randint(1, 8)
        return data[:i] + rng.randbytes(n) + data[i + n :]
    if kind == 5:  # change the case of a character / a hex digit
        c = data[i : i + 1]
        swapped = c.swapcase() if c.isalpha() else bytes([48 + (data[i] - 47) % 10])
        return data[:i] + swapped + data[i + 1 :]
    return data + b"\n"  # trailing newline


def _check_refused(objects: dict[str, bytes]) -> None:
    store = MemoryStore()
    store.objects = objects
    with pytest.raises(VerificationError):
        verify_model(store, "regime", RING)


def test_pristine_store_verifies() -> None:
    store = MemoryStore()
    store.objects = dict(BASE)
    assert verify_model(store, "regime", RING).version == "v000001"


def test_1200_seeded_random_mutations_none_accepted() -> None:
    rng = random.Random(1234)
    tried = 0
    while tried < 1200:
        objects = dict(BASE)
        for key in rng.sample(TARGETS, rng.choice((1, 1, 1, 2))):
            objects[key] = _mutate(objects[key], rng)
        if objects == BASE:
            continue
        _check_refused(objects)
        tried += 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.sampled_from(TARGETS),
    pos=st.integers(min_value=0, max_value=10_000),
    payload=st.binary(min_size=0, max_size=12),
    cut=st.integers(min_value=0, max_value=12),
)
def test_hypothesis_splices_none_accepted(target: str, pos: int, payload: bytes, cut: int) -> None:
    data = BASE[target]
    i = pos % (len(data) + 1)
    mutated = data[:i] + payload + data[i + cut :]
    if mutated == data:
        return
    _check_refused({**BASE, target: mutated})
