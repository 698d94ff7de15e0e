"""Lua scripts called in the same loop turn go to Redis together, in one pipeline.

Each chat's drain records a send's outcome in a round trip of its own before the next send
starts (at most one send per chat whose outcome Redis does not know). With many chats draining
at once those round trips are ready in the same loop turn, and redis-py's client CPU for a lone
call (about 80-100 us: the pool, packing, parsing) is several times that of one more command in
a pipeline. Waiting one loop turn lets them share a pipeline; every caller still awaits its own
script's reply before it goes on, so nothing about what is recorded when changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError

from relay import pipelined_scripts
from relay.pipelined_scripts import Arg


@dataclass(slots=True)
class _Call:
    script: AsyncScript
    keys: list[str]
    args: list[Arg]
    reply: asyncio.Future[object] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ScriptBatches:
    """`run` a script as `script(keys=, args=)` would, sharing the round trip with the other
    scripts run in the same loop turn. The first caller of a turn leads: it yields the turn, then
    sends what gathered (a lone call goes as it is, never as a pipeline of one)."""

    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._forming: list[_Call] | None = None
        self._orphans: set[asyncio.Task[None]] = set()

    async def run(self, script: AsyncScript, keys: list[str], args: list[Arg]) -> object:
        call = _Call(script, keys, args)
        if self._forming is not None:
            self._forming.append(call)
            return await call.reply
        self._forming = batch = [call]
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            # The leader's own call is dropped (never sent) with it; the others still go.
            self._forming = None
            batch.remove(call)
            if batch:
                task = asyncio.create_task(self._send(batch, reraise=False), name="script batch")
                self._orphans.add(task)
                task.add_done_callback(self._orphans.discard)
            raise
        self._forming = None
        if len(batch) == 1:
            return await script(keys=keys, args=args)
        await self._send(batch)
        return await call.reply

    async def _send(self, batch: list[_Call], *, reraise: bool = True) -> None:
        pipe = self._r.pipeline(transaction=False)
        for c in batch:
            pipelined_scripts.queue(pipe, c.script, c.keys, c.args)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            # Not known to have run: each caller sees a Redis error and retries as it would
            # after its own call failed.
            failed = exc if isinstance(exc, Exception) else RedisConnectionError("the batch was cancelled")
            for c in batch:
                _settle(c.reply, failed)
            if reraise:
                raise
            return
        for c, reply in zip(batch, replies, strict=True):
            try:
                result = await pipelined_scripts.outcome(reply, c.script, c.keys, c.args)
            except Exception as exc:
                result = exc
            _settle(c.reply, result)


def _settle(reply: asyncio.Future[object], result: object) -> None:
    """A caller cancelled meanwhile has stopped waiting: its reply is left alone."""
    if reply.done():
        return
    if isinstance(result, Exception):
        reply.set_exception(result)
    else:
        reply.set_result(result)
