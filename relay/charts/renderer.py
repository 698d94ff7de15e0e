"""Runs chart drawing off the event loop: worker processes, a cap on renders, a short cache.

Drawing a chart is ~50-100 ms of pure CPU in matplotlib. In a thread it would hold the GIL and
stall polling and delivery; in a worker process it cannot. At most `workers` charts are drawn
at once, at most `max_waiting` more wait for a worker (beyond that the caller hears "busy"),
and identical requests within `ttl` seconds share one result: concurrent ones wait for the
same drawing (single flight), later ones get the cached picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Generic, TypeVar

from cachetools import TTLCache

from relay.charts.draw import draw
from relay.charts.specs import ChartSpec

log = logging.getLogger(__name__)

T = TypeVar("T")


class RenderBusy(Exception):
    """Too many charts are waiting already; the caller should try again shortly."""


WORKER_NICENESS = 10
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker_init(parent: int) -> None:
    """Runs first in each worker.

    Lower priority: the OS gives the relay's own process the CPU first, so on a busy machine a
    burst of drawing slows the charts, not polling and delivery. And on Linux the worker dies with
    the relay: a SIGKILLed relay would otherwise leave its workers behind, still holding the
    relay's stdout and stderr (a supervisor reading them would wait forever)."""
    with contextlib.suppress(OSError):  # not permitted here: the worker runs at normal priority
        os.nice(WORKER_NICENESS)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the relay died before the line above took effect
            os._exit(0)


def _warm() -> bool:
    """Imported in each new worker so the first real chart does not pay matplotlib's import."""
    return True


class ChartRenderer:
    """Draws `ChartSpec`s in worker processes, at most `workers` at a time."""

    def __init__(self, *, workers: int = 1, max_waiting: int = 200) -> None:
        self._workers = max(1, workers)
        self._slots = asyncio.Semaphore(self._workers)
        self._max_waiting = max_waiting
        self._waiting = 0
        self._pool: ProcessPoolExecutor | None = None
        # Children that are not this renderer's workers (another renderer's, in tests): never killed.
        self._others: set[int | None] = set()
        self.rendered = 0  # charts drawn (not served from cache), for tests and benchmarks

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._others = {p.pid for p in multiprocessing.active_children()}
            # spawn, not fork: forking a process that runs an event loop and threads copies
            # their locks mid-use; a spawned worker starts clean and imports only the drawing.
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def warm(self) -> None:
        """Start the workers before the first /chart (spawning costs about a second each)."""
        loop = asyncio.get_running_loop()
        pool = self._executor()
        await asyncio.gather(*(loop.run_in_executor(pool, _warm) for _ in range(self._workers)))

    async def render(self, spec: ChartSpec) -> bytes:
        if self._waiting >= self._max_waiting:
            raise RenderBusy(f"{self._waiting} charts waiting")
        self._waiting += 1
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                try:
                    png = await loop.run_in_executor(self._executor(), draw, spec)
                except BrokenProcessPool:
                    # A worker died (OOM killer, signal): start a fresh pool once and retry.
                    log.warning("chart worker died; restarting the pool")
                    self._shutdown_pool()
                    png = await loop.run_in_executor(self._executor(), draw, spec)
                self.rendered += 1
                return png
        finally:
            self._waiting -= 1

    def _shutdown_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def close(self, timeout: float | None = None) -> None:
        """Let the workers finish, for at most `timeout` seconds; then stop them hard.

        Without the bound, a worker still importing matplotlib (a second or more on a busy
        machine) kept the relay's process alive past its shutdown grace, since the interpreter
        joins executor workers at exit. A chart is only drawn on request, so killing one loses
        nothing: the user asks again."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        ours = {p.pid for p in multiprocessing.active_children()} - self._others
        # shutdown(wait=True) blocks: run it in a thread so the loop keeps serving the stop.
        joined = asyncio.ensure_future(asyncio.to_thread(pool.shutdown, True, cancel_futures=True))
        try:
            await asyncio.wait_for(asyncio.shield(joined), timeout)
        except TimeoutError:
            log.warning("chart workers still busy at the end of the grace; stopping them")
            for child in multiprocessing.active_children():
                if child.pid in ours:
                    child.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(joined, 5.0)


class ShortCache(Generic[T]):
    """Results kept for `ttl` seconds (LRU-bounded to `size`), with concurrent identical calls
    sharing one computation. In-process on purpose: a chart costs milliseconds to redraw, so
    sharing pictures between relay processes through Redis would not pay for the bytes."""

    def __init__(self, *, ttl: float, size: int = 128, timer: Callable[[], float] | None = None) -> None:
        self._done: TTLCache[Hashable, T] = (
            TTLCache(maxsize=size, ttl=ttl, timer=timer) if timer else TTLCache(maxsize=size, ttl=ttl)
        )
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}
        self.hits = 0

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        if key in self._done:
            self.hits += 1
            return self._done[key]
        pending = self._inflight.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await compute()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved here, so a failure nobody else awaited is not logged as lost
            raise
        else:
            future.set_result(value)
            self._done[key] = value
            return value
        finally:
            del self._inflight[key]
