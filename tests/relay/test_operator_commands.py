"""Operator commands: dead letters listed and replayed (in order, never a duplicate of something
delivered since), /admin for OWNER_IDS only, and export/import of what users set up."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from aitrader_sim.world import World
from relay.app import Relay
from relay.backup import ImportRefused, export, import_
from relay.config import RelaySettings
from relay.errors import Undeliverable
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef, Message, UserRef
from relay.outbox import Outgoing
from relay.redis_values import text
from relay.store import Store
from relay.tokens import TokenBox, new_key_text
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter

REPO = Path(__file__).resolve().parents[2]


async def dead_lettered(relay: Relay, adapter: RecordingAdapter, chat: ChatRef, names: list[str]) -> None:
    """Queue one delivery per name for `chat`, and have the platform refuse each for good."""
    items = [Outgoing(chat, f"{chat.chat_id}:{n}", Message(title=n)) for n in names]
    await relay.outbox.enqueue(items, now=0)
    adapter.failures[chat.key] = [Undeliverable("refused") for _ in names]
    await relay.deliverer.drain(chat)
    assert adapter.failures[chat.key] == []


async def test_replay_puts_a_chats_dead_letters_back_in_order_without_duplicates(
    relay: Relay, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    a, b = adapter.chat("a"), adapter.chat("b")
    await dead_lettered(relay, adapter, a, ["one", "two", "three", "four"])
    await dead_lettered(relay, adapter, b, ["other"])
    assert [d.title for d in await relay.dead_letters.list(a.key)] == ["one", "two", "three", "four"]
    assert await relay.outbox.dead_count(a) == 4
    # "three" reached the chat meanwhile (delivered under the same key another way).
    await redis.zadd(keys.delivered(), {"a:three": 1})

    done = await relay.dead_letters.replay(a.key)
    assert (done.queued, done.skipped) == (3, 1)
    await relay.deliverer.drain(a)
    assert [s.message.title for s in adapter.sent if s.chat == a] == ["one", "two", "four"]
    # Chat b's dead letter stays where it was; a's count is gone with its entries.
    assert [d.title for d in await relay.dead_letters.list()] == ["other"]
    assert await relay.outbox.dead_count(a) == 0 and await relay.outbox.dead_count(b) == 1
    # Replaying again finds nothing: nothing is sent twice.
    again = await relay.dead_letters.replay(a.key)
    assert (again.queued, again.skipped) == (0, 0)
    await relay.deliverer.drain(a)
    assert [s.message.title for s in adapter.sent if s.chat == a] == ["one", "two", "four"]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_", "REDIS_", "RELAY_"))}
    base.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run(
        [sys.executable, "-m", "adapters.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=base,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


async def test_dead_letters_cli_lists_and_replays_one_chat_or_all(
    relay: Relay, adapter: RecordingAdapter, redis_url: str, prefix: str, secret_key: str
) -> None:
    a, b = adapter.chat("a"), adapter.chat("b")
    await dead_lettered(relay, adapter, a, ["one", "two"])
    await dead_lettered(relay, adapter, b, ["other"])
    env = {"REDIS_URL": redis_url, "RELAY_KEY_PREFIX": prefix, "RELAY_SECRET_KEY": secret_key}
    listed = cli("dead-letters", "list", **env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[2], r[5]) for r in rows] == [(a.key, "one"), (a.key, "two"), (b.key, "other")]
    assert "undeliverable: refused" in rows[0][4]
    only_b = cli("dead-letters", "list", "--chat", "rec:b", **env)  # typed without the thread part
    assert [line.split("\t")[5] for line in only_b.stdout.splitlines()] == ["other"]

    replayed = cli("dead-letters", "replay", "--chat", "rec:a", **env)
    assert replayed.stdout.strip() == "replayed 2 into their chats' queues; skipped 0 delivered since"
    assert await relay.outbox.pending(a) == 2 and await relay.outbox.pending(b) == 0
    rest = cli("dead-letters", "replay", "--all", **env)
    assert rest.stdout.startswith("replayed 1 ")
    assert await relay.outbox.pending(b) == 1
    neither = cli("dead-letters", "replay", **env)
    assert neither.returncode == 2 and "one of the arguments --chat --all is required" in neither.stderr


# --- /admin ----------------------------------------------------------------------------------------


@pytest.fixture
def owned_relay(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, adapter: RecordingAdapter
) -> Relay:
    owned = settings.model_copy(update={"owner_ids": "rec:100, telegram:5"})
    return Relay(owned, redis, http, box, [adapter], redactor=Redactor(), rng=random.Random(3))


async def test_owners_get_admin_in_private_everyone_else_the_unknown_command_reply(
    owned_relay: Relay, adapter: RecordingAdapter
) -> None:
    owner = Chat(owned_relay, adapter.chat("100"), UserRef("rec", "100", "op"))
    stranger = Chat(owned_relay, adapter.chat("200"), UserRef("rec", "200", "eve"))
    owner_in_group = Chat(
        owned_relay, adapter.chat("-5"), UserRef("rec", "100", "op", is_chat_admin=True), private=False
    )
    # The same id on another platform is another person.
    other_platform = Chat(owned_relay, adapter.chat("5"), UserRef("rec", "5", "x"))
    await dead_lettered(owned_relay, adapter, adapter.chat("a"), ["lost"])

    stats = await owner.text("admin", what="stats")
    assert "Relay stats" in stats and "dead letters: 1" in stats
    listing = await owner.text("admin", what="deadletters")
    assert "rec:a:" in listing and "lost" in listing and "1 in all" in listing
    assert await owner.text("admin", what="replay rec:a") == "Replayed 1 dead letter(s) into their chats' queues."

    unknown = await stranger.text("frobnicate")
    assert unknown.startswith("Unknown command /frobnicate.")
    for chat in (stranger, owner_in_group, other_platform):
        assert await chat.text("admin", what="stats") == unknown.replace("frobnicate", "admin")


async def test_admin_is_unknown_when_no_owner_is_configured(dm: Chat) -> None:
    assert (await dm.text("admin", what="stats")).startswith("Unknown command /admin.")


async def test_admin_is_neither_in_help_nor_in_the_commands_adapters_register(relay: Relay, dm: Chat) -> None:
    assert "/admin" not in await dm.text("help")
    assert "admin" not in [spec.name for spec in relay._specs]  # no owners: not even Telegram parses it


# --- export / import -------------------------------------------------------------------------------


async def linked_setup(relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter) -> int:
    agent = world.create_agent("exported")
    await dm.text("link", token=agent.token)
    await dm.text("subscribe", what="replies mentions")
    await dm.text("subscribe", what="feed btc strategy")
    await dm.text("notify", kind="followers", mode="silent")
    return agent.id


async def dump(redis: Redis, prefix: str) -> dict[str, object]:
    """Every key under the prefix with its value, for comparing two Redis states."""
    out: dict[str, object] = {}
    async for raw in redis.scan_iter(match=f"{prefix}:*"):
        key = raw.decode()
        kind = text(await redis.type(key))
        if kind == "hash":
            out[key[len(prefix) :]] = await redis.hgetall(key)
        elif kind == "set":
            out[key[len(prefix) :]] = await redis.smembers(key)
        elif kind == "zset":
            out[key[len(prefix) :]] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            out[key[len(prefix) :]] = await redis.get(key)
    return out


async def test_export_then_import_into_another_prefix_carries_links_subscriptions_and_settings(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter, redis: Redis, box: TokenBox
) -> None:
    agent_id = await linked_setup(relay, world, dm, adapter)
    data = await export(redis, relay.keys, box)
    assert json.loads(json.dumps(data)) == data  # plain JSON
    sealed = json.dumps(data)
    token = (await relay.store.agent(agent_id)).token  # type: ignore[union-attr]
    assert token and token not in sealed  # tokens stay sealed

    target = Keys(relay.keys.prefix + "x")
    try:
        first = await import_(redis, target, box, data)
        assert first.keys == len(data["keys"]) and first.agents_without_token == 0
        moved = Store(redis, target, box)
        agent = await moved.agent(agent_id)
        assert agent is not None and agent.token == token and agent.state == "active"
        subs = await moved.chat_subscriptions(dm.chat)
        assert sorted(s.kind for s in subs) == ["agent", "feed"]
        assert await moved.agent_for_user(dm.user.key) is not None
        assert await redis.hget(target.chat_kinds(dm.chat.key), "followers") == b"silent"
        before = await dump(redis, target.prefix)
        again = await import_(redis, target, box, data)  # idempotent
        assert again.keys == first.keys and await dump(redis, target.prefix) == before
    finally:
        async for key in redis.scan_iter(match=f"{target.prefix}:*"):
            await redis.delete(key)


async def test_import_under_another_key_is_refused_before_writing(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter, redis: Redis, box: TokenBox
) -> None:
    await linked_setup(relay, world, dm, adapter)
    data = await export(redis, relay.keys, box)
    target = Keys(relay.keys.prefix + "y")
    with pytest.raises(ImportRefused, match="RELAY_SECRET_KEY differs"):
        await import_(redis, target, TokenBox.from_text(new_key_text()), data)
    assert [k async for k in redis.scan_iter(match=f"{target.prefix}:*")] == []


async def test_export_without_tokens_imports_paused_agents_that_ask_for_a_new_link(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter, redis: Redis, box: TokenBox
) -> None:
    agent_id = await linked_setup(relay, world, dm, adapter)
    data = await export(redis, relay.keys, box, with_tokens=False)
    assert '"token"' not in json.dumps(data)
    target = Keys(relay.keys.prefix + "z")
    other_key = TokenBox.from_text(new_key_text())  # no key check without tokens: any key will do
    try:
        result = await import_(redis, target, other_key, data)
        assert result.agents_without_token == 1
        agent = await Store(redis, target, other_key).agent(agent_id)
        assert agent is not None and agent.token is None and agent.state == "paused"
        assert "/link again" in agent.paused_reason
    finally:
        async for key in redis.scan_iter(match=f"{target.prefix}:*"):
            await redis.delete(key)


async def test_import_refuses_a_subscription_id_taken_by_another_chat(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter, redis: Redis, box: TokenBox, keys: Keys
) -> None:
    await linked_setup(relay, world, dm, adapter)
    data = await export(redis, keys, box)
    for entry in data["keys"]:
        if entry["key"] == "sub:1":
            entry["value"]["chat"] = "rec:someone-else:"
    with pytest.raises(ImportRefused, match="sub:1 exists here for another chat"):
        await import_(redis, keys, box, data)
    with pytest.raises(ImportRefused, match="not an aitrader-relay export"):
        await import_(redis, keys, box, {"keys": []})


async def test_export_and_import_commands_round_trip_through_a_file(
    relay: Relay,
    world: World,
    dm: Chat,
    adapter: RecordingAdapter,
    redis: Redis,
    redis_url: str,
    secret_key: str,
    tmp_path: Path,
) -> None:
    agent_id = await linked_setup(relay, world, dm, adapter)
    env = {"REDIS_URL": redis_url, "RELAY_KEY_PREFIX": relay.keys.prefix, "RELAY_SECRET_KEY": secret_key}
    out = tmp_path / "backup.json"
    done = cli("export", "-o", str(out), **env)
    assert done.returncode == 0, done.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    target = relay.keys.prefix + "c"
    try:
        first = cli("import", str(out), **{**env, "RELAY_KEY_PREFIX": target})
        assert first.returncode == 0 and first.stdout.startswith("imported "), first.stderr
        assert (await Store(redis, Keys(target), TokenBox.from_text(secret_key)).agent(agent_id)) is not None
        wrong = cli("import", str(out), **{**env, "RELAY_KEY_PREFIX": target, "RELAY_SECRET_KEY": new_key_text()})
        assert wrong.returncode == 2 and wrong.stderr.startswith(
            "configuration error: import refused: RELAY_SECRET_KEY"
        )
        garbage = tmp_path / "garbage.json"
        garbage.write_text("{not json")
        bad = cli("import", str(garbage), **env)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and "not JSON" in bad.stderr
    finally:
        async for key in redis.scan_iter(match=f"{target}:*"):
            await redis.delete(key)
