"""Ctrl-C reaches the training threads: SIGINT sets ``STOP`` and still raises in the main
thread; checkpoints raise once it is set; nothing is left set or installed afterwards."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from pipelines.interrupt import STOP, StopRequested, checkpoint, stop_on_sigint


@pytest.fixture(autouse=True)
def _default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler, as in a terminal: a shell starts a background job (a CI
    runner's, `make test &`) with SIGINT ignored, and stop_on_sigint rightly leaves an
    ignored SIGINT alone, which these tests are not about."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def test_sigint_sets_stop_and_still_interrupts_the_main_thread() -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[bool] = []
    try:
        with pytest.raises(KeyboardInterrupt), stop_on_sigint():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                threading.Event().wait(5)  # the handler runs here
            finally:
                seen.append(STOP.is_set())
        assert seen == [True]
        assert signal.getsignal(signal.SIGINT) is before
        assert STOP.is_set()  # threads still training must stop too
        with stop_on_sigint():  # the next command in this process trains normally
            assert not STOP.is_set()
            checkpoint()
        assert not STOP.is_set()
    finally:
        STOP.clear()


def test_a_second_ctrl_c_still_stops_a_training_thread() -> None:
    """The second Ctrl-C can end the task runner's wait early; the thread still training must
    stop at its next checkpoint, not run on to the end."""
    steps: list[int] = []
    outcome: list[str] = []

    def train() -> None:
        try:
            for i in range(50):
                checkpoint()
                steps.append(i)
                threading.Event().wait(0.1)
            outcome.append("ran to the end")
        except StopRequested:
            outcome.append("stopped")

    worker = threading.Thread(target=train)
    try:
        with pytest.raises(KeyboardInterrupt), stop_on_sigint():
            worker.start()
            try:
                os.kill(os.getpid(), signal.SIGINT)
                threading.Event().wait(5)
            except KeyboardInterrupt:
                os.kill(os.getpid(), signal.SIGINT)  # the second one, while "waiting"
                threading.Event().wait(5)
        worker.join(timeout=30)
        assert outcome == ["stopped"] and len(steps) < 50
    finally:
        STOP.clear()
        worker.join(timeout=30)


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


def test_the_cli_can_wait_for_the_threads_that_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a second Ctrl-C the CLI waits for the trainings to reach their checkpoint, so
    they do not log against an interpreter that is shutting down."""
    import weakref

    from pipelines import interrupt
    from pipelines.interrupt import join_trainings, training

    monkeypatch.setattr(interrupt, "_TRAINERS", weakref.WeakSet())  # not other tests' threads

    release = threading.Event()

    def train() -> None:
        with training():
            release.wait(10)

    worker = threading.Thread(target=train)
    worker.start()
    try:
        assert not join_trainings(timeout=0.2)  # still training
    finally:
        release.set()
    assert join_trainings(timeout=10) and not worker.is_alive()
