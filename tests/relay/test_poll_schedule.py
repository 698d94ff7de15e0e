"""The poll schedule under slow polls: a firing that finds the agent's last poll still running
is dropped by the poller, not refused by APScheduler with a warning per firing (issue 11 saw
1.35 million of them, a quarter of the relay's CPU, at 10,000 agents)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aitrader_sim.world import World
from relay.app import Relay
from tests.conftest import Chat
from tests.relay.test_pipeline import linked


async def test_a_poll_still_running_is_not_resubmitted_and_polling_goes_on(
    relay: Relay, world: World, dm: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    agent_id = await linked(relay, world, dm)
    world.push_messages(agent_id, 3, type="custom_note", content_fmt="note {i}")
    before = world.heartbeat_counts.get(agent_id, 0)
    # Each upstream call now takes 2 s, longer than the 1-2 s between the agent's firings.
    world.faults.slow_seconds = 2.0
    caplog.set_level(logging.WARNING, logger="apscheduler")
    async with relay:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while world.heartbeat_counts.get(agent_id, 0) < before + 2 and loop.time() < deadline:
            await asyncio.sleep(0.1)
    assert world.heartbeat_counts.get(agent_id, 0) >= before + 2, "polling stopped"
    refused = [r.getMessage() for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    assert refused == []
