"""Held and digested notifications across real relay processes (`aitrader-relay run --console`):
a process SIGKILLed after claiming a summary leaves it to the next one, which sends it once; two
processes starting together on one Redis send one end-of-snooze summary and one digest for a
period that ended while no relay ran."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay.chat_settings import ChatSettings
from relay.faults import MARKER
from relay.holding import Holding, Schedule, parse_quiet
from relay.keys import Keys
from relay.leases import Leases
from relay.models import ChatRef, Message
from relay.outbox import Outbox, Outgoing
from relay.redis_values import text
from tests.fakes.relay_process import RelayProcess, relay_env

CHAT = ChatRef("console", "local")


def holding(redis: Redis, keys: Keys) -> Holding:
    return Holding(redis, keys, ChatSettings(redis, keys), Outbox(redis, keys), Leases(redis))


def notes(n: int, kind: str, tag: str) -> list[Outgoing]:
    return [Outgoing(CHAT, f"{tag}:{i}", Message(title=f"{tag} note {i}"), kind=kind) for i in range(n)]


def started(proc: RelayProcess) -> Callable[[], bool]:
    return lambda: "relay started" in proc.err


async def settled(redis: Redis, keys: Keys, deadline: float = 60) -> None:
    """Until nothing is held, claimed or queued for the chat any more."""
    end = time.monotonic() + deadline
    while True:
        fields = [text(f) for f in await redis.hkeys(keys.hold(CHAT.key))]
        busy = (
            any(f.startswith("pending:") for f in fields)
            or await redis.exists(keys.held(CHAT.key), keys.digest(CHAT.key), keys.outbox(CHAT.key))
            or await redis.hexists(keys.hold(CHAT.key), "snooze")
        )
        if not busy:
            return
        assert time.monotonic() < end, f"still busy: {fields}"
        await asyncio.sleep(0.05)


async def test_a_summary_claimed_by_a_killed_process_is_sent_once_after_restart(
    redis_url: str, redis: Redis, keys: Keys, prefix: str, secret_key: str
) -> None:
    world = World(seed=3, poll_interval_seconds=1)
    async with SimulatorServer(world) as sim:
        hold = holding(redis, keys)
        await hold.set_snooze(CHAT, time.time() + 3600)
        assert await hold.divert(notes(7, "messages", "killhold"), time.time()) == []
        await hold.set_snooze(CHAT, None)  # ended: the next check releases it
        env = relay_env(sim.url, redis_url, prefix, secret_key)
        first = RelayProcess({**env, "RELAY_FAULT_PAUSE": "after_hold_release"})
        await first.start()
        await first.wait_for(lambda: f"{MARKER}: after_hold_release" in first.err)
        await first.kill()
        fields = [text(f) for f in await redis.hkeys(keys.hold(CHAT.key))]
        assert any(f.startswith("pending:") for f in fields), fields
        assert not await redis.exists(keys.held(CHAT.key)), "claimed: out of the held stream"
        assert "Snooze is over" not in first.out
        # The dead process's lease on the chat runs out (PX 9 s) before anyone may send its batch.
        end = time.monotonic() + 60
        while await redis.exists(keys.hold_lease(CHAT.key)):
            assert time.monotonic() < end
            await asyncio.sleep(0.1)
        second = RelayProcess(env)
        await second.start()
        await second.wait_for(lambda: "Snooze is over: 7 notifications held" in second.out, timeout=60)
        await settled(redis, keys)
        await second.terminate()
    assert (first.out + second.out).count("Snooze is over") == 1
    assert "killhold note 6" in second.out
    assert "Show all 7: /held h" in second.out, "the console shows the button as the command it runs"


async def test_two_processes_send_one_summary_and_one_digest(
    redis_url: str, redis: Redis, keys: Keys, prefix: str, secret_key: str
) -> None:
    world = World(seed=3, poll_interval_seconds=1)
    async with SimulatorServer(world) as sim:
        hold = holding(redis, keys)
        await hold.set_digest(CHAT, ["tasks"], Schedule("hourly"))
        await hold.set_snooze(CHAT, time.time() + 3600)
        assert await hold.divert(notes(4, "messages", "snoozed") + notes(3, "tasks", "digested"), time.time()) == []
        await hold.set_snooze(CHAT, None)
        # The digest's period ended while no relay ran: the last one sent was two hours ago.
        await redis.hset(keys.hold(CHAT.key), "done:hourly", repr(time.time() - 7200))
        env = relay_env(sim.url, redis_url, prefix, secret_key)
        procs = [RelayProcess(env), RelayProcess(env)]
        await asyncio.gather(*(p.start() for p in procs))

        def out() -> str:
            return "".join(p.out for p in procs)

        await procs[0].wait_for(lambda: "Snooze is over: 4" in out() and "Hourly digest: 3" in out(), timeout=60)
        await settled(redis, keys)
        for p in procs:
            # Both really ran (a process still importing when SIGTERM comes exits without its log).
            await p.wait_for(started(p))
            await p.terminate()
    everything = out()
    assert everything.count("Snooze is over") == 1 and everything.count("Hourly digest") == 1, everything[-2000:]
    assert everything.count("digested note 2") == 1 and everything.count("snoozed note 3") == 1


async def test_two_processes_send_one_end_of_quiet_summary(
    redis_url: str, redis: Redis, keys: Keys, prefix: str, secret_key: str
) -> None:
    world = World(seed=3, poll_interval_seconds=1)
    async with SimulatorServer(world) as sim:
        hold = holding(redis, keys)
        now = datetime.now(UTC)
        await hold.set_quiet(CHAT, parse_quiet(f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"))
        assert await hold.divert(notes(5, "messages", "quiet"), time.time()) == []
        # The quiet hours ended while no relay ran: they now lie an hour in the past.
        await hold.set_quiet(CHAT, parse_quiet(f"{now - timedelta(hours=3):%H:%M}-{now - timedelta(hours=1):%H:%M}"))
        env = relay_env(sim.url, redis_url, prefix, secret_key)
        procs = [RelayProcess(env), RelayProcess(env)]
        await asyncio.gather(*(p.start() for p in procs))

        def out() -> str:
            return "".join(p.out for p in procs)

        await procs[0].wait_for(lambda: "Quiet hours are over: 5" in out(), timeout=60)
        await settled(redis, keys)
        for p in procs:
            await p.wait_for(started(p))
            await p.terminate()
    everything = out()
    assert everything.count("Quiet hours are over") == 1, everything[-2000:]
    assert "Snooze is over" not in everything and everything.count("quiet note 4") == 1


async def test_a_digest_claimed_by_a_killed_process_is_sent_once_after_restart(
    redis_url: str, redis: Redis, keys: Keys, prefix: str, secret_key: str
) -> None:
    world = World(seed=3, poll_interval_seconds=1)
    async with SimulatorServer(world) as sim:
        hold = holding(redis, keys)
        await hold.set_digest(CHAT, ["tasks"], Schedule("hourly"))
        assert await hold.divert(notes(3, "tasks", "killdigest"), time.time()) == []
        await redis.hset(keys.hold(CHAT.key), "done:hourly", repr(time.time() - 7200))  # its hour ended
        env = relay_env(sim.url, redis_url, prefix, secret_key)
        first = RelayProcess({**env, "RELAY_FAULT_PAUSE": "after_hold_release"})
        await first.start()
        await first.wait_for(lambda: f"{MARKER}: after_hold_release" in first.err)
        await first.kill()
        fields = [text(f) for f in await redis.hkeys(keys.hold(CHAT.key))]
        assert any(f.startswith("pending:") for f in fields), fields
        assert not await redis.exists(keys.digest(CHAT.key)), "claimed: out of the digest stream"
        end = time.monotonic() + 60
        while await redis.exists(keys.hold_lease(CHAT.key)):
            assert time.monotonic() < end
            await asyncio.sleep(0.1)
        second = RelayProcess(env)
        await second.start()
        await second.wait_for(lambda: "Hourly digest: 3 notifications" in second.out, timeout=60)
        await settled(redis, keys)
        await second.terminate()
    assert (first.out + second.out).count("Hourly digest") == 1
    assert second.out.count("killdigest note 2") == 1
