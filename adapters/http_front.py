"""The process's one HTTP server, on $PORT (the port a PaaS routes to the app).

It serves /healthz, /readyz and /metrics (`relay.health`), and the Telegram webhook joins it as
one more route when webhook mode is on, so a web dyno needs one port and one server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Router

from adapters.embedded_server import BackgroundServer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SharedHttp:
    """What an adapter needs to add a route: the server's router and the port it listens on."""

    router: Router
    port: int


class FrontServer:
    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        self._app = Starlette()
        self._server = BackgroundServer(self._app, host, port, "http")
        self._port = port

    @property
    def shared(self) -> SharedHttp:
        return SharedHttp(self._app.router, self._server.port)

    def add(self, routes: Sequence[BaseRoute]) -> None:
        """Routes may be added before or after start: starlette matches them per request."""
        self._app.router.routes.extend(routes)

    async def start(self) -> None:
        try:
            await self._server.start()
        except OSError as exc:
            from relay.errors import ConfigError

            raise ConfigError(f"PORT: cannot listen on {self._port} ({(exc.strerror or str(exc)).lower()})") from None
        log.info("http on port %d: /healthz /readyz /metrics", self._server.port)

    async def stop(self) -> None:
        await self._server.stop()
