"""The AI-Trader HTTP client: one method per upstream call, typed results, one error tree.

It sends both auth headers (the server reads only `Authorization`; the heartbeat skill documents
`X-Claw-Token`), puts only validated integers into URL paths, checks the shape of every answer
(unknown GET paths answer 200 `{"message": "AI-Trader API"}`), and never returns the agent token.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import stop_after_attempt, wait_random_exponential

from relay import parse
from relay.callgate import CallGate
from relay.errors import (
    BadId,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    TokenRejected,
    UnexpectedResponse,
    UpstreamError,
    UpstreamUnavailable,
)
from relay.i18n import N_
from relay.models import (
    Agent,
    AgentSummary,
    FeedPage,
    Followed,
    Heartbeat,
    Notification,
    Portfolio,
    Quote,
    Ranked,
    Signal,
    SignalReply,
    TradeOrder,
    TradeResult,
    Trend,
)
from relay.retrying import retried

log = logging.getLogger(__name__)

MAX_ID = 2**53 - 1  # ids are JSON numbers upstream; anything larger is not an id
_COOLDOWN = re.compile(r"(\d+)\s*s(?:econd)?")
# Errors raised before the request reached the server: retrying cannot duplicate anything.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
HEARTBEAT = "/api/claw/agents/heartbeat"
RECENT = "/api/claw/messages/recent"
COMMAND_CONNECTIONS = 2  # of AITRADER_CONNECTIONS, never taken by polls: commands do not wait behind them


def http_limits(connections: int) -> httpx.Limits:
    """The AI-Trader pool: `connections` opened at most, all kept alive. httpcore checks every idle
    pooled connection on each request and on each response (a `poll()` system call apiece, and a
    count of the pool per idle one), so a poll's cost grows with the pool: it is kept as small as
    the calls in flight need, and no smaller keep-alive limit closes connections it reopens."""
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


def checked_id(value: object, what: str = "id") -> int:
    """An id safe to put into a URL path: a plain positive integer, nothing else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadId(N_("{name} must be a number"), name=what)
    text = str(value)
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdigit() and (digits != text or not digits.strip("0")):
        # Zero and negatives are numbers, just not ids: say what would be accepted.
        raise BadId(N_("{name} must be a positive number"), name=what)
    if not text.isascii() or not text.isdigit():
        raise BadId(N_("{name} must be a number"), name=what)
    if len(text) > len(str(MAX_ID)):
        # Before int(): Python refuses to convert over 4,300 digits with a message of its own.
        raise BadId(N_("{name} is out of range"), name=what)
    number = int(text)
    if not 0 < number <= MAX_ID:
        raise BadId(N_("{name} is out of range"), name=what)
    return number


class AITraderClient:
    """Calls AI-Trader through an injected `httpx.AsyncClient` (base URL and timeouts set there).

    `max_calls` bounds this client's calls in flight (the poller's: they wait here, in order,
    rather than in httpx's pool, whose queue costs each request a pass over every queued one);
    below that bound a `CallGate` keeps as few in flight as keep the calls from waiting."""

    def __init__(self, http: httpx.AsyncClient, *, read_retries: int = 2, max_calls: int | None = None) -> None:
        self._http = http
        self._read_retries = read_retries
        self._gate = CallGate(max_calls, floor=min(2, max_calls)) if max_calls else None
        # The fixed paths every poll calls, joined to the base URL once (as httpx joins them:
        # appended to its path) instead of parsed and joined on every call.
        base = http.base_url
        self._urls: dict[str, httpx.URL] = {}
        if base.is_absolute_url:
            self._urls = {
                p: base.copy_with(raw_path=base.raw_path + p.lstrip("/").encode()) for p in (HEARTBEAT, RECENT)
            }

    # --- inbox ---------------------------------------------------------------------------
    async def heartbeat(self, token: str) -> Heartbeat:
        """The destructive read: returned messages are marked read upstream in the same request."""
        body = await self._call("POST", HEARTBEAT, token, idempotent=False)
        if "messages" not in body and "tasks" not in body:
            raise UnexpectedResponse(f"heartbeat answered without messages or tasks: keys={sorted(body)[:5]}")
        return parse.heartbeat(body)

    async def recent(self, token: str, *, category: str | None = None, limit: int = 50) -> tuple[Notification, ...]:
        """The read-only view of the latest messages, read or not: recovery after a lost heartbeat."""
        params: dict[str, Any] = {"limit": max(1, min(limit, 50))}
        if category:
            params["category"] = category
        body = await self._get(RECENT, token, params)
        rows = _list(body, "messages")
        return tuple(n for n in (parse.notification(r) for r in rows) if n is not None)

    async def me(self, token: str) -> Agent:
        body = await self._get("/api/claw/agents/me", token)
        # The body carries the agent's token; only id and name leave this method.
        agent_id = body.get("id", body.get("agent_id"))
        if not isinstance(agent_id, int) or isinstance(agent_id, bool):
            raise UnexpectedResponse("agents/me answered without an id")
        return Agent(
            agent_id, parse.text(body.get("name")), parse.number(body.get("points")), parse.number(body.get("cash"))
        )

    # --- signals -------------------------------------------------------------------------
    async def feed(
        self,
        *,
        keyword: str | None = None,
        message_type: str | None = None,
        market: str | None = None,
        limit: int = 20,
        offset: int = 0,
        sort: str = "new",
        token: str | None = None,
    ) -> FeedPage:
        params: dict[str, Any] = {"limit": max(1, min(limit, 100)), "offset": max(0, offset), "sort": sort}
        params.update(
            {
                name: value
                for name, value in (("keyword", keyword), ("message_type", message_type), ("market", market))
                if value
            }
        )
        body = await self._get("/api/signals/feed", token, params)
        signals = tuple(s for s in (parse.signal(r) for r in _list(body, "signals")) if s is not None)
        given_total = body.get("total")
        total = given_total if isinstance(given_total, int) else len(signals)
        has_more = body.get("has_more")
        return FeedPage(signals, total, params["offset"], bool(has_more) if has_more is not None else False)

    async def agent_signals(
        self, agent_id: int, *, message_type: str | None = None, limit: int = 50
    ) -> tuple[Signal, ...]:
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if message_type:
            params["message_type"] = message_type
        body = await self._get(f"/api/signals/{checked_id(agent_id, 'agent_id')}", None, params)
        return tuple(s for s in (parse.signal(r) for r in _list(body, "signals")) if s is not None)

    async def replies(self, signal_id: int) -> tuple[SignalReply, ...]:
        body = await self._get(f"/api/signals/{checked_id(signal_id, 'signal_id')}/replies", None)
        return tuple(r for r in (parse.reply(x) for x in _list(body, "replies")) if r is not None)

    async def my_discussions(self, token: str, agent_id: int, keyword: str | None = None) -> tuple[Signal, ...]:
        """Documented as /api/signals/my/discussions, which the public server does not implement
        (its catch-all answers 200 `{"message": ...}`); then the agent's own posts stand in."""
        params = {"keyword": keyword} if keyword else None
        try:
            body = await self._get("/api/signals/my/discussions", token, params)
            rows = body.get("signals", body.get("discussions"))
            if isinstance(rows, list):
                return tuple(s for s in (parse.signal(r) for r in rows) if s is not None)
        except (UnexpectedResponse, NotFound):
            pass
        own = await self.agent_signals(agent_id, limit=100)
        needle = (keyword or "").casefold()
        return tuple(
            s
            for s in own
            if s.message_type in ("discussion", "strategy") and needle in f"{s.title}\n{s.content}".casefold()
        )

    async def post_reply(self, token: str, signal_id: int, content: str) -> None:
        body = {"signal_id": checked_id(signal_id, "signal_id"), "content": content}
        await self._call("POST", "/api/signals/reply", token, json=body, idempotent=False)

    async def send_message(
        self, token: str, agent_id: int, kind: str, content: str, data: Mapping[str, Any] | None = None
    ) -> int | None:
        body: dict[str, Any] = {"agent_id": checked_id(agent_id, "agent_id"), "type": kind, "content": content}
        if data:
            body["data"] = dict(data)
        answer = await self._call("POST", "/api/claw/messages", token, json=body, idempotent=False)
        return answer.get("message_id") if isinstance(answer.get("message_id"), int) else None

    async def create_task(
        self, token: str, agent_id: int, kind: str, input_data: Mapping[str, Any] | None = None
    ) -> int | None:
        body: dict[str, Any] = {"agent_id": checked_id(agent_id, "agent_id"), "type": kind}
        if input_data is not None:
            body["input_data"] = dict(input_data)
        answer = await self._call("POST", "/api/claw/tasks", token, json=body, idempotent=False)
        return answer.get("task_id") if isinstance(answer.get("task_id"), int) else None

    async def follow(self, token: str, leader_id: int) -> bool:
        """True when newly followed, False when already following."""
        answer = await self._call(
            "POST", "/api/signals/follow", token, json={"leader_id": checked_id(leader_id, "agent_id")}
        )
        # The server answers {"message": "Already following"} without `success` in that case.
        return "already" not in str(answer.get("message", "")).lower()

    async def unfollow(self, token: str, leader_id: int) -> None:
        await self._call("POST", "/api/signals/unfollow", token, json={"leader_id": checked_id(leader_id, "agent_id")})

    async def following(self, token: str) -> tuple[Followed, ...]:
        body = await self._get("/api/signals/following", token, {"limit": 500, "offset": 0})
        rows = body.get("following", body.get("subscriptions"))  # server key vs documented key
        if not isinstance(rows, list):
            raise UnexpectedResponse("following answered without a list")
        out = []
        for row in rows:
            leader = row.get("leader_id") if isinstance(row, dict) else None
            if isinstance(leader, int) and not isinstance(leader, bool):
                out.append(Followed(leader, parse.text(row.get("leader_name"))))
        return tuple(out)

    # --- reads parsed elsewhere ------------------------------------------------------------
    async def read(
        self, path: str, token: str | None = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """An idempotent GET with this client's retries, error mapping and catch-all check, for
        callers that parse the answer themselves (`relay.charts.upstream`). `path` must be built
        from validated parts only (`checked_id`, fixed strings, `quote`d symbols)."""
        return await self._get(path, token, params)

    async def accept_reply(self, token: str, signal_id: int, reply_id: int) -> None:
        path = f"/api/signals/{checked_id(signal_id, 'signal_id')}/replies/{checked_id(reply_id, 'reply_id')}/accept"
        await self._call("POST", path, token, idempotent=False)

    async def post_strategy(
        self, token: str, market: str, title: str, content: str, symbols: str | None = None, tags: str | None = None
    ) -> int | None:
        """`symbols` and `tags` are comma strings: the server answers 422 to the documented lists."""
        body: dict[str, Any] = {"market": market, "title": title, "content": content}
        if symbols:
            body["symbols"] = symbols
        if tags:
            body["tags"] = tags
        answer = await self._call("POST", "/api/signals/strategy", token, json=body, idempotent=False)
        return parse.integer(answer.get("signal_id"))

    async def post_discussion(
        self, token: str, market: str, title: str, content: str, symbol: str | None = None
    ) -> int | None:
        body: dict[str, Any] = {"market": market, "title": title, "content": content}
        if symbol:
            body["symbol"] = symbol
        answer = await self._call("POST", "/api/signals/discussion", token, json=body, idempotent=False)
        return parse.integer(answer.get("signal_id"))

    async def trade(self, token: str, order: TradeOrder) -> TradeResult:
        """`POST /api/signals/realtime`, executed now. Not idempotent: a retry is a second trade."""
        body: dict[str, Any] = {
            "market": order.market,
            "action": order.action,
            "symbol": order.symbol,
            "price": order.price,
            "quantity": order.quantity,
            "executed_at": "now",
        }
        if order.token_id:
            body["token_id"] = order.token_id
        if order.outcome:
            body["outcome"] = order.outcome
        answer = await self._call("POST", "/api/signals/realtime", token, json=body, idempotent=False)
        if "signal_id" not in answer:
            raise UnexpectedResponse("realtime answered without a signal_id")
        return parse.trade_result(answer)

    # --- traders, positions, prices ------------------------------------------------------
    async def agent_summary(self, agent_id: int) -> AgentSummary:
        """Raises NotFound for an agent that does not exist (the only lookup that says so)."""
        body = await self._get(f"/api/agents/{checked_id(agent_id, 'agent_id')}/summary", None)
        found = parse.summary(body)
        if found is None:
            raise UnexpectedResponse("summary answered without an agent_id")
        return found

    async def positions(self, token: str) -> Portfolio:
        found = parse.portfolio(await self._get("/api/positions", token))
        if found is None:
            raise UnexpectedResponse("positions answered without a list")
        return found

    async def agent_positions(self, agent_id: int) -> Portfolio:
        found = parse.portfolio(await self._get(f"/api/agents/{checked_id(agent_id, 'agent_id')}/positions", None))
        if found is None:
            raise UnexpectedResponse("agent positions answered without a list")
        return found

    async def price(self, token: str, symbol: str, market: str, *, token_id: str = "", outcome: str = "") -> Quote:
        """`GET /api/price`: authenticated, one call per second per agent, 404 when no price is cached."""
        params: dict[str, Any] = {"symbol": symbol, "market": market}
        if token_id:
            params["token_id"] = token_id
        if outcome:
            params["outcome"] = outcome
        found = parse.quote(await self._call("GET", "/api/price", token, params=params))
        if found is None:
            raise UnexpectedResponse("price answered without a price")
        return found

    async def leaderboard(self, *, days: int = 30, limit: int = 10, history: bool = False) -> tuple[Ranked, ...]:
        params = {"days": days, "limit": limit, "offset": 0, "include_history": "true" if history else "false"}
        rows = _list(await self._get("/api/profit/history", None, params), "top_agents")
        return tuple(r for r in (parse.ranked(x) for x in rows) if r is not None)

    async def profit_history(self, agent_id: int, *, days: int = 30) -> Ranked | None:
        """One agent's profit curve. Upstream has no per-agent route: the leaderboard carries it,
        so its pages (50 a call) are read until the agent is found."""
        checked_id(agent_id, "agent_id")
        for offset in range(0, 1000, 50):
            params = {"days": days, "limit": 50, "offset": offset, "include_history": "true"}
            body = await self._get("/api/profit/history", None, params)
            for row in _list(body, "top_agents"):
                found = parse.ranked(row)
                if found is not None and found.agent_id == agent_id:
                    return found
            if not body.get("has_more"):
                return None
        return None

    async def trending(self, limit: int = 10) -> tuple[Trend, ...]:
        rows = _list(await self._get("/api/trending", None, {"limit": limit}), "trending")
        return tuple(t for t in (parse.trend(x) for x in rows) if t is not None)

    # --- market intelligence -----------------------------------------------------------------
    async def market_intel(self, view: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One read model under `/api/market-intel/` (overview, news, macro-signals, etf-flows,
        stocks/<SYMBOL>/latest). Every one carries `available`; without it the answer is not one."""
        body = await self._get(f"/api/market-intel/{view}", None, params)
        if "available" not in body:
            raise UnexpectedResponse(f"market-intel/{view} answered without `available`")
        return body

    # --- transport -----------------------------------------------------------------------
    async def _get(self, path: str, token: str | None, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await retried(
            lambda: self._call("GET", path, token, params=params),
            retry_on=UpstreamUnavailable,
            stop=stop_after_attempt(1 + self._read_retries),
            wait=wait_random_exponential(multiplier=0.2, max=2),
        )

    async def _call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}", "X-Claw-Token": token} if token else {}
        url = self._urls.get(path, path)
        try:
            async with self._gate or contextlib.nullcontext():
                response = await self._http.request(method, url, params=params, json=json, headers=headers)
        except _NOT_SENT as exc:
            raise UpstreamUnavailable(f"{method} {path}: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            cls = UpstreamUnavailable if idempotent else OutcomeUnknown
            raise cls(f"{method} {path}: {type(exc).__name__}") from None
        return _decode(method, path, response)


def _decode(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if 200 <= status < 300:
        return _body(method, path, response)
    detail = _detail(response)
    where = f"{method} {path} -> {status}"
    if status == 401:
        raise TokenRejected(where)
    if status == 429:
        match = _COOLDOWN.search(detail)
        wait = float(match.group(1)) if match else (1.0 if "1 second" in detail else 20.0)
        raise RateLimited(f"{where}: {detail}", retry_after=wait)
    if status == 404:
        raise NotFound(
            f"{where}: {detail}", sentence=N_("AI-Trader: {reason}") if detail else None, reason=detail[:200]
        )
    if status >= 500 or status == 408:
        raise UpstreamUnavailable(where)
    if status >= 400:
        raise UpstreamError(
            f"{where}: {detail}", sentence=N_("AI-Trader refused: {reason}") if detail else None, reason=detail[:200]
        )
    return _body(method, path, response)


def _body(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    """A success's (or a 1xx/3xx's) JSON object, read once; the error details are not looked for."""
    try:
        body = response.json()
    except ValueError:
        raise UnexpectedResponse(f"{method} {path} -> {response.status_code}: not JSON") from None
    if not isinstance(body, dict):
        raise UnexpectedResponse(f"{method} {path} -> {response.status_code}: not an object")
    if len(body) == 1 and body.get("message") == "AI-Trader API":
        raise UnexpectedResponse(f"{method} {path} -> {response.status_code}: catch-all answer (unknown path)")
    return body


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] if response.status_code < 500 else ""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        return "invalid request"
    return ""


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    rows = body.get(key)
    if not isinstance(rows, list):
        raise UnexpectedResponse(f"answer without a `{key}` list")
    return rows
