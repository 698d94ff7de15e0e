"""The webhook endpoint: Telegram POSTs updates here, we queue them for the PTB Application.

It checks X-Telegram-Bot-Api-Secret-Token in constant time and answers a wrong one with a bare
403 that is never logged (PTB's built-in handler compares with != and logs the presented value).
It does not handle updates itself, and it never owns the event loop or the process signals.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from telegram import Bot, Update

from adapters.embedded_server import BackgroundServer

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1 << 20  # bytes; Telegram updates are small, anything bigger is not from Telegram


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` (the rest is never buffered)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class WebhookServer:
    """POST `path`: on a small starlette app of its own on `port` (0 picks a free one), or, given
    the `router` of the process's one HTTP server (the one on $PORT that also serves /healthz,
    /readyz and /metrics), as one more route of that server."""

    def __init__(
        self,
        bot: Bot,
        queue: asyncio.Queue[object],
        secret: str,
        path: str,
        port: int,
        host: str = "0.0.0.0",
        *,
        router: Router | None = None,
    ) -> None:
        self._bot = bot
        self._queue = queue
        self._secret = secret.encode()
        self._path = path or "/"
        self._route = Route(self._path, self._receive, methods=["POST"])
        self._router = router
        self._shared_port = port
        self._server: BackgroundServer | None = None
        if router is None:
            self._server = BackgroundServer(Starlette(routes=[self._route]), host, port, "telegram-webhook")

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else self._shared_port

    async def start(self) -> None:
        if self._router is not None:
            if any(getattr(r, "path", None) == self._path for r in self._router.routes):
                raise ValueError(f"TELEGRAM_WEBHOOK_URL: its path {self._path} is already served (health or metrics)")
            self._router.routes.append(self._route)
        elif self._server is not None:
            await self._server.start()
        log.info("webhook listening port=%d path=%s", self.port, self._path)

    async def stop(self) -> None:
        if self._router is not None and self._route in self._router.routes:
            self._router.routes.remove(self._route)
        if self._server is not None:
            await self._server.stop()

    async def _receive(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        # Starlette decodes headers as latin-1, so this round-trips every byte Telegram could send.
        if not hmac.compare_digest(given.encode("latin-1"), self._secret):
            return Response(status_code=403)
        declared = request.headers.get("content-length", "")
        if declared and (not declared.isdigit() or int(declared) > MAX_BODY):
            return Response(status_code=413)  # refused before a byte of the body is read
        body = await _read_capped(request, MAX_BODY)
        if body is None:
            return Response(status_code=413)  # chunked, or a Content-Length that lied
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            update = Update.de_json(data, self._bot)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            # RecursionError: deeply nested JSON. Whatever does not parse is the sender's fault: 400.
            log.info("webhook body is not an update")
            return Response(status_code=400)
        # Queue and answer at once: Telegram resends an update that is not acknowledged quickly.
        await self._queue.put(update)
        return Response(status_code=200)
