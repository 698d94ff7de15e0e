"""A SIGINT during start-up stops the process even when the start loses the cancellation, and
one that lands before the event loop owns the signals ends it without a traceback.

On Python 3.11 `asyncio.wait_for` returns its result instead of raising when the awaited call
finishes in the loop turn of the cancel (fixed in 3.12), and redis-py awaits every write through
it: the demo's start-up swallowed the Ctrl-C about once in eight and then ran until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import adapters.main
from adapters.main import _stop_signals, _until_any

REPO = Path(__file__).resolve().parents[2]

# What CI caught: a Ctrl-C while matplotlib defined its Axes class. Python 3.11 re-raises an
# exception from `__set_name__` as a RuntimeError, so a handler that raised SystemExit there
# ended the demo with status 1 and a traceback.
_SIGNAL_INSIDE_SET_NAME = """
import os, signal
from adapters.main import _defer_signals, _exit_if_signalled

_defer_signals()

class Wrapper:
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):  # the handler runs between these bytecodes
            pass

class Axes:
    get_xgridlines = Wrapper()

print("defined", flush=True)
_exit_if_signalled()
print("went on after the signal", flush=True)
"""


async def _start_that_loses_one_cancel(started: asyncio.Event) -> None:
    """What a start-up awaiting redis-py through 3.11's wait_for looks like to the cancel."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):  # the lost cancellation
        await asyncio.sleep(30)


async def test_a_sigint_whose_cancel_the_start_swallowed_still_stops_at_the_wait() -> None:
    outcome: list[str] = []

    async def main() -> None:
        with _stop_signals() as stop:
            started = asyncio.Event()
            start = asyncio.create_task(_start_that_loses_one_cancel(started))
            await started.wait()
            os.kill(os.getpid(), signal.SIGINT)
            await start  # the signal's cancel lands in this await, like in redis-py's write
            outcome.append("start finished")
            await _until_any([stop])
            outcome.append("stopped")

    task = asyncio.create_task(main())
    # The guard only keeps a broken build from hanging the suite; a working one returns at once.
    done, _ = await asyncio.wait({task}, timeout=20)
    if not done:
        task.cancel()
    assert outcome == ["start finished", "stopped"]


async def test_a_sigint_while_running_sets_the_event_without_cancelling() -> None:
    with _stop_signals() as stop:
        waiting = asyncio.create_task(_until_any([stop]))
        await asyncio.sleep(0)  # _until_any marks the relay as running
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait({waiting}, timeout=20)
        assert waiting.done() and not waiting.cancelled()
        assert stop.is_set()


def test_a_signal_during_class_creation_before_the_loop_exits_quietly_once_loaded() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_INSIDE_SET_NAME], env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "defined\n"  # the class was defined, and nothing ran past the exit


async def test_a_signal_noted_before_the_loop_took_over_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters.main, "_signalled", [signal.SIGINT])
    seen: list[bool] = []

    async def start() -> None:
        with _stop_signals() as stop:
            seen.append(stop.is_set())
            await asyncio.sleep(30)  # the start's first await: the cancel lands here

    task = asyncio.create_task(start())
    done, _ = await asyncio.wait({task}, timeout=20)
    if not done:
        task.cancel()
    assert seen == [True]
    assert done and task.cancelled()


async def test_after_the_loop_the_signals_go_back_to_the_start_up_handler() -> None:
    """A second Ctrl-C during the last of the shutdown is noted, not a KeyboardInterrupt traceback."""
    original = signal.signal(signal.SIGINT, adapters.main._remember)
    try:
        with _stop_signals():
            assert signal.getsignal(signal.SIGINT) is not adapters.main._remember  # the loop's own
        assert signal.getsignal(signal.SIGINT) is adapters.main._remember
    finally:
        signal.signal(signal.SIGINT, original)
