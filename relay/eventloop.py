"""Runs the relay's event loop: uvloop when it is installed (the `fast` extra), asyncio's otherwise.

The relay is CPU-bound on its one loop (issue 11); uvloop's loop costs less per callback and per
socket event. redis-py picks hiredis by itself when that is installed, so it needs nothing here.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_name() -> str:
    """Which loop `run` uses, for the start-up log and the benchmarks."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    if loop_name() == "uvloop":
        uvloop: Any = importlib.import_module("uvloop")  # optional: not a declared dependency
        result: T = uvloop.run(main)
        return result
    return asyncio.run(main)
