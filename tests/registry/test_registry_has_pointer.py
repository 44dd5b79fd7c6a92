"""Whether a slot has a live pointer, asked the same way of every store."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.registry.errors import StoreError
from pipelines.registry.store import FileStore, MemoryStore, Store
from pipelines.registry.verify import has_pointer


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_a_written_pointer_is_seen_on_every_store(tmp_path: Path, kind: str) -> None:
    """The champion stage asked ``list_keys("bandit/LATEST")``: the file store lists what is
    under a folder and gave nothing for the file itself, so every run on a file store took
    the live version for the bot's fallback."""
    store: Store = FileStore(tmp_path / "s") if kind == "file" else MemoryStore()
    assert not has_pointer(store, "bandit")
    store.write("bandit/v000001/model.onnx", b"x")
    assert not has_pointer(store, "bandit")  # a version without a pointer is not live
    store.write("bandit/LATEST", b"{}")
    assert has_pointer(store, "bandit") and not has_pointer(store, "sizer")


def test_a_store_that_cannot_say_answers_yes_so_the_verification_names_why() -> None:
    class Refusing(MemoryStore):
        def exists(self, key: str) -> bool:
            raise StoreError(f"memory://{key}: head failed: AccessDenied")

    assert has_pointer(Refusing(), "bandit")
