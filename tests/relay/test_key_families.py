"""Redis stays bounded: every key the relay writes belongs to a family declared in relay/keys.py,
and each family's bound (TTL or size cap) holds after a workload that touches them all."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from aitrader_sim.world import World
from relay.app import Relay
from relay.errors import Undeliverable
from relay.keys import FAMILIES, Family, Keys, family_of
from relay.models import ChatRef, Message, UserRef
from relay.outbox import Delivery, Outbox, Outgoing
from tests.conftest import Chat, agents_with_own_chats
from tests.fakes.recording import RecordingAdapter

_SIZE = {"zset": "zcard", "set": "scard", "hash": "hlen", "stream": "xlen", "list": "llen"}


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def _scan_all(redis: Redis, prefix: str) -> dict[str, Family | None]:
    return {_text(k): family_of(prefix, _text(k)) async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)}


async def _check_bounds(redis: Redis, prefix: str) -> set[str]:
    """Every key matched to a family, of the declared type, within its TTL and cap. Returns the
    patterns of the families seen."""
    found = await _scan_all(redis, prefix)
    undeclared = sorted(k for k, f in found.items() if f is None)
    assert undeclared == [], f"keys of no declared family: {undeclared[:10]}"
    for key, family in found.items():
        assert family is not None
        kind = _text(await redis.type(key))
        if kind == "none":
            continue  # expired or deleted between the scan and now
        if family.type != "any":
            assert kind == family.type, f"{key}: {kind}, declared {family.type}"
        if family.ttl is not None:
            # PTTL: TTL rounds a key in its last half second down to 0 (rate-limit keys live ~1 s).
            ttl = await redis.pttl(key)
            assert 0 < ttl <= family.ttl * 1000 or ttl == -2, f"{key}: pttl {ttl}, declared <= {family.ttl} s"
        if family.cap is not None:
            size = await getattr(redis, _SIZE[kind])(key)
            assert size <= family.cap, f"{key}: {size} entries, cap {family.cap}"
    return {f.pattern for f in found.values() if f is not None}


def test_every_family_states_a_bound_and_patterns_do_not_shadow_each_other() -> None:
    k = Keys("p")
    samples = {
        k.outbox_ready(): "outbox:ready",
        k.outbox("rec:1:"): "outbox:{chat}",
        k.chat_subs("telegram:-100:7"): "chat:{chat}:subs",
        k.seen(5): "agent:{agent}:seen",
        k.agent(5): "agent:{agent}",
        k.in_flight(): "inflight",
        k.dead_letters(): "dead",
        k.chat_dead(): "dead:count",
        k.poll_lease(5): "lease:agent:{agent}",
        k.chat_lease("rec:1:"): "lease:chat:{chat}",
    }
    for key, pattern in samples.items():
        family = family_of("p", key)
        assert family is not None and family.pattern == pattern, key
    assert family_of("p", "p:made:up") is None
    assert family_of("p", "other:agents") is None
    for family in FAMILIES:
        assert family.bound.strip(), family.pattern


async def test_after_a_pipeline_workload_every_key_is_declared_and_within_its_bound(
    relay: Relay, world: World, adapter: RecordingAdapter, redis: Redis, prefix: str
) -> None:
    agents = await agents_with_own_chats(relay, world, adapter, 4, "fam")
    chat0 = Chat(relay, adapter.chat("0"), UserRef("rec", "0", "u0"))
    # Settings, watches and a dead letter touch the per-chat families.
    await chat0.text("notify", kind="replies", mode="silent")
    await chat0.text("subscribe", what="feed btc")
    adapter.failures[adapter.chat("1").key] = [Undeliverable("blocked")]
    world.create_task(agents[0], "analysis")
    world.faults.lose_next_heartbeats = 2  # two lost responses: reconcile marks and recovery
    for r in range(6):
        for a in agents:
            world.push_messages(a, 3, type="custom_note", content_fmt=f"fam {r}-{{i}}")
        for a in agents:
            await relay.poller.make_due(a)
        await asyncio.gather(*(relay.poller.poll_if_due(a) for a in agents))
    async with relay:  # the running relay: scheduler, deliverer, leases
        deadline = time.monotonic() + 30
        while await relay.outbox.due_chats(time.time() + 3600, 10) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        seen_while_running = await _check_bounds(redis, prefix)
    assert not await relay.outbox.due_chats(time.time() + 3600, 10)
    seen = seen_while_running | await _check_bounds(redis, prefix)
    # The workload reached the families this test is about.
    for pattern in ("delivered", "dead", "agent:{agent}:seen", "agent:{agent}:tasks", "sub:{sub}", "chat:{chat}:kinds"):
        assert pattern in seen, pattern
    # Drained chats leave no stream behind; unlinking leaves no per-agent state behind.
    hub = relay.keys.hub_stem()  # the prefix, or the prefix and the hash tag on a cluster
    assert not [k async for k in redis.scan_iter(match=f"{hub}:outbox:rec:*")]
    for i in range(len(agents)):
        await Chat(relay, adapter.chat(str(i)), UserRef("rec", str(i), f"u{i}")).text("unlink")
    left = [_text(k) async for k in redis.scan_iter(match=f"{hub}:agent:*")]
    assert [k for k in left if ":revoked:" not in k] == []
    assert not await redis.scard(relay.keys.needs_reconcile())


async def test_delivered_dedup_set_keeps_only_the_newest_keys(redis: Redis, keys: Keys) -> None:
    outbox = Outbox(redis, keys)
    chat = ChatRef("rec", "9")
    await outbox.ensure_group(chat)
    cap = 5
    for i in range(cap + 7):
        await outbox.enqueue([Outgoing(chat, f"k{i}", Message(title=str(i)))], now=1000.0 + i)
    entries = await outbox.take(chat, "me", 100)
    for i, d in enumerate(entries):
        await outbox.ack(d, now=1000.0 + i, cap=cap)
    kept = [_text(m) for m in await redis.zrange(keys.delivered(), 0, -1)]
    assert kept == [f"k{i}" for i in range(7, cap + 7)]
    # ... and nothing older than the age limit, however few there are.
    d = entries[0]
    late = Delivery(d.entry_id, chat, "late", d.message_json, False, 0.0)
    await outbox.ack(late, now=1000.0 + 8 * 86400, cap=cap)
    assert [_text(m) for m in await redis.zrange(keys.delivered(), 0, -1)] == ["late"]
