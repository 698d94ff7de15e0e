"""Lua scripts run inside a pipeline, so they share a round trip with other commands.

redis-py's own way (`script(client=pipe)`) first asks SCRIPT EXISTS in a round trip of its own,
which is what pipelining them is meant to save; so the script is sent as a bare EVALSHA, and a
Redis that lost its scripts (a restart, SCRIPT FLUSH) answers NOSCRIPT for it without running it.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Arg = str | int | float


def queue(pipe: Pipeline, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]) -> None:
    """Add `script` to the pipeline as one EVALSHA."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


async def outcome(reply: object, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]) -> object:
    """The queued script's reply (an error stays a value, as `execute(raise_on_error=False)`
    gives it); a NOSCRIPT means it did not run, so it runs now, which loads it again."""
    if isinstance(reply, NoScriptError):
        return await script(keys=keys, args=args)
    return reply
