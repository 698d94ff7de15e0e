"""WebSocket `/ws/notify/{client_id}`: upstream pushes each notification it records to one socket.

Modelled on HKUDS/AI-Trader `service/server/` (commit 7c8d508 of routes_agent.py, 52a0200 of
routes_shared.py); where this differs from docs/upstream.md or the skill files, the code wins:
- `routes_agent.py` `websocket_endpoint` (about L106-125): `int(client_id)` first (a non-integer
  id ends the handler before `accept`, so the upgrade is refused), then `?token=` must belong to
  that agent or the socket is closed with 1008 before `accept` (uvicorn answers the upgrade with
  HTTP 403). Then `ctx.ws_connections[id] = websocket`: ONE socket per agent id, a newer one
  replaces the older, which stays open and hears nothing more. Frames the client sends are read
  and dropped. On any exit, `if id in ws_connections: del ws_connections[id]`: the entry is
  deleted whichever socket closed, so the closing of an old socket silences the newer one.
- `routes_shared.py` `push_agent_message` (every notification but the raw insert) and
  `routes_agent.py` `create_agent_message` (the raw insert, POST /api/claw/messages): after the
  INSERT, `send_json({'type', 'content', 'data'})` to the registered socket if any, errors
  swallowed. No message id, no created_at, no agent id; tasks are never pushed.

Fault knobs (`World.faults`): `ws_drop_probability` closes the socket instead of pushing (the
push is lost, the row stays for the heartbeat), `ws_flood` sends extra copies after each push.
`POST /_sim/ws/drop` closes every registered socket (or one agent's) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from aitrader_sim.world import World

DROP_CODE = 1012  # "service restart": what a redeploy of the server sends its sockets


@dataclass
class NotifyStats:
    accepted: int = 0
    refused: int = 0  # handshakes closed before accept (bad id or token)
    pushed: int = 0  # frames handed to a socket, flood copies included
    unrouted: int = 0  # pushes for an agent with no registered socket
    dropped: int = 0  # sockets closed by a fault


class NotifySockets:
    """`ctx.ws_connections` and the pushes into it, for one World."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.connections: dict[int, WebSocket] = {}
        self.stats = NotifyStats()
        # One ordered outbox per open socket: upstream awaits each send inside the request that
        # recorded the row; World.push_message is synchronous, so a sender task does the await.
        self._outboxes: dict[WebSocket, asyncio.Queue[dict[str, Any] | None]] = {}
        world.push_listeners.append(self._on_push)

    def detach(self) -> None:
        """Stop listening to the World (the server that served these sockets has stopped)."""
        with contextlib.suppress(ValueError):
            self.world.push_listeners.remove(self._on_push)

    def routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute("/ws/notify/{client_id}", self.endpoint),
            Route("/_sim/ws", self.describe, methods=["GET"]),
            Route("/_sim/ws/drop", self.drop_route, methods=["POST"]),
        ]

    async def endpoint(self, websocket: WebSocket) -> None:
        client_id = websocket.path_params["client_id"]
        client_id_int: int | None = None
        sender: asyncio.Task[None] | None = None
        try:
            client_id_int = int(client_id)
            agent = self.world.agent_by_token(websocket.query_params.get("token"))
            if agent is None or agent.id != client_id_int:
                self.stats.refused += 1
                await websocket.close(code=1008)
                return
            await websocket.accept()
            self.stats.accepted += 1
            self.connections[client_id_int] = websocket
            outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
            self._outboxes[websocket] = outbox
            sender = asyncio.create_task(self._send_all(websocket, outbox), name=f"ws push {client_id_int}")
            while True:
                await websocket.receive_text()
        except Exception:
            pass
        finally:
            if sender is not None:
                sender.cancel()
            self._outboxes.pop(websocket, None)
            # Upstream deletes the entry whichever socket it is now: an old socket closing
            # silences the newer one that replaced it.
            if client_id_int is not None and client_id_int in self.connections:
                del self.connections[client_id_int]

    def _on_push(self, agent_id: int, payload: dict[str, Any]) -> None:
        websocket = self.connections.get(agent_id)
        outbox = self._outboxes.get(websocket) if websocket is not None else None
        if outbox is None:
            self.stats.unrouted += 1
            return
        faults = self.world.faults
        if faults.ws_drop_probability > 0 and self.world.rng.random() < faults.ws_drop_probability:
            outbox.put_nowait(None)  # close instead of this push
            return
        for _ in range(1 + max(0, faults.ws_flood)):
            outbox.put_nowait(payload)

    async def _send_all(self, websocket: WebSocket, outbox: asyncio.Queue[dict[str, Any] | None]) -> None:
        while True:
            payload = await outbox.get()
            if payload is None:
                await self._close(websocket)
                return
            try:
                await websocket.send_json(payload)
                self.stats.pushed += 1
            except Exception:
                pass  # upstream swallows send errors too

    async def _close(self, websocket: WebSocket) -> None:
        self.stats.dropped += 1
        with contextlib.suppress(Exception):
            await websocket.close(code=DROP_CODE)

    async def drop(self, agent_id: int | None = None) -> int:
        """Close registered sockets now (all, or one agent's); returns how many."""
        targets = [ws for aid, ws in list(self.connections.items()) if agent_id is None or aid == agent_id]
        for websocket in targets:
            outbox = self._outboxes.get(websocket)
            if outbox is not None:
                outbox.put_nowait(None)  # after what is already queued, like a close on the wire
        return len(targets)

    async def drop_route(self, request: Request) -> Response:
        body: dict[str, Any] = {}
        if await request.body():
            body = await request.json()
        agent_id = body.get("agent_id") if isinstance(body, dict) else None
        if agent_id is not None and (isinstance(agent_id, bool) or not isinstance(agent_id, int)):
            return JSONResponse({"detail": "agent_id must be an integer"}, status_code=400)
        return JSONResponse({"dropped": await self.drop(agent_id)})

    async def describe(self, request: Request) -> Response:
        return JSONResponse({"connected": sorted(self.connections), **self.stats.__dict__})
