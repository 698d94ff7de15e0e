"""Security review findings (issue 13) in the core: each test here failed on the code before its fix.

Real Redis and the AI-Trader simulator over HTTP, driven through `Router.dispatch` as a chat would.
"""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import UserRef
from relay.tokens import TokenBox
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter

# --- relinking leaves nothing behind ---------------------------------------------------------


async def test_relinking_to_another_agent_unlinks_the_old_one_completely(
    relay: Relay, dm: Chat, world: World, redis: Redis, keys: Keys
) -> None:
    a, b = world.create_agent("a"), world.create_agent("b")
    assert f"#{a.id}" in await dm.text("link", token=a.token)
    assert "Subscribed" in await dm.text("subscribe", what="all")
    assert f"#{b.id}" in await dm.text("link", token=b.token)
    # A is no longer polled, its sealed token and its route are gone, with nothing half-removed.
    assert await relay.store.agent_ids() == [b.id]
    assert await relay.store.agent(a.id) is None
    assert await relay.store.agent_subscriptions(a.id) == []
    assert await relay.store.chat_subscriptions(dm.chat) == []
    assert not await redis.exists(keys.agent_users(a.id), keys.agent_subs(a.id))
    assert await redis.zscore(keys.poll_due(), str(a.id)) is None
    assert f"#{b.id}" in await dm.text("unlink")
    assert await relay.store.agent_ids() == []
    assert "No agent is linked" in await dm.text("unlink")


async def test_relinking_keeps_an_old_agent_that_another_user_still_links(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    a, b = world.create_agent("a"), world.create_agent("b")
    bob = Chat(relay, adapter.chat("200"), UserRef("rec", "200", "bob"))
    await dm.text("link", token=a.token)
    await bob.text("link", token=a.token)
    await bob.text("subscribe", what="all")
    await dm.text("link", token=b.token)
    assert await relay.store.agent_ids() == sorted([a.id, b.id])
    assert len(await relay.store.agent_subscriptions(a.id)) == 1


async def test_unlink_cleans_every_agent_that_still_lists_the_user(
    relay: Relay, dm: Chat, world: World, redis: Redis, keys: Keys, box: TokenBox
) -> None:
    """State an earlier version left behind: the user in the user set of an agent they relinked away from."""
    a, b = world.create_agent("a"), world.create_agent("b")
    await dm.text("link", token=a.token)
    await dm.text("subscribe", what="all")
    # What the old Store.link did on a relink to B: the new link, A's records untouched.
    await redis.hset(keys.user_link(dm.user.key), "agent_id", b.id)
    await redis.hset(keys.agent(b.id), mapping={"token": box.seal(b.token, b.id), "name": "b", "mode": "consume"})
    await redis.sadd(keys.agent_users(b.id), dm.user.key)
    await redis.sadd(keys.agents(), b.id)
    text = await dm.text("unlink")
    assert f"#{b.id}" in text and f"#{a.id}" in text
    assert await relay.store.agent_ids() == []
    assert await relay.store.agent(a.id) is None
    assert await relay.store.agent_subscriptions(a.id) == []


# --- the log-masking list holds only linked tokens ---------------------------------------------


async def test_masking_list_keeps_only_tokens_actually_linked(
    settings: RelaySettings,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
    world: World,
    adapter: RecordingAdapter,
) -> None:
    redactor = Redactor()
    relay = Relay(settings, redis, http, box, [adapter], redactor=redactor)
    dm = Chat(relay, adapter.chat("100"), UserRef("rec", "100", "ann"))
    for i in range(20):
        await dm.text("link", token=f"junk{i:02d}" + "x" * 39)  # well formed, rejected upstream
    assert len(redactor) == 0
    a, b = world.create_agent("a"), world.create_agent("b")
    await dm.text("link", token=a.token)
    assert a.token in redactor and len(redactor) == 1
    await dm.text("link", token=b.token)  # relink: A is gone, so is its mask
    assert a.token not in redactor and b.token in redactor
    await dm.text("link", token="Z" * 43)  # a rejected relink leaves the working link masked
    assert b.token in redactor and len(redactor) == 1
    await dm.text("unlink")
    assert len(redactor) == 0


async def test_tokens_stored_before_start_are_masked_at_start(
    settings: RelaySettings,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
    world: World,
    adapter: RecordingAdapter,
) -> None:
    agent = world.create_agent("a")
    first = Relay(settings, redis, http, box, [adapter], redactor=Redactor())
    await first.store.link("rec:1", agent.id, "a", agent.token, "consume")
    redactor = Redactor()
    second = Relay(settings, redis, http, box, [adapter], redactor=redactor)
    async with second:
        assert redactor.redact(f"x {agent.token} y") == "x *** y"


def test_masking_cost_does_not_grow_with_rejected_attempts() -> None:
    """The filter masks by one compiled alternation, and `discard` really removes."""
    redactor = Redactor()
    junk = [f"{i:08d}" + "q" * 35 for i in range(1000)]
    redactor.add(*junk)
    redactor.discard(*junk)
    assert len(redactor) == 0
    assert redactor.redact(junk[5]) == junk[5]


def test_link_text_is_masked_in_any_record() -> None:
    redactor = Redactor()
    token = "T0kenValue_with-43-characters-xxxxxxxxxxxxx"
    for text in (
        f"{{'text': '/link {token}', 'chat': 1}}",
        f'"text":"/link {token} observe"',
        f"Update(message=Message(text='/link@relay_bot {token}'))",
        f"'text': '/link\\n{token}'",
        f"/LINK {token}",
    ):
        out = redactor.redact(text)
        assert token not in out, out
        assert "***" in out


# --- a mistyped /link is still deleted ------------------------------------------------------------


async def test_a_usage_error_on_link_still_deletes_the_token_message(dm: Chat, world: World) -> None:
    agent = world.create_agent("ann")
    reply = await dm.say("link", token=agent.token, mode="consme")
    assert reply.delete_command
    assert reply.messages[0].plain_text().startswith("Usage: /link")
    reply = await dm.say("link", token="short!")
    assert reply.delete_command
