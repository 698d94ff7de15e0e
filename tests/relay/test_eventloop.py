"""`relay.eventloop.run` runs a coroutine to its result on the loop `loop_name` names."""

from __future__ import annotations

import asyncio
import importlib.util

from relay import eventloop


async def _which_loop() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_run_uses_uvloop_exactly_when_it_is_installed() -> None:
    installed = importlib.util.find_spec("uvloop") is not None
    assert eventloop.loop_name() == ("uvloop" if installed else "asyncio")
    module = eventloop.run(_which_loop())
    assert module.startswith("uvloop") == installed
