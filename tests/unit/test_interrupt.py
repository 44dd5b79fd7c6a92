"""Ctrl-C reaches the training threads: SIGINT sets ``STOP`` and still raises in the main
thread; checkpoints raise once it is set; nothing is left set or installed afterwards."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from pipelines.interrupt import STOP, StopRequested, checkpoint, stop_on_sigint


def test_sigint_sets_stop_and_still_interrupts_the_main_thread() -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[bool] = []
    with pytest.raises(KeyboardInterrupt), stop_on_sigint():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(5)  # the handler runs here
        finally:
            seen.append(STOP.is_set())
    assert seen == [True]
    assert not STOP.is_set()  # a later run in this process trains normally
    assert signal.getsignal(signal.SIGINT) is before


def test_a_checkpoint_raises_only_once_stop_is_set_and_exception_handlers_miss_it() -> None:
    checkpoint()
    STOP.set()
    try:
        with pytest.raises(StopRequested):
            try:
                checkpoint()
            except Exception:  # a trainer's or a library's broad handler
                pytest.fail("StopRequested was caught as an Exception")
    finally:
        STOP.clear()
    assert issubclass(StopRequested, KeyboardInterrupt)


def test_an_ignored_sigint_stays_ignored() -> None:
    """A run started in the background by a shell ignores SIGINT; it must keep doing so."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_sigint():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
        assert not STOP.is_set()
    finally:
        signal.signal(signal.SIGINT, before)


def test_outside_the_main_thread_nothing_is_installed() -> None:
    before = signal.getsignal(signal.SIGINT)
    inside: list[object] = []

    def body() -> None:
        with stop_on_sigint():
            inside.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    assert inside == [before]
