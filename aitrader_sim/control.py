"""The /_sim/ control API: lets out-of-process tests and benchmarks drive a World.

No auth, JSON in and out, 400 {"detail"} on bad input. Faults never apply here.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from aitrader_sim.records import ApiError
from aitrader_sim.world import World


def control_routes(world: World) -> list[BaseRoute]:
    c = _Control(world)
    return [
        Route("/_sim/agents", c.agents, methods=["POST"]),
        Route("/_sim/messages", c.messages, methods=["POST"]),
        Route("/_sim/tasks", c.tasks, methods=["POST"]),
        Route("/_sim/signals", c.signals, methods=["POST"]),
        Route("/_sim/replies", c.replies, methods=["POST"]),
        Route("/_sim/accept", c.accept, methods=["POST"]),
        Route("/_sim/follow", c.follow, methods=["POST"]),
        Route("/_sim/rotate", c.rotate, methods=["POST"]),
        Route("/_sim/faults", c.faults, methods=["GET", "POST"]),
        Route("/_sim/stats", c.stats, methods=["GET"]),
        Route("/_sim/stats/reset", c.reset_stats, methods=["POST"]),
        Route("/_sim/handed_out/{agent_id}", c.handed_out, methods=["GET"]),
        Route("/_sim/inbox/{agent_id}", c.inbox, methods=["GET"]),
    ]


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    return body


def _get(body: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in body or body[key] is None:
        if default is ...:
            raise ApiError(400, f"missing field: {key}")
        return default
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ApiError(400, f"bad type for field: {key}")
    return value


def _path_id(request: Request) -> int:
    try:
        return int(request.path_params["agent_id"])
    except ValueError:
        raise ApiError(400, "agent_id must be an integer") from None


class _Control:
    def __init__(self, world: World) -> None:
        self.world = world

    async def agents(self, request: Request) -> Response:
        body = await _body(request)
        agent = self.world.create_agent(_get(body, "name", str), _get(body, "password", str, None))
        return JSONResponse({"agent_id": agent.id, "token": agent.token, "name": agent.name})

    async def messages(self, request: Request) -> Response:
        """{"agent_id","type","content","data"?,"count"?}; with count, {i} in content counts."""
        body = await _body(request)
        agent_id = _get(body, "agent_id", int)
        kind = _get(body, "type", str)
        content = _get(body, "content", str)
        data = _get(body, "data", dict, None)
        count = _get(body, "count", int, None)
        if count is None:
            ids = [self.world.push_message(agent_id, kind, content, data)]
        else:
            ids = [self.world.push_message(agent_id, kind, content.replace("{i}", str(i)), data) for i in range(count)]
        return JSONResponse({"ids": ids})

    async def tasks(self, request: Request) -> Response:
        body = await _body(request)
        agent_id = _get(body, "agent_id", int)
        kind = _get(body, "type", str)
        input_data = _get(body, "input_data", dict, None)
        count = _get(body, "count", int, 1)
        return JSONResponse({"ids": [self.world.create_task(agent_id, kind, input_data) for _ in range(count)]})

    async def signals(self, request: Request) -> Response:
        body = await _body(request)
        try:
            signal_id = self.world.create_signal(
                _get(body, "agent_id", int),
                _get(body, "message_type", str),
                _get(body, "market", str, "us-stock"),
                _get(body, "title", str, None),
                _get(body, "content", str, None),
                _get(body, "symbol", str, None),
                symbols=_get(body, "symbols", str, None),
                tags=_get(body, "tags", str, None),
            )
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return JSONResponse({"signal_id": signal_id, "id": self.world.signals[signal_id].id})

    async def replies(self, request: Request) -> Response:
        body = await _body(request)
        reply_id = self.world.add_reply(
            _get(body, "signal_id", int), _get(body, "agent_id", int), _get(body, "content", str)
        )
        return JSONResponse({"reply_id": reply_id})

    async def accept(self, request: Request) -> Response:
        body = await _body(request)
        return JSONResponse(
            self.world.accept_reply(
                _get(body, "signal_id", int), _get(body, "reply_id", int), _get(body, "by_agent_id", int)
            )
        )

    async def follow(self, request: Request) -> Response:
        body = await _body(request)
        follower, leader = _get(body, "follower_id", int), _get(body, "leader_id", int)
        if _get(body, "unfollow", bool, False):
            return JSONResponse(self.world.unfollow(follower, leader))
        return JSONResponse(self.world.follow(follower, leader))

    async def rotate(self, request: Request) -> Response:
        body = await _body(request)
        return JSONResponse({"token": self.world.rotate_token(_get(body, "agent_id", int))})

    async def faults(self, request: Request) -> Response:
        """GET shows the switches; POST applies a partial update ({"reset": true} first)."""
        if request.method == "POST":
            body = await _body(request)
            if body.pop("reset", False):
                self.world.faults.reset()
            try:
                self.world.faults.update(body)
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
        return JSONResponse(self.world.faults.to_json())

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.world.stats())

    async def reset_stats(self, request: Request) -> Response:
        self.world.reset_stats()
        return JSONResponse({"success": True})

    async def handed_out(self, request: Request) -> Response:
        agent_id = _path_id(request)
        return JSONResponse({"agent_id": agent_id, "ids": self.world.handed_out(agent_id)})

    async def inbox(self, request: Request) -> Response:
        agent_id = _path_id(request)
        return JSONResponse(
            {
                "agent_id": agent_id,
                "all": self.world.all_message_ids(agent_id),
                "unread": self.world.unread_ids(agent_id),
                "handed_out": self.world.handed_out(agent_id),
            }
        )
