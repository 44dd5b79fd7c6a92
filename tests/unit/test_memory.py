"""glibc's malloc settings and trims: they take effect on glibc and are no-ops elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines import memory

ROOT = Path(__file__).resolve().parents[2]

glibc = pytest.mark.skipif(memory._glibc() is None, reason="not glibc")


KEPT = """
import sys
import numpy as np, psutil
from pipelines.memory import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc()
p = psutil.Process()
before = p.memory_info().rss
keep = []
for _ in range(4):
    a = np.ones(2 << 20)  # 16 MiB, freed at once
    keep.append(np.ones(1000))  # a small block allocated after it
    del a
print((p.memory_info().rss - before) >> 20)
"""


def _kept_mib(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", KEPT, mode], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return int(out.stdout)


@glibc
def test_freed_large_blocks_leave_the_process() -> None:
    """With the fixed mmap threshold freed 16 MiB arrays are returned at once; by default
    glibc raises its threshold after the first large free and keeps the next in the heap."""
    assert _kept_mib("tuned") < 8
    assert _kept_mib("default") >= 12  # what the tuning is for


@glibc
def test_release_memory_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [np.ones(10_000) for _ in range(100)]
    del blocks
    assert isinstance(memory.release_memory(collect=True), bool)


def test_no_glibc_no_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    assert memory.tune_malloc() is False
    assert memory.release_memory() is False
