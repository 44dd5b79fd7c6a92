"""glibc's malloc, told how to behave in a process that trains several models on threads.

glibc gives threads their own arenas (up to 8 per core) and keeps the pages they free for
reuse, so four trainings on threads held several peaks at once (docs/performance.md). Both calls
are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
from functools import cache


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


#: mallopt parameters (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc(arenas: int = 2, mmap_threshold: int = 1 << 20) -> bool:
    """Cap the malloc arenas and fix the mmap threshold of this process.

    ``arenas`` (as ``MALLOC_ARENA_MAX``): capped at 2, the demo's peak RSS fell by ~190 MB.
    ``mmap_threshold`` (as ``MALLOC_MMAP_THRESHOLD_``): blocks of 1 MiB and more (numpy and
    torch buffers) get their own mapping, returned to the system the moment they are freed.
    glibc otherwise raises the threshold after each large free (up to 32 MiB), so later
    arrays land in the heap and stay there as fragments: 40-50 MB of the demo's peak, for
    ~1.8 s more wall time (fresh pages for each large block; docs/performance.md). Call
    before the threads start; a value set in the environment wins, and a C library without
    ``mallopt`` is left alone. Returns whether both were set.
    """
    libc = _glibc()
    if libc is None:
        return False
    done = True
    try:
        if not os.environ.get("MALLOC_ARENA_MAX"):
            done &= bool(libc.mallopt(_M_ARENA_MAX, arenas))
        if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
            done &= bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold))
    except AttributeError:
        return False
    return done


def release_memory(*, collect: bool = False) -> bool:
    """Hand the heap pages a finished step freed back to the system (``malloc_trim``).

    Called after the collect stage, each training and each model's logging: otherwise what
    one step freed stays in the process while the trainings peak. ``collect`` first runs the
    garbage collector (cycles a training leaves: ~25 MB over the demo's four, ~0.1 s each).
    Returns whether any memory was released.
    """
    if collect:
        gc.collect()
    libc = _glibc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except AttributeError:
        return False
