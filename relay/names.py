"""Agent names and existence, from `GET /api/agents/{id}/summary`, cached briefly in Redis.

Several upstream answers carry an author id but no name (`/api/signals/{agent_id}`, positions
copied from a leader), and the writes that target an agent (`/api/claw/messages`, tasks, follow)
never check that it exists. The summary is the one lookup that answers 404 for an unknown id.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.aitrader import AITraderClient
from relay.errors import NotFound, UpstreamError, UsageError
from relay.i18n import N_
from relay.keys import NAME_MISSING_TTL, NAME_TTL, Keys
from relay.models import AgentSummary

log = logging.getLogger(__name__)

_MISSING = ""


class NoSuchAgent(UsageError):
    def __init__(self, agent_id: int) -> None:
        super().__init__(N_("AI-Trader has no agent #{agent_id}."), agent_id=agent_id)
        self.agent_id = agent_id


class AgentDirectory:
    def __init__(self, redis: Redis, keys: Keys, client: AITraderClient) -> None:
        self._r = redis
        self._k = keys
        self._client = client

    async def summary(self, agent_id: int) -> AgentSummary | None:
        """The agent's summary, fresh from upstream; None when AI-Trader has no such agent."""
        try:
            found = await self._client.agent_summary(agent_id)
        except NotFound:
            await self._remember(agent_id, _MISSING)
            return None
        await self._remember(agent_id, found.name)
        return found

    async def require(self, agent_id: int) -> str:
        """The agent's name, or NoSuchAgent. Upstream errors propagate: existence is unknown then."""
        cached = await self._cached(agent_id)
        if cached is None:
            found = await self.summary(agent_id)
            cached = found.name if found is not None else _MISSING
        if cached == _MISSING:
            raise NoSuchAgent(agent_id)
        return cached

    async def name(self, agent_id: int) -> str:
        """Best effort, for display: "" when unknown or AI-Trader does not answer."""
        cached = await self._cached(agent_id)
        if cached is not None:
            return cached
        try:
            found = await self.summary(agent_id)
        except UpstreamError as exc:
            log.info("names: summary unavailable agent=%s (%s)", agent_id, type(exc).__name__)
            return ""
        return found.name if found is not None else ""

    async def names(self, agent_ids: Iterable[int]) -> dict[int, str]:
        wanted = sorted({a for a in agent_ids if a > 0})[:50]  # one card never names more than this
        return {a: await self.name(a) for a in wanted}

    async def _cached(self, agent_id: int) -> str | None:
        try:
            raw = await self._r.get(self._k.agent_name(agent_id))
        except RedisError:
            return None
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def _remember(self, agent_id: int, name: str) -> None:
        with contextlib.suppress(RedisError):  # the cache only saves calls
            await self._r.set(self._k.agent_name(agent_id), name[:200], ex=NAME_TTL if name else NAME_MISSING_TTL)
