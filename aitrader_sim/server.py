"""Serve a World over real HTTP on 127.0.0.1 with uvicorn, inside a running event loop.

`async with SimulatorServer(world) as sim:` binds a free port and gives `sim.url`;
leaving the block shuts the server down. The CLI in `__main__` reuses this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from aitrader_sim.app import create_app
from aitrader_sim.middleware import ResponseLost
from aitrader_sim.notify import NotifySockets
from aitrader_sim.world import World


class _DropLostResponses(logging.Filter):
    """Injected response losses are the point of the fault, not a server error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ResponseLost)


def quiet_uvicorn_logs() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropLostResponses) for f in logger.filters):
        logger.addFilter(_DropLostResponses())


class _Server(uvicorn.Server):
    # The host process owns signal handling (pytest, or our CLI's own handlers).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SimulatorServer:
    def __init__(
        self,
        world: World | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_grace_seconds: int = 1,
    ) -> None:
        self.world = world if world is not None else World()
        self.host = host
        self._requested_port = port
        self._grace = shutdown_grace_seconds
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        self.notify: NotifySockets | None = None  # the WebSocket registry, while running

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("SimulatorServer is not running")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> SimulatorServer:
        quiet_uvicorn_logs()
        app = create_app(self.world)
        self.notify = app.state.notify
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self._requested_port,
            log_level="warning",
            access_log=False,
            log_config=None,
            lifespan="off",
            # A hanging fault must not hold shutdown hostage.
            timeout_graceful_shutdown=self._grace,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(), name="aitrader-sim")
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception() if not self._task.cancelled() else None
                raise RuntimeError(f"simulator failed to start: {exc!r}")
            await asyncio.sleep(0.005)
        sockets = [s for srv in self._server.servers for s in (srv.sockets or [])]
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            if self.notify is not None:
                self.notify.detach()
                self.notify = None
            self._server = None
            self._task = None
            self.port = 0

    async def __aenter__(self) -> SimulatorServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
