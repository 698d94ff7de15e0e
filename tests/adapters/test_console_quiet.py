"""Quiet hours in the terminal chat (`aitrader-relay run --console`, the demo): typed commands, the
summary printed with its button as the command it runs, and that command paging the rest."""

from __future__ import annotations

import asyncio
import io
import math
import random
import re

import httpx
from redis.asyncio import Redis

from adapters.console import ConsoleAdapter
from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.logs import Redactor
from relay.tokens import TokenBox


async def test_snooze_summary_and_held_pages_in_the_console(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(asyncio.StreamReader(), out)
    relay = Relay(settings, redis, http, box, [console], redactor=Redactor(), rng=random.Random(1))
    await console.start((), relay.router.dispatch, relay.on_chat_change)
    agent = world.create_agent("you")
    await console.run_line(f"/link {agent.token}")
    await console.run_line("/subscribe")
    await console.run_line("/snooze 45m")
    assert "Snoozed until" in out.getvalue()
    for i in range(13):
        world.push_message(agent.id, "price_alert", f"console alert {i}")
    await relay.poller.poll(agent.id)
    await relay.deliverer.drain_due(math.inf)
    assert "console alert" not in out.getvalue(), "held, not printed"
    await console.run_line("/status")
    assert "Held here: 13 held, 0 for digests" in out.getvalue()

    await console.run_line("/snooze off")
    await relay.deliverer.drain_due(math.inf)
    text = out.getvalue()
    assert text.count("== Snooze is over: 13 notifications held ==") == 1
    hint = re.search(r"Show all 13: (/held \w+)", text)
    assert hint is not None, text[-1500:]
    await console.run_line(f"{hint.group(1)} 2")
    assert "== Held notifications 11-13 of 13 ==" in out.getvalue()
    assert "Previous: /held" in out.getvalue()
    await console.stop()
