"""Heartbeat → persist → fan-out → delivery, against the simulator and a real Redis."""

from __future__ import annotations

import asyncio
import math

import httpx
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.models import UserRef
from relay.tokens import TokenBox
from tests.conftest import Chat, agents_with_own_chats
from tests.fakes.recording import RecordingAdapter


async def linked(
    relay: Relay, world: World, dm: Chat, name: str = "ann", mode: str = "consume", subscribe: str = "all"
) -> int:
    agent = world.create_agent(name)
    reply = await dm.text("link", token=agent.token, mode=mode)
    assert f"#{agent.id}" in reply
    if subscribe:
        assert "Subscribed" in await dm.text("subscribe", what=subscribe)
    return agent.id


def message_ids(adapter: RecordingAdapter) -> list[int]:
    return [int(s.key.split(":")[1][1:]) for s in adapter.sent if ":m" in s.key]


async def test_backlog_of_130_is_delivered_once_each_in_id_order(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    ids = world.push_messages(agent_id, 130, type="custom_note", content_fmt="note {i}")
    await relay.poller.poll(agent_id)
    # 130 unread need three heartbeat calls (50 + 50 + 30), all in one drain.
    assert world.heartbeat_counts[agent_id] == 3
    await relay.deliverer.drain_due(math.inf)
    assert message_ids(adapter) == sorted(ids)


async def test_repeated_polls_and_overlapping_reconcile_add_nothing_twice(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    first = world.push_messages(agent_id, 5, type="custom_note", content_fmt="a {i}")
    await relay.poller.poll(agent_id)
    agent = await relay.store.agent(agent_id)
    assert agent is not None
    assert await relay.poller.reconcile(agent) == 0  # recent shows the same 5: all already seen
    await relay.poller.poll(agent_id)
    second = world.push_messages(agent_id, 3, type="custom_note", content_fmt="b {i}")
    await relay.poller.reconcile(agent)  # recent takes the 3 unread rows first
    await relay.poller.poll(agent_id)  # then the heartbeat hands the same 3 out
    await relay.deliverer.drain_due(math.inf)
    assert message_ids(adapter) == sorted(first + second)


async def test_lost_heartbeat_response_is_recovered_through_recent(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    ids = world.push_messages(agent_id, 4, type="custom_note", content_fmt="x {i}")
    world.faults.lose_next_heartbeats = 1
    await relay.poller.poll(agent_id)
    assert set(world.handed_out(agent_id)) == set(ids)  # the server marked them read...
    # ... and the same failed poll read `recent` right away, not one interval later.
    assert world.heartbeat_counts[agent_id] == 1
    assert not await relay.inbox.needs_reconcile(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert message_ids(adapter) == sorted(ids)
    agent = await relay.store.agent(agent_id)
    assert agent is not None and agent.loss_reports == 0  # a page that is not full proves it


async def test_no_destructive_heartbeat_while_redis_cannot_persist(relay: Relay, world: World, dm: Chat) -> None:
    agent_id = await linked(relay, world, dm)
    world.push_messages(agent_id, 2, type="custom_note", content_fmt="y {i}")
    # A lost answer waits to be reconciled: the poll must store what `recent` shows before it
    # may call the heartbeat. (A first poll with nothing to recover relies on the begin script's
    # mark alone, which is in Redis before the call.)
    await relay.inbox.mark_for_reconcile(agent_id)
    before = world.heartbeat_counts[agent_id]
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    relay.inbox._r = dead  # the inbox's connection is down; the agent record is still readable
    try:
        await relay.poller.poll(agent_id)
    except RedisConnectionError:
        pass
    finally:
        await dead.aclose()
    assert world.heartbeat_counts[agent_id] == before
    assert len(world.unread_ids(agent_id)) == 2


async def test_observe_mode_leaves_messages_unread(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm, mode="observe")
    ids = world.push_messages(agent_id, 3, type="custom_note", content_fmt="o {i}")
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert world.heartbeat_counts[agent_id] == 0
    assert sorted(world.unread_ids(agent_id)) == sorted(ids)
    assert message_ids(adapter) == sorted(ids)


async def test_tasks_are_delivered_once_and_has_more_tasks_is_not_looped(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    creator = world.create_agent("boss")
    task_ids = [world.create_task(agent_id, "analyze", {"n": i}) for i in range(12)]
    await relay.poller.poll(agent_id)
    await relay.poller.make_due(agent_id)
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert world.heartbeat_counts[agent_id] == 2  # one call per poll although has_more_tasks stays true
    delivered = sorted(int(s.key.split(":")[1][1:]) for s in adapter.sent if ":t" in s.key)
    assert delivered == sorted(task_ids)[:10]  # the server only ever shows the oldest 10
    assert creator.id != agent_id


async def test_token_rotation_pauses_agent_and_tells_each_chat_once(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    group = Chat(relay, adapter.chat("-5"), UserRef("rec", "100", "ann", is_chat_admin=True), private=False)
    assert "Subscribed" in await group.text("subscribe", what="replies")
    world.rotate_token(agent_id)
    await relay.poller.poll(agent_id)
    calls = world.heartbeat_counts[agent_id]
    await relay.poller.make_due(agent_id)
    await relay.poller.poll(agent_id)  # paused: no further call with the rejected token
    await relay.deliverer.drain_due(math.inf)
    assert world.heartbeat_counts[agent_id] == calls
    notices = [s for s in adapter.sent if "paused" in s.message.title]
    assert sorted(s.chat.chat_id for s in notices) == ["-5", "100"]
    status = await dm.text("status")
    assert "paused" in status
    # Linking again with the new token resumes polling.
    await dm.text("link", token=world.agent(agent_id).token)
    world.push_messages(agent_id, 1, type="custom_note", content_fmt="back {i}")
    await relay.poller.poll(agent_id)
    assert world.heartbeat_counts[agent_id] == calls + 1


async def test_two_relays_on_one_redis_never_poll_one_agent_at_once(
    relay: Relay, world: World, dm: Chat, settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox
) -> None:
    from relay.logs import Redactor

    other = Relay(settings, redis, http, box, [RecordingAdapter()], redactor=Redactor())
    agent_id = await linked(relay, world, dm)
    world.faults.slow_seconds = 0.05
    both = 0
    for _ in range(10):
        await relay.poller.make_due(agent_id)
        a, b = await asyncio.gather(relay.poller.poll_if_due(agent_id), other.poller.poll_if_due(agent_id))
        both += a and b
        assert a or b
    world.faults.slow_seconds = 0
    assert both == 0
    assert world.heartbeat_counts[agent_id] == 10


async def test_many_agents_polled_at_once_through_a_small_connection_pool_lose_nothing(
    settings: RelaySettings, redis_url: str, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    """More concurrent work than Redis connections: callers wait for a connection; before the
    blocking pool, the surplus failed with MaxConnectionsError after heartbeats had consumed
    messages that `recent` could no longer reach."""
    from relay.embedded_redis import connect
    from relay.logs import Redactor

    small = connect(redis_url, max_connections=4)
    adapter = RecordingAdapter()
    relay = Relay(settings, small, http, box, [adapter], redactor=Redactor())
    try:
        agent_ids = await agents_with_own_chats(relay, world, adapter, 12, "a")
        expected = [m for a in agent_ids for m in world.push_messages(a, 60, type="custom_note", content_fmt="n {i}")]
        await asyncio.gather(*(relay.poller.poll_if_due(a) for a in agent_ids))
        await asyncio.gather(
            *(relay.deliverer.drain(c) for c in await relay.outbox.due_chats(relay.deliverer._clock() + 60, 100))
        )
        await relay.deliverer.drain_due(math.inf)
        assert sorted(message_ids(adapter)) == sorted(expected)
    finally:
        async for key in small.scan_iter(match=f"{settings.relay_key_prefix}:*"):
            await small.delete(key)
        await small.aclose()


async def test_an_upstream_outage_is_probed_once_per_interval_and_all_agents_resume_together(
    relay: Relay, world: World, adapter: RecordingAdapter
) -> None:
    agent_ids = await agents_with_own_chats(relay, world, adapter, 6, "o")
    world.faults.outage = "503"
    before = sum(world.route_counts.values())
    for _ in range(3):  # every agent due every round, as if their backoff had passed
        for a in agent_ids:
            await relay.poller.make_due(a)
            await relay.poller.poll_if_due(a)
    during = sum(world.route_counts.values()) - before
    # Three failed polls mark the outage; from then on one probe per interval (1 s here) goes out,
    # not one request per agent per round (18 polls x 3 read retries without the breaker).
    assert during <= 3 * 3 + 3
    world.faults.outage = None
    await asyncio.sleep(1.05)  # the probe slot frees after one interval
    ids = {a: world.push_messages(a, 1, type="custom_note", content_fmt="after {i}")[0] for a in agent_ids}
    for a in agent_ids:
        await relay.poller.poll_if_due(a)  # the probe succeeds and clears every backoff...
    for a in agent_ids:
        await relay.poller.poll_if_due(a)  # ...so the others are polled at their next tick
    await relay.deliverer.drain_due(math.inf)
    assert sorted(message_ids(adapter)) == sorted(ids.values())


async def test_stop_lets_a_heartbeat_in_flight_finish_and_persist(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    """SIGTERM while a heartbeat is on the wire: the relay waits for it and stores its answer
    instead of cancelling it (which would leave the messages read upstream and unstored)."""
    agent_id = await linked(relay, world, dm)
    ids = world.push_messages(agent_id, 3, type="custom_note", content_fmt="t {i}")
    world.faults.slow_seconds = 1.0
    await relay.start()
    try:

        async def heartbeat_on_the_wire() -> None:
            while world.heartbeats_in_flight[agent_id] == 0:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(heartbeat_on_the_wire(), 15)
    finally:
        await relay.stop()
    assert sorted(world.handed_out(agent_id)) == sorted(ids)
    assert not await relay.inbox.needs_reconcile(agent_id)  # its answer was stored
    stored = [e.notification.message_id for e in await relay.inbox.entries(agent_id)]
    queued = await relay.outbox.pending(dm.chat)
    assert len(stored) + queued + len(message_ids(adapter)) >= 3
