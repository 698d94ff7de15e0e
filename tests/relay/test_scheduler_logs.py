"""A job cancelled by the scheduler's shutdown is not logged as an error; a job that fails is.

Real APScheduler, real logging through `relay.logs.configure`: the stop after a platform refused
to start cancelled a running poll claim, and its CancelledError traceback read like a crash."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from relay.logs import configure


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure("INFO", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if getattr(handler, "_relay_handler", False):
            root.removeHandler(handler)
    for handler in before[0]:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(before[1])


async def test_a_job_cancelled_at_shutdown_is_quiet_and_a_failing_job_is_not(log_text: io.StringIO) -> None:
    started = asyncio.Event()

    async def long_claim() -> None:
        started.set()
        await asyncio.sleep(60)

    async def broken() -> None:
        raise RuntimeError("a real failure")

    scheduler = AsyncIOScheduler()
    scheduler.add_job(long_claim, "date")
    scheduler.add_job(broken, "date")
    scheduler.start()
    await asyncio.wait_for(started.wait(), 30)
    while "a real failure" not in log_text.getvalue():
        await asyncio.sleep(0.01)
    scheduler.shutdown(wait=False)  # cancels long_claim mid-flight, as Relay.stop does
    for _ in range(20):
        await asyncio.sleep(0)
    out = log_text.getvalue()
    assert 'Job "test_a_job_cancelled_at_shutdown_is_quiet_and_a_failing_job_is_not.<locals>.broken' in out
    assert "long_claim" not in out and "CancelledError" not in out, out
