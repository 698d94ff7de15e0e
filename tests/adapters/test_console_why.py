"""/why and a watch filter typed in the console chat, through the real ConsoleAdapter and a
started Relay (Redis, the simulator over HTTP)."""

from __future__ import annotations

import asyncio
import io
import random
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from adapters.console import ConsoleAdapter
from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.logs import Redactor
from relay.models import ChatRef
from relay.tokens import TokenBox

REF = re.compile(r"/why ([a-z2-7]{8})\b")


class Terminal:
    def __init__(self, relay: Relay, reader: asyncio.StreamReader, out: io.StringIO) -> None:
        self.relay, self.reader, self.out = relay, reader, out

    async def type(self, line: str, expect: str, timeout: float = 30) -> str:
        """Types `line`; returns what was printed after it once it contains `expect`."""
        start = len(self.out.getvalue())
        self.reader.feed_data((line + "\n").encode())
        return await self.shows(expect, start, timeout)

    async def shows(self, expect: str, start: int = 0, timeout: float = 30) -> str:
        async def loop() -> str:
            while expect not in (shown := self.out.getvalue()[start:]):
                await asyncio.sleep(0.05)
            return shown

        return await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def terminal(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox
) -> AsyncIterator[Terminal]:
    reader, out = asyncio.StreamReader(), io.StringIO()
    console = ConsoleAdapter(reader, out)
    relay = Relay(settings, redis, http, box, [console], redactor=Redactor(), rng=random.Random(3))
    async with relay:
        yield Terminal(relay, reader, out)


async def test_why_and_a_feed_filter_in_the_console(terminal: Terminal, world: World) -> None:
    agent = world.create_agent("ann")
    await terminal.type(f"/link {agent.token}", "Linked ann")
    await terminal.type("/subscribe", "Subscribed")
    world.push_message(agent.id, "strategy_reply", "erin replied to your strategy", {"signal_id": 55})
    await terminal.relay.poller.poll(agent.id)
    shown = await terminal.shows("erin replied")
    found = REF.search(shown.split("erin replied", 1)[1])
    assert found, shown

    async def delivered() -> None:
        while not any(
            e.ref == found.group(1) and e.step == "delivered"
            for e in await terminal.relay.journal.chat_events(ChatRef("console", "local"))
        ):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(delivered(), 30)
    answer = await terminal.type(f"/why {found.group(1)}", "accepted by console")
    assert "Delivered" in answer and "signal 55" in answer and "routed by subscription #" in answer, answer

    await terminal.type("/subscribe feed btc symbol=BTC -scam", "Watching the feed")
    listing = await terminal.type("/subscriptions", "symbol=BTC -scam")
    assert "feed “btc” symbol=BTC -scam" in listing
    assert "market must be one of" in await terminal.type("/subscribe feed btc market=moon", "Usage")
