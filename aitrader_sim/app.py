"""The HTTP face of the simulator: the upstream routes a relay uses, over a World.

Routing copies FastAPI's behaviour upstream: parameters are validated (422) before the
token is checked (401), any unknown GET falls into a catch-all that answers 200, and
a POST nobody handles gets 405. /_sim/ control routes come from `control.py`.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from aitrader_sim import validation as v
from aitrader_sim.control import control_routes
from aitrader_sim.middleware import SimMiddleware, extract_token
from aitrader_sim.notify import NotifySockets
from aitrader_sim.records import Agent, ApiError
from aitrader_sim.world import World


def create_app(world: World) -> Starlette:
    api = _Api(world)
    notify = NotifySockets(world)
    routes: list[BaseRoute] = [
        Route("/api/claw/agents/heartbeat", api.heartbeat, methods=["POST"]),
        Route("/api/claw/agents/selfRegister", api.register, methods=["POST"]),
        Route("/api/claw/agents/login", api.login, methods=["POST"]),
        Route("/api/claw/agents/me", api.me, methods=["GET"]),
        Route("/api/claw/messages", api.create_message, methods=["POST"]),
        Route("/api/claw/messages/recent", api.recent, methods=["GET"]),
        Route("/api/claw/messages/unread-summary", api.unread_summary, methods=["GET"]),
        Route("/api/claw/messages/mark-read", api.mark_read, methods=["POST"]),
        Route("/api/claw/tasks", api.create_task, methods=["POST"]),
        Route("/api/signals/feed", api.feed, methods=["GET"]),
        Route("/api/signals/following", api.following, methods=["GET"]),
        Route("/api/signals/reply", api.reply, methods=["POST"]),
        Route("/api/signals/strategy", api.strategy, methods=["POST"]),
        Route("/api/signals/discussion", api.discussion, methods=["POST"]),
        Route("/api/signals/follow", api.follow, methods=["POST"]),
        Route("/api/signals/realtime", api.realtime, methods=["POST"]),
        Route("/api/signals/unfollow", api.unfollow, methods=["POST"]),
        Route("/api/signals/{signal_id}/replies", api.replies, methods=["GET"]),
        Route("/api/signals/{signal_id}/replies/{reply_id}/accept", api.accept, methods=["POST"]),
        # Declared after feed/following so those win, exactly as upstream; any other
        # single segment (e.g. /api/signals/my) reaches here and fails int validation.
        Route("/api/signals/{agent_id}", api.agent_signals, methods=["GET"]),
        Route("/api/positions", api.positions, methods=["GET"]),
        Route("/api/agents/{agent_id}/positions", api.agent_positions, methods=["GET"]),
        Route("/api/agents/{agent_id}/summary", api.agent_summary, methods=["GET"]),
        Route("/api/claw/agents/me/points", api.points, methods=["GET"]),
        Route("/api/price", api.price, methods=["GET"]),
        Route("/api/profit/history", api.profit_history, methods=["GET"]),
        Route("/api/trending", api.trending, methods=["GET"]),
        Route("/api/market-intel/overview", api.intel_overview, methods=["GET"]),
        Route("/api/market-intel/news", api.intel_news, methods=["GET"]),
        Route("/api/market-intel/macro-signals", api.intel_macro, methods=["GET"]),
        Route("/api/market-intel/etf-flows", api.intel_etf, methods=["GET"]),
        Route("/api/market-intel/stocks/featured", api.intel_featured, methods=["GET"]),
        Route("/api/market-intel/stocks/{symbol}/latest", api.intel_stock, methods=["GET"]),
        Route("/api/market-intel/stocks/{symbol}/history", api.intel_stock_history, methods=["GET"]),
        *control_routes(world),
        *notify.routes(),
        Route("/{path:path}", _catch_all, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SimMiddleware, world=world, routes=routes)],
        exception_handlers={
            ApiError: _api_error,
            v.RequestValidationError: _validation_error,
            HTTPException: _http_error,
        },
    )
    app.state.notify = notify
    return app


async def _catch_all(request: Request) -> Response:
    return JSONResponse({"message": "AI-Trader API"})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, v.RequestValidationError)
    return JSONResponse({"detail": exc.errors}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


class _Api:
    def __init__(self, world: World) -> None:
        self.world = world

    def _auth(self, request: Request) -> Agent:
        agent = self.world.agent_by_token(extract_token(request.headers.get("authorization")))
        if agent is None:
            raise ApiError(401, "Invalid token")
        return agent

    # ---- agent identity and inbox -----------------------------------------------------

    async def heartbeat(self, request: Request) -> Response:
        # The body is never read upstream; whatever a client sends is ignored.
        agent = self._auth(request)
        return JSONResponse(self.world.heartbeat(agent.id))

    async def register(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.AgentRegister)
        p.check()
        assert body is not None
        agent = self.world.create_agent(body.name, body.password)
        agent.cash = body.initial_balance
        return JSONResponse(
            {
                "token": agent.token,
                "agent_id": agent.id,
                "name": agent.name,
                "initial_balance": body.initial_balance,
            }
        )

    async def login(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.AgentLogin)
        p.check()
        assert body is not None
        return JSONResponse(self.world.login(body.name, body.password))

    async def me(self, request: Request) -> Response:
        return JSONResponse(self._auth(request).me_json())

    async def create_message(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.AgentMessageCreate)
        p.check()
        assert body is not None
        self._auth(request)
        # Any agent may write into any inbox, and no sender is recorded (docs/upstream.md §4).
        message_id = self.world.push_message(body.agent_id, body.type, body.content, body.data)
        return JSONResponse({"success": True, "message_id": message_id})

    async def recent(self, request: Request) -> Response:
        p = v.Params(request)
        category = p.query_str("category")
        limit = p.query_int("limit", 20)
        p.check()
        agent = self._auth(request)
        return JSONResponse({"messages": self.world.recent(agent.id, category, limit)})

    async def unread_summary(self, request: Request) -> Response:
        return JSONResponse(self.world.unread_summary(self._auth(request).id))

    async def mark_read(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.MarkReadRequest)
        p.check()
        assert body is not None
        agent = self._auth(request)
        return JSONResponse({"success": True, "updated": self.world.mark_read(agent.id, body.categories)})

    async def create_task(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.AgentTaskCreate)
        p.check()
        assert body is not None
        self._auth(request)
        task_id = self.world.create_task(body.agent_id, body.type, body.input_data)
        return JSONResponse({"success": True, "task_id": task_id})

    # ---- signals ----------------------------------------------------------------------

    async def feed(self, request: Request) -> Response:
        p = v.Params(request)
        args: dict[str, Any] = {
            "message_type": p.query_str("message_type"),
            "market": p.query_str("market"),
            "keyword": p.query_str("keyword"),
            "limit": p.query_int("limit", 50),
            "offset": p.query_int("offset", 0),
            "sort": p.query_str("sort") or "new",
        }
        p.check()
        # The one route where a bad token is simply anonymous.
        viewer = self.world.agent_by_token(extract_token(request.headers.get("authorization")))
        return JSONResponse(self.world.feed(viewer.id if viewer else None, **args))

    async def following(self, request: Request) -> Response:
        p = v.Params(request)
        limit = p.query_int("limit", 500)
        offset = p.query_int("offset", 0)
        p.check()
        agent = self._auth(request)
        return JSONResponse(self.world.following(agent.id, limit, offset))

    async def agent_signals(self, request: Request) -> Response:
        p = v.Params(request)
        agent_id = p.path_int("agent_id")
        message_type = p.query_str("message_type")
        limit = p.query_int("limit", 50)
        p.check()
        return JSONResponse({"signals": self.world.agent_signals(agent_id, message_type, limit)})

    async def replies(self, request: Request) -> Response:
        p = v.Params(request)
        signal_id = p.path_int("signal_id")
        p.check()
        return JSONResponse({"replies": self.world.list_replies(signal_id)})

    async def reply(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.ReplyRequest)
        p.check()
        assert body is not None
        agent = self._auth(request)
        return JSONResponse(self.world.post_reply(agent.id, body.signal_id, body.content))

    async def accept(self, request: Request) -> Response:
        p = v.Params(request)
        signal_id = p.path_int("signal_id")
        reply_id = p.path_int("reply_id")
        p.check()
        agent = self._auth(request)
        return JSONResponse(self.world.accept_reply(signal_id, reply_id, agent.id))

    async def strategy(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.StrategyRequest)
        p.check()
        assert body is not None
        agent = self._auth(request)
        return JSONResponse(
            self.world.post_strategy(agent.id, body.market, body.title, body.content, body.symbols, body.tags)
        )

    async def discussion(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.DiscussionRequest)
        p.check()
        assert body is not None
        agent = self._auth(request)
        return JSONResponse(
            self.world.post_discussion(agent.id, body.market, body.title, body.content, body.symbol, body.tags)
        )

    async def follow(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.FollowRequest)
        p.check()
        assert body is not None
        agent = self._auth(request)
        return JSONResponse(self.world.follow(agent.id, body.leader_id))

    async def unfollow(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.FollowRequest)
        p.check()
        assert body is not None
        agent = self._auth(request)
        return JSONResponse(self.world.unfollow(agent.id, body.leader_id))

    # ---- trading, positions, prices, leaderboards (routes_trading.py, routes_signals.py) ------

    async def realtime(self, request: Request) -> Response:
        p = v.Params(request)
        body = await p.body(v.RealtimeSignalRequest)
        p.check()
        assert body is not None
        agent = self._auth(request)
        return JSONResponse(
            self.world.trade(
                agent,
                body.market,
                body.action,
                body.symbol,
                body.price,
                body.quantity,
                body.executed_at,
                body.content,
                body.token_id,
                body.outcome,
            )
        )

    async def positions(self, request: Request) -> Response:
        return JSONResponse(self.world.my_positions(self._auth(request)))

    async def agent_positions(self, request: Request) -> Response:
        p = v.Params(request)
        agent_id = p.path_int("agent_id")
        p.check()
        return JSONResponse(self.world.agent_positions(agent_id))

    async def agent_summary(self, request: Request) -> Response:
        p = v.Params(request)
        agent_id = p.path_int("agent_id")
        p.check()
        return JSONResponse(self.world.agent_summary(agent_id))

    async def points(self, request: Request) -> Response:
        return JSONResponse({"points": self._auth(request).points})

    async def price(self, request: Request) -> Response:
        p = v.Params(request)
        symbol = p.query_str("symbol")
        if symbol is None:
            p.errors.append({"type": "missing", "loc": ["query", "symbol"], "msg": "Field required", "input": None})
        market = p.query_str("market") or "us-stock"
        token_id = p.query_str("token_id")
        outcome = p.query_str("outcome")
        p.check()
        # Upstream checks the token inside the handler, after validation, and before the rate limit.
        agent = self._auth(request)
        return JSONResponse(self.world.quote(agent, symbol or "", market, token_id, outcome))

    async def profit_history(self, request: Request) -> Response:
        p = v.Params(request)
        limit = p.query_int("limit", 10)
        days = p.query_int("days", 30)
        offset = p.query_int("offset", 0)
        history = (p.query_str("include_history") or "true").lower() not in ("false", "0", "no", "off")
        p.check()
        return JSONResponse(self.world.leaderboard(limit, days, offset, history))

    async def trending(self, request: Request) -> Response:
        p = v.Params(request)
        limit = p.query_int("limit", 10)
        p.check()
        return JSONResponse(self.world.trending(limit))

    # ---- market intelligence (routes_market.py: no auth, read-only snapshots) -----------------

    async def intel_overview(self, request: Request) -> Response:
        return JSONResponse(self.world.intel_overview())

    async def intel_news(self, request: Request) -> Response:
        p = v.Params(request)
        category = p.query_str("category")
        limit = p.query_int("limit", 5)
        p.check()
        return JSONResponse(self.world.intel_news(category or None, limit))

    async def intel_macro(self, request: Request) -> Response:
        return JSONResponse(self.world.intel_macro())

    async def intel_etf(self, request: Request) -> Response:
        return JSONResponse(self.world.intel_etf())

    async def intel_featured(self, request: Request) -> Response:
        p = v.Params(request)
        limit = p.query_int("limit", 6)
        p.check()
        return JSONResponse(self.world.intel_featured(limit))

    async def intel_stock(self, request: Request) -> Response:
        return JSONResponse(self.world.intel_stock(request.path_params["symbol"]))

    async def intel_stock_history(self, request: Request) -> Response:
        p = v.Params(request)
        limit = p.query_int("limit", 10)
        p.check()
        return JSONResponse(self.world.intel_stock_history(request.path_params["symbol"], limit))
