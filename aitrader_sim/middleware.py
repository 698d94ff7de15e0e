"""ASGI middleware that logs every request into the World and injects its faults.

Faults (outage, slowness, lost heartbeat responses) apply to every path except /_sim/,
so tests can keep driving the world while the "upstream" misbehaves.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from aitrader_sim.world import World

HEARTBEAT_ROUTE = "/api/claw/agents/heartbeat"
CATCH_ALL = "catch-all"
_OVERLOADED = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)
_GATEWAY_TIMEOUT = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    b"<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)


class ResponseLost(Exception):
    """Raised after a partial response so the server drops the connection mid-reply."""


def extract_token(header: str | None) -> str | None:
    """Upstream `_extract_token`: strip exactly "Bearer ", else take the whole value."""
    if not header:
        return None
    return header[7:] if header.startswith("Bearer ") else header


class SimMiddleware:
    def __init__(self, app: ASGIApp, world: World, routes: list[BaseRoute]) -> None:
        self.app = app
        self.world = world
        self.routes = routes

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                path = getattr(route, "path", CATCH_ALL)
                return CATCH_ALL if path == "/{path:path}" else path
        return CATCH_ALL  # a 405: only the GET catch-all matched the path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        route = self._template(scope)
        headers = dict(scope.get("headers") or [])
        token = extract_token((headers.get(b"authorization") or b"").decode("latin-1") or None)
        agent = self.world.agent_by_token(token)
        self.world.record_request(scope["method"], path, route, agent.id if agent else None)

        if scope["path"].startswith("/_sim/"):
            await self.app(scope, receive, send)
            return

        faults = self.world.faults
        outage = self.world.outage_active()
        if outage == "503":
            await _send_text(send, 503, _OVERLOADED)
            return
        if outage == "timeout":
            if not await _wait_for_disconnect(receive, faults.hang_seconds):
                await _send_text(send, 504, _GATEWAY_TIMEOUT)
            return
        is_heartbeat = route == HEARTBEAT_ROUTE and scope["method"] == "POST"
        in_flight = self.world.heartbeats_in_flight
        if is_heartbeat and agent is not None:
            self.world.overlapping_heartbeats += in_flight[agent.id] > 0
            in_flight[agent.id] += 1
        try:
            if faults.slow_seconds > 0:
                await asyncio.sleep(faults.slow_seconds)
            if is_heartbeat:
                await self._heartbeat(scope, receive, send)
                return
            await self.app(scope, receive, send)
        finally:
            if is_heartbeat and agent is not None:
                in_flight[agent.id] -= 1

    async def _heartbeat(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the heartbeat for real (messages get marked read), then maybe lose the reply."""
        held: list[Message] = []
        lost = False

        async def hold_if_lost(message: Message) -> None:
            nonlocal lost
            if message["type"] == "http.response.start" and message["status"] == 200:
                lost = self.world.should_lose_heartbeat()
                if lost:
                    self.world.lost_heartbeats += 1
            if lost:
                held.append(message)
            else:
                await send(message)

        await self.app(scope, receive, hold_if_lost)
        if not lost:
            return
        faults = self.world.faults
        if faults.lose_mode == "hang" and await _wait_for_disconnect(receive, faults.hang_seconds):
            return  # the client gave up; nothing left to send
        start, body = held[0], b"".join(m.get("body", b"") for m in held[1:])
        await send(start)
        # Half a body against a full content-length: the client must see a broken read.
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise ResponseLost("heartbeat response dropped by fault injection")


async def _wait_for_disconnect(receive: Receive, timeout: float) -> bool:
    """Hang like a dead upstream; True if the client disconnected within `timeout`."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_disconnect(), timeout)
        return True
    except TimeoutError:
        return False


async def _send_text(send: Send, status: int, body: bytes) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"text/html"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
