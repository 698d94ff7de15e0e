"""uvicorn inside the relay's own event loop, for the small HTTP endpoints (webhook, metrics).

`uvicorn.Server.serve()` wraps itself in `capture_signals()`, which installs SIGTERM/SIGINT handlers
with `signal.signal` and re-raises the signal after its own shutdown. The relay's main already owns
those signals through `loop.add_signal_handler`; with two owners, whichever installed its handler
last would receive the signal, so shutdown would depend on start order. Here uvicorn owns none.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process's main decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class BackgroundServer:
    """Serves an ASGI app on host:port (0 picks a free port) as a task of the running loop."""

    def __init__(self, app: ASGIApp, host: str, port: int, name: str) -> None:
        self._app = app
        self._host = host
        self.port = port
        self._name = name
        self._server: EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Binding here (not in uvicorn) turns "port in use" into an OSError for the caller instead
        # of uvicorn's sys.exit, and tells us the port when 0 was asked for.
        sock = socket.create_server((self._host, self.port), reuse_port=False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, lifespan="off", access_log=False, log_config=None, log_level="warning", server_header=False
        )
        self._server = EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=self._name)
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise a startup failure
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = None
        self._task = None
