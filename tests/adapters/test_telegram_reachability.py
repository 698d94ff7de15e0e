"""A Telegram outage after start-up shows in the adapter's state, which /readyz reports.

PTB keeps retrying getUpdates through an outage and never stops the Application, so "running"
alone said "connected" throughout one. The adapter here is the real one, polling the fake Bot
API through a gate that answers 502 while closed, as Telegram's front does in an outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from platform_fakes.telegram_api import FakeTelegram
from relay.health import READY_STATES
from tests.adapters.conftest import AdapterFactory
from tests.adapters.test_telegram_startup import Gate

PTB_RETRY_CAP = 30.0  # PTB's getUpdates retry backoff grows to 30 s; a wait covers two of them


async def until(condition: Callable[[], bool], what: str, timeout: float = 2 * PTB_RETRY_CAP) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_an_outage_after_start_is_not_ready_and_recovery_is(
    fake: FakeTelegram, make_adapter: AdapterFactory
) -> None:
    async with Gate(fake.api_base) as gate:
        gate.open = True
        adapter = await make_adapter(api_base=f"http://127.0.0.1:{gate.port}")
        await until(lambda: adapter.is_polling and adapter.state == "connected", "polling")
        assert adapter.state in READY_STATES

        gate.open = False  # the next getUpdates (after the current long poll) gets 502
        await until(lambda: adapter.state == "unreachable", f"never unreachable; refused={gate.refused}")
        assert adapter.state not in READY_STATES
        assert gate.refused >= 1

        gate.open = True
        await until(lambda: adapter.state == "connected", "never connected again")
        assert adapter.state in READY_STATES
