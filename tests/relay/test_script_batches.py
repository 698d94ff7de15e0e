"""`ScriptBatches` against the real Redis: scripts of one loop turn share a round trip (Valkey's
own count of reads), and each caller still gets its own reply, error or cancellation."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relay.redis_values import text
from relay.script_batches import ScriptBatches
from tests.conftest import ON_CLUSTER

pytestmark = pytest.mark.skipif(ON_CLUSTER, reason="the outbox does not batch on a cluster (per-slot pipelines)")

ECHO = """
if ARGV[1] == 'bad' then return redis.error_reply('ERR refused ' .. ARGV[1]) end
redis.call('RPUSH', KEYS[1], ARGV[1])
return ARGV[1]
"""


async def reads(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_reads_processed"])


async def test_scripts_of_one_loop_turn_share_a_round_trip(redis: Redis, prefix: str) -> None:
    script = redis.register_script(ECHO)
    key = f"{prefix}:echo"
    await script(keys=[key], args=["warm"])  # loaded: no NOSCRIPT round trip below
    batches = ScriptBatches(redis)
    before = await reads(redis)
    replies = await asyncio.gather(*(batches.run(script, [key], [str(i)]) for i in range(20)))
    spent = await reads(redis) - before - 1  # the second INFO is a read too
    assert [text(r) for r in replies] == [str(i) for i in range(20)]
    assert spent == 1, spent  # one call at a time would be 20
    assert [text(v) for v in await redis.lrange(key, 1, -1)] == [str(i) for i in range(20)]  # in call order


async def test_a_lone_call_goes_as_it_is(redis: Redis, prefix: str) -> None:
    script = redis.register_script(ECHO)
    reply = await ScriptBatches(redis).run(script, [f"{prefix}:echo"], ["one"])
    assert reply in (b"one", "one")


async def test_one_scripts_error_is_its_callers_alone(redis: Redis, prefix: str) -> None:
    script = redis.register_script(ECHO)
    key = f"{prefix}:echo"
    batches = ScriptBatches(redis)
    out = await asyncio.gather(
        *(batches.run(script, [key], [arg]) for arg in ("a", "bad", "c")), return_exceptions=True
    )
    assert out[0] in (b"a", "a") and out[2] in (b"c", "c")
    assert isinstance(out[1], ResponseError) and "refused bad" in str(out[1])


async def test_scripts_redis_forgot_run_again(redis: Redis, prefix: str) -> None:
    # A restarted Redis (or SCRIPT FLUSH) answers NOSCRIPT to the pipelined EVALSHA without
    # running it: each such script runs again on its own, and runs once.
    script = redis.register_script(ECHO)
    key = f"{prefix}:echo"
    await script(keys=[key], args=["warm"])
    await redis.script_flush()
    batches = ScriptBatches(redis)
    replies = await asyncio.gather(*(batches.run(script, [key], [str(i)]) for i in range(5)))
    assert [text(r) for r in replies] == [str(i) for i in range(5)]
    assert sorted(text(v) for v in await redis.lrange(key, 1, -1)) == [str(i) for i in range(5)]


async def test_a_cancelled_leader_does_not_strand_the_others(redis: Redis, prefix: str) -> None:
    script = redis.register_script(ECHO)
    key = f"{prefix}:echo"
    await script(keys=[key], args=["warm"])
    batches = ScriptBatches(redis)
    leader = asyncio.create_task(batches.run(script, [key], ["leader"]))
    others = [asyncio.create_task(batches.run(script, [key], [f"f{i}"])) for i in range(3)]
    await asyncio.sleep(0)  # all four have started: the leader waits out its turn, the others joined it
    leader.cancel()
    done = await asyncio.wait_for(asyncio.gather(*others), timeout=30)
    assert [text(r) for r in done] == ["f0", "f1", "f2"]
    assert leader.cancelled()
    assert [text(v) for v in await redis.lrange(key, 1, -1)] == ["f0", "f1", "f2"]  # the leader's never ran
