"""Security review findings (issue 13): caps on what a stranger can grow, and key rotation.

Real Redis (embedded Valkey) and the AI-Trader simulator over HTTP. Each test failed before its fix.
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path
from typing import cast

import httpx
import pytest
from redis.asyncio import Redis

from adapters.main import _parser, rekey
from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.embedded_redis import connect, start_embedded, writable_dir
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef, Message, UserRef
from relay.outbox import Outbox, Outgoing
from relay.router import STORAGE_FULL
from relay.tokens import TokenBox, exposure_warnings, load_or_create_key, new_key_text
from tests.conftest import Chat, make_settings
from tests.fakes.recording import RecordingAdapter


async def dead_letters(redis: Redis, keys: Keys) -> list[dict[bytes, bytes]]:
    raw = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.dead_letters()))
    return [fields for _, fields in raw]


def build(
    sim_url: str, redis_url: str, prefix: str, secret: str, redis: Redis, http: httpx.AsyncClient, **overrides: object
) -> tuple[Relay, RecordingAdapter]:
    settings = make_settings(sim_url, redis_url, prefix, secret, **overrides)
    adapter = RecordingAdapter()
    box = TokenBox.from_text(secret)
    return Relay(settings, redis, http, box, [adapter], redactor=Redactor(), rng=random.Random(1)), adapter


# --- subscriptions and watches per chat and per user --------------------------------------------


async def test_watches_are_capped_per_user_and_subscriptions_per_chat_before_any_upstream_call(
    sim: SimulatorServer,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    world: World,
) -> None:
    relay, adapter = build(
        sim.url, redis_url, prefix, secret_key, redis, http, max_watches_per_user=5, max_subscriptions_per_chat=8
    )
    mallory = Chat(relay, adapter.chat("-1"), UserRef("rec", "666", "mallory", is_chat_admin=True), private=False)
    before = world.route_counts["/api/signals/feed"]
    replies = [await mallory.text("subscribe", what=f"feed kw{i}") for i in range(300)]
    assert sum("Watching the feed" in r for r in replies) == 5
    assert "5 feed and trader watches" in replies[-1] and "/unsubscribe" in replies[-1]
    assert len(await relay.store.watches()) == 5
    assert world.route_counts["/api/signals/feed"] - before <= 5  # only the accepted watches asked upstream
    # The same user elsewhere is still capped; another admin fills this chat up to its cap.
    other_chat = Chat(relay, adapter.chat("-2"), UserRef("rec", "666", "mallory", is_chat_admin=True), private=False)
    assert "5 feed and trader watches" in await other_chat.text("subscribe", what="trader 42")
    admin = Chat(relay, adapter.chat("-1"), UserRef("rec", "7", "amy", is_chat_admin=True), private=False)
    traders = [world.create_agent(f"t{i}").id for i in range(5)]
    texts = [await admin.text("subscribe", what=f"trader {t}") for t in traders]
    assert sum("Watching trader" in t for t in texts) == 3
    assert "this chat already has 8 subscriptions" in texts[-1]
    # Removing one frees a place for its owner (the per-user index heals itself).
    first = (await relay.store.chat_subscriptions(mallory.chat))[0]
    await mallory.text("unsubscribe", id=str(first.sub_id))
    assert "Watching the feed" in await other_chat.text("subscribe", what="feed again")


# --- a per-user command rate limit shared through Redis ----------------------------------------


async def test_one_user_is_slowed_down_with_one_notice_and_nothing_reaches_upstream(
    sim: SimulatorServer,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    world: World,
) -> None:
    overrides = {"command_rate_per_minute": 20, "feed_rate_per_minute": 10, "link_rate_per_10_minutes": 5}
    one, adapter = build(sim.url, redis_url, prefix, secret_key, redis, http, **overrides)
    two, _ = build(sim.url, redis_url, prefix, secret_key, redis, http, **overrides)  # a second process
    user = UserRef("rec", "9", "spammer")
    chats = [Chat(r, adapter.chat("9"), user) for r in (one, two)]
    feeds_before = world.route_counts["/api/signals/feed"]
    replies = [await chats[i % 2].say("feed", keyword="btc") for i in range(30)]
    feeds = world.route_counts["/api/signals/feed"] - feeds_before
    assert feeds == 10  # the /feed budget, shared by both processes
    texts = ["\n".join(m.plain_text() for m in r.messages) for r in replies]
    assert sum(t.startswith("Slow down") for t in texts) == 1
    assert sum(t == "" for t in texts) == 19  # later refusals in the same minute are silent
    # The general budget (20 a minute) also covers every other command; others are not affected.
    statuses = [await chats[0].text("status") for _ in range(12)]
    assert sum("Status" in s for s in statuses) == 10 and all(s == "" for s in statuses[10:])
    assert "Status" in await Chat(one, adapter.chat("10"), UserRef("rec", "10", "ann")).text("status")


async def test_link_is_limited_strictest_and_a_refused_link_is_still_deleted(
    sim: SimulatorServer,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    world: World,
) -> None:
    relay, adapter = build(sim.url, redis_url, prefix, secret_key, redis, http, link_rate_per_10_minutes=5)
    chat = Chat(relay, adapter.chat("9"), UserRef("rec", "9", "guesser"))
    before = world.route_counts["/api/claw/agents/me"]
    replies = [await chat.say("link", token=f"guess{i:03d}" + "x" * 38) for i in range(12)]
    assert world.route_counts["/api/claw/agents/me"] - before == 5
    assert all(r.delete_command for r in replies)
    assert replies[5].messages[0].plain_text().startswith("Slow down")


# --- a backlog cap per chat queue ------------------------------------------------------------------


async def test_past_the_cap_the_oldest_unread_deliveries_are_dead_lettered_with_one_notice(
    redis: Redis, keys: Keys
) -> None:
    outbox = Outbox(redis, keys, max_per_chat=10)
    chat = ChatRef("rec", "spam")
    items = [Outgoing(chat, f"k{i}", Message(body=f"spam {i}")) for i in range(25)]
    for item in items:
        await outbox.enqueue([item], now=1000.0)
    await outbox.ensure_group(chat)
    queued = await outbox.take(chat, "c1", 100)
    bodies = [d.message.body for d in queued]
    assert len(queued) == 11  # the cap, plus the one notice
    assert sum("moved to the dead-letter list" in b for b in bodies) == 1
    spam = [b for b in bodies if b.startswith("spam")]
    assert spam == [f"spam {i}" for i in range(15, 25)]  # the newest, in order
    dead = await dead_letters(redis, keys)
    assert len(dead) == 15 and await outbox.dead_count(chat) == 15
    assert all(b"backlog cap" in f[b"cause"] for f in dead)
    # Nothing silently dropped: every key is either queued or dead-lettered.
    dead_keys = {f[b"key"].decode() for f in dead}
    assert dead_keys | {d.key for d in queued} >= {i.key for i in items}


async def test_entries_a_sender_has_read_are_never_dead_lettered_by_the_cap(redis: Redis, keys: Keys) -> None:
    outbox = Outbox(redis, keys, max_per_chat=3)
    chat = ChatRef("rec", "busy")
    await outbox.enqueue([Outgoing(chat, f"a{i}", Message(body=f"a{i}")) for i in range(3)], now=1.0)
    await outbox.ensure_group(chat)
    in_flight = await outbox.take(chat, "c1", 2)  # being sent right now
    await outbox.enqueue([Outgoing(chat, f"b{i}", Message(body=f"b{i}")) for i in range(3)], now=2.0)
    dead = {f[b"key"] for f in await dead_letters(redis, keys)}
    assert not dead & {d.key.encode() for d in in_flight}


# --- maxmemory with noeviction, and a clear error when it is reached ---------------------------------


async def test_embedded_valkey_has_maxmemory_noeviction_and_a_full_redis_is_one_clear_reply(
    tmp_path: Path, sim: SimulatorServer, http: httpx.AsyncClient, world: World, secret_key: str
) -> None:
    sock, server = start_embedded(tmp_path / "data", maxmemory="8mb")
    redis = connect(f"unix://{sock}")
    try:
        config = await redis.config_get("maxmemory*")
        assert int(str(config["maxmemory"])) == 8 * 1024 * 1024 and config["maxmemory-policy"] == "noeviction"
        relay, adapter = build(sim.url, f"unix://{sock}", "full", secret_key, redis, http)
        dm = Chat(relay, adapter.chat("1"), UserRef("rec", "1", "ann"))
        await dm.text("link", token=world.create_agent("a").token)
        filler = b"x" * 100_000
        with pytest.raises(Exception, match="maxmemory"):
            for i in range(200):
                await redis.set(f"filler:{i}", filler)
        await redis.config_set("maxmemory", "1mb")  # well past it, so no small write slips through
        assert await dm.text("subscribe", what="all") == STORAGE_FULL
    finally:
        await redis.aclose()
        server.stop()  # type: ignore[union-attr]


# --- key rotation -----------------------------------------------------------------------------------


async def test_a_key_list_opens_old_tokens_and_rekey_moves_them_to_the_newest_key(
    sim: SimulatorServer,
    redis_url: str,
    prefix: str,
    redis: Redis,
    http: httpx.AsyncClient,
    world: World,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new, unknown = new_key_text(), new_key_text(), new_key_text()
    agents = [world.create_agent(f"a{i}") for i in range(3)]
    first, adapter = build(sim.url, redis_url, prefix, old, redis, http)
    for i, agent in enumerate(agents[:2]):
        await Chat(first, adapter.chat(str(i)), UserRef("rec", str(i), "u")).text("link", token=agent.token)
    stray, _ = build(sim.url, redis_url, prefix, unknown, redis, http)
    await stray.store.link("rec:2", agents[2].id, "a2", agents[2].token, "consume")
    await Chat(stray, adapter.chat("2"), UserRef("rec", "2", "u")).text("subscribe", what="all")

    rotated, _ = build(sim.url, redis_url, prefix, f"{new},{old}", redis, http)
    assert (await rotated.store.agent(agents[0].id)).token == agents[0].token  # type: ignore[union-attr]
    settings = make_settings(sim.url, redis_url, prefix, f"{new}, {old}")
    assert await rekey(settings) == 0
    out = capsys.readouterr().out
    assert "rekeyed 2 token(s); 0 already under the newest key; 1 under no configured key" in out
    only_new, sink = build(sim.url, redis_url, prefix, new, redis, http)
    for agent in agents[:2]:
        assert (await only_new.store.agent(agent.id)).token == agent.token  # type: ignore[union-attr]
    assert _parser().parse_args(["rekey"]).command == "rekey"
    # The token no key opens: its agent pauses and its chat hears the relink notice.
    await only_new.poller.poll(agents[2].id)
    paused = await only_new.store.agent(agents[2].id)
    assert paused is not None and paused.state == "paused"
    await only_new.deliverer.drain_due(until=only_new.deliverer._clock() + 60)
    notices = [s.message.plain_text() for s in sink.to(ChatRef("rec", "2"))]
    assert len(notices) == 1 and "paused" in notices[0] and "/link" in notices[0]


def test_the_data_dir_is_created_private_and_open_modes_are_warned_about(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    writable_dir(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    load_or_create_key(None, data, embedded=True)
    assert stat.S_IMODE((data / "secret.key").stat().st_mode) == 0o600
    assert exposure_warnings(data) == []
    os.chmod(data, 0o755)
    os.chmod(data / "secret.key", 0o644)
    warnings = exposure_warnings(data)
    assert len(warnings) == 2
    assert "chmod 700" in warnings[0] and "chmod 600" in warnings[1] and "RELAY_DATA_DIR" in warnings[0]


def test_settings_take_a_key_list(secret_key: str) -> None:
    box = TokenBox.from_text(f"{new_key_text()}\n{secret_key}")
    assert box.key_count == 2
    assert box.open(TokenBox.from_text(secret_key).seal("tok", 5), 5) == "tok"
    assert isinstance(make_settings("http://127.0.0.1:1", "redis://x", "p", secret_key), RelaySettings)
