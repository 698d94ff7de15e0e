"""A SIGINT during start-up stops the process even when the start loses the cancellation.

On Python 3.11 `asyncio.wait_for` returns its result instead of raising when the awaited call
finishes in the loop turn of the cancel (fixed in 3.12), and redis-py awaits every write through
it: the demo's start-up swallowed the Ctrl-C about once in eight and then ran until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from adapters.main import _stop_signals, _until_any


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
