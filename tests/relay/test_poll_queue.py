"""The shared due-time queue (issue 11, "Polling that scales"): one claim job per process instead
of one APScheduler job per agent, claims that never hand one agent to two processes, due times
that follow the server's interval or a backoff, and `poll_now` for the doorbell."""

from __future__ import annotations

import asyncio
import math
import time

import httpx
from redis.asyncio import Redis

from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import Notification
from relay.tokens import TokenBox
from tests.conftest import agents_with_own_chats
from tests.fakes.recording import RecordingAdapter
from tests.relay.test_pipeline import message_ids


async def _due(redis: Redis, keys: Keys, agent_id: int) -> float | None:
    score = await redis.zscore(keys.poll_due(), str(agent_id))
    return None if score is None else score / 1000


async def test_linking_queues_the_agent_due_at_once_and_unlinking_takes_it_out(
    relay: Relay, world: World, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    [agent_id] = await agents_with_own_chats(relay, world, adapter, 1, "q")
    assert await _due(redis, keys, agent_id) == 0  # due before any clock's now
    assert await relay.poller.poll_if_due(agent_id)
    due = await _due(redis, keys, agent_id)
    # The next due time is one interval (the simulator's 1 s, at least POLL_MIN_SECONDS) ahead.
    assert due is not None and due > time.time()
    assert not await relay.poller.poll_if_due(agent_id)
    assert world.heartbeat_counts[agent_id] == 1
    await relay.store.unlink("rec:0")
    assert await _due(redis, keys, agent_id) is None


async def test_sync_queues_agents_linked_without_a_due_time_and_drops_unlinked_ones(
    relay: Relay, world: World, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    a, b = await agents_with_own_chats(relay, world, adapter, 2, "s")
    await redis.zrem(keys.poll_due(), str(a))  # as an older version left it: linked, never queued
    await redis.zadd(keys.poll_due(), {"999999": 0})  # queued, never linked (or unlinked in a race)
    await relay.poller.sync()
    due = await _due(redis, keys, a)
    assert due is not None and due <= time.time() + 5  # spread over the first seconds
    assert await _due(redis, keys, 999999) is None
    assert await _due(redis, keys, b) == 0


async def test_two_processes_claiming_at_once_poll_each_due_agent_once(
    relay: Relay,
    world: World,
    adapter: RecordingAdapter,
    settings: RelaySettings,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
) -> None:
    other = Relay(settings, redis, http, box, [RecordingAdapter()], redactor=Redactor())
    agent_ids = await agents_with_own_chats(relay, world, adapter, 12, "c")
    world.faults.slow_seconds = 0.05
    claimed = await asyncio.gather(relay.poller.claim_due(), other.poller.claim_due())
    await asyncio.gather(relay.poller.wait_idle(), other.poller.wait_idle())
    world.faults.slow_seconds = 0
    assert sum(claimed) == len(agent_ids)
    assert {a: world.heartbeat_counts[a] for a in agent_ids} == dict.fromkeys(agent_ids, 1)
    # All polled: nothing is due again before its interval.
    assert await relay.poller.claim_due() == 0


async def test_a_claim_takes_no_more_agents_than_free_poll_slots(
    settings: RelaySettings,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
    world: World,
    adapter: RecordingAdapter,
) -> None:
    narrow = Relay(
        settings.model_copy(update={"poll_concurrency": 3}), redis, http, box, [adapter], redactor=Redactor()
    )
    agent_ids = await agents_with_own_chats(narrow, world, adapter, 7, "n")
    world.faults.slow_seconds = 0.2
    assert await narrow.poller.claim_due() == 3
    assert await narrow.poller.claim_due() == 0  # every slot busy: the rest stay queued, unclaimed
    await narrow.poller.wait_idle()  # finished polls claim the rest themselves, slots permitting
    world.faults.slow_seconds = 0
    assert {a: world.heartbeat_counts[a] for a in agent_ids} == dict.fromkeys(agent_ids, 1)


async def test_a_claim_begins_all_its_polls_in_one_round_trip(
    relay: Relay, world: World, adapter: RecordingAdapter, redis: Redis
) -> None:
    """The claim script, then every claimed agent's begin script pipelined: two round trips for
    the batch instead of one plus one per agent (counted by the server, as below)."""
    agent_ids = await agents_with_own_chats(relay, world, adapter, 6, "g")
    for a in agent_ids:  # a process's first poll of an agent also reads `recent`: not this one's
        await relay.poller.poll(a)
        await relay.poller.make_due(a)
    world.faults.slow_seconds = 0.5  # the polls' calls stay in flight while Redis is counted
    before = int((await redis.info("stats"))["total_reads_processed"])
    assert await relay.poller.claim_due() == len(agent_ids)
    after = int((await redis.info("stats"))["total_reads_processed"])
    await relay.poller.wait_idle()
    world.faults.slow_seconds = 0
    assert after - before - 1 == 2  # less the first INFO call
    assert {a: world.heartbeat_counts[a] for a in agent_ids} == dict.fromkeys(agent_ids, 2)


async def test_batched_begins_leave_an_agent_another_process_polls_and_reload_lost_scripts(
    relay: Relay, world: World, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    busy, *free = await agents_with_own_chats(relay, world, adapter, 4, "h")
    await redis.set(keys.poll_lease(busy), "another-process", px=60_000)
    await redis.script_flush()  # as after a Redis restart: every EVALSHA answers NOSCRIPT
    assert await relay.poller.claim_due() == 4
    await relay.poller.wait_idle()
    assert world.heartbeat_counts[busy] == 0
    assert {a: world.heartbeat_counts[a] for a in free} == dict.fromkeys(free, 1)
    assert await redis.get(keys.poll_lease(busy)) == b"another-process"


async def test_poll_now_polls_an_agent_whose_due_time_is_still_ahead(
    relay: Relay, world: World, adapter: RecordingAdapter
) -> None:
    [agent_id] = await agents_with_own_chats(relay, world, adapter, 1, "p")
    await relay.poller.poll_if_due(agent_id)
    assert not await relay.poller.poll_if_due(agent_id)  # not due for an interval
    [message] = world.push_messages(agent_id, 1, type="custom_note", content_fmt="rung {i}")
    assert await relay.poller.poll_now(agent_id)  # returns once polled
    assert world.heartbeat_counts[agent_id] == 2
    assert message in world.handed_out(agent_id)
    assert await relay.outbox.pending(adapter.chat("0")) == 1  # stored and fanned out
    assert not await relay.poller.make_due(424242)  # not linked: make_due queues nothing


async def test_an_upstream_error_puts_the_next_due_time_a_backoff_ahead(
    relay: Relay, world: World, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    [agent_id] = await agents_with_own_chats(relay, world, adapter, 1, "b")
    world.faults.outage = "503"
    before = time.time()
    assert await relay.poller.poll_if_due(agent_id)
    world.faults.outage = None
    due = await _due(redis, keys, agent_id)
    assert due is not None and due > before  # backed off, not due at once
    assert not await relay.poller.poll_if_due(agent_id)


async def test_the_running_relay_polls_every_agent_from_one_claim_job(
    relay: Relay, world: World, adapter: RecordingAdapter
) -> None:
    agent_ids = await agents_with_own_chats(relay, world, adapter, 30, "r")
    async with relay:
        assert relay._scheduler is not None
        jobs = {job.id for job in relay._scheduler.get_jobs()}
        assert not any(j.startswith("agent:") for j in jobs) and {"claim", "sync"} <= jobs
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and min(world.heartbeat_counts[a] for a in agent_ids) < 2:
            await asyncio.sleep(0.05)
    assert min(world.heartbeat_counts[a] for a in agent_ids) >= 2  # each polled again after its interval


async def test_a_poll_that_finds_nothing_new_makes_two_redis_round_trips(
    relay: Relay, world: World, adapter: RecordingAdapter, redis: Redis
) -> None:
    """Begin (lease, record, mark) and end (answer, mark, next due, outcome, lease) scripts: the
    issue's bound is three; a poll of one command per step made about eighteen. Counted by the
    server (`total_reads_processed`: one per request or pipeline it reads)."""
    [agent_id] = await agents_with_own_chats(relay, world, adapter, 1, "t")
    await relay.poller.poll(agent_id)  # the first poll also reads `recent` once (start-up reconcile)

    async def reads() -> int:
        return int((await redis.info("stats"))["total_reads_processed"])

    before = await reads()
    await relay.poller.poll(agent_id)
    after = await reads()
    assert world.heartbeat_counts[agent_id] == 2
    assert after - before - 1 <= 2  # less the INFO call itself


async def test_fan_out_from_the_answer_in_memory_and_from_the_inbox_for_leftovers(
    relay: Relay, world: World, adapter: RecordingAdapter
) -> None:
    """A poll that stored only its own answer fans out from memory (the enqueue script still
    removes each inbox entry, so nothing is left behind); one that finds older entries in the
    inbox (a poll whose fan-out never ran) reads the inbox and sends those too, in id order."""
    [agent_id] = await agents_with_own_chats(relay, world, adapter, 1, "f")
    await relay.poller.poll(agent_id)
    ids = world.push_messages(agent_id, 3, type="custom_note", content_fmt="mem {i}")
    await relay.poller.poll(agent_id)
    assert await relay.outbox.pending(adapter.chat("0")) == 3
    assert not await relay.inbox.entries(agent_id)
    await relay.inbox.persist(agent_id, [Notification(agent_id, 900_001, "custom_note", "left over", {}, None)])
    [new] = world.push_messages(agent_id, 1, type="custom_note", content_fmt="new {i}")
    await relay.poller.poll(agent_id)
    assert await relay.outbox.pending(adapter.chat("0")) == 5
    assert not await relay.inbox.entries(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert sorted(message_ids(adapter)) == sorted([*ids, new, 900_001])
