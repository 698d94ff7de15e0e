"""Retries with tenacity, whose retrier is built only once a first attempt has failed.

Building an `AsyncRetrying` (strategies, statistics, state) costs CPU on every call, and nearly
every call succeeds at once: py-spy put it at 4 % of the relay's CPU (issue 11). The first
attempt runs bare; its failure is replayed as tenacity's first attempt, so attempt counts and
waits are as before (a `stop_after_delay` counts from that first failure).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type
from tenacity.stop import stop_base
from tenacity.wait import wait_base

T = TypeVar("T")

Retryable = type[BaseException] | tuple[type[BaseException], ...]


async def retried(call: Callable[[], Awaitable[T]], *, retry_on: Retryable, stop: stop_base, wait: wait_base) -> T:
    """`await call()`, retried on `retry_on` as tenacity decides; the last error is re-raised."""
    replay: list[BaseException] = []
    try:
        return await call()
    except retry_on as exc:
        replay.append(exc)
    async for attempt in AsyncRetrying(retry=retry_if_exception_type(retry_on), stop=stop, wait=wait, reraise=True):
        with attempt:
            if replay:
                raise replay.pop()
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover
