"""Ctrl-C that stops the trainings now, not when they finish.

The training flow runs its models on threads. Ctrl-C raises ``KeyboardInterrupt`` in the main
thread only: Python cannot stop another thread, and the flow's task runner waits for the
running ones before it lets the interrupt out, so a run kept training for 20-30 s after
Ctrl-C. :func:`stop_on_sigint` (around every CLI command, in ``flows.cli.app.main``) makes SIGINT
also set :data:`STOP`, and the trainers' loops call :func:`checkpoint` between steps: each
training raises :class:`StopRequested` at its next step, the threads end, and the interrupt
reaches the CLI (exit 130, the flow run Crashed).

``StopRequested`` is a ``KeyboardInterrupt``, so ``except Exception`` in a trainer or a
library does not swallow it and Prefect records the task as interrupted, not failed.
"""

from __future__ import annotations

import signal
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Set by SIGINT inside :func:`stop_on_sigint`; the trainings stop at their next checkpoint.
STOP = threading.Event()
#: Threads that have run a training (:func:`training`), for :func:`join_trainings`.
_TRAINERS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


class StopRequested(KeyboardInterrupt):
    """A training stopped at a checkpoint because the run was interrupted."""


def checkpoint() -> None:
    """Raise :class:`StopRequested` when the run was interrupted; costs ~0.1 µs otherwise."""
    if STOP.is_set():
        raise StopRequested("interrupted")


@contextmanager
def training() -> Iterator[None]:
    """Mark the calling thread as one that trains (``run_trainer`` does), so an interrupted
    CLI can wait for it to reach its checkpoint before the interpreter shuts down."""
    _TRAINERS.add(threading.current_thread())
    yield


def join_trainings(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the threads that trained to end; returns whether
    they did. A second Ctrl-C ends the task runner's wait early: without this the CLI
    returned while those threads were still stopping, and their logging then failed against
    a shutting-down interpreter (pages of tracebacks after the exit line)."""
    deadline = time.monotonic() + timeout
    for thread in list(_TRAINERS):
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in list(_TRAINERS) if t is not threading.current_thread())


@contextmanager
def stop_on_sigint() -> Iterator[None]:
    """SIGINT sets :data:`STOP`, then does what it did before (raise ``KeyboardInterrupt``).

    Only in the main thread (where signal handlers live) and only when SIGINT is not ignored:
    a process started in the background by a shell keeps ignoring it. :data:`STOP` is cleared
    on the way in and left as it is on the way out: after an interrupt it stays set, because
    a second Ctrl-C can end the task runner's wait while training threads are still alive,
    and they must still stop at their next step. The caller reads it to word the exit.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        yield
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        STOP.set()
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    STOP.clear()
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
