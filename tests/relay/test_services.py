"""AdapterServices over a real Redis: every adapter key is a declared family, written with its bound."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from relay.errors import StoreUnavailable
from relay.keys import (
    ADAPTER_FAMILIES,
    DISCORD_COMMANDS,
    DISCORD_GUILD_CHANNELS,
    DISCORD_INVALID,
    TELEGRAM_BUTTONS,
    TELEGRAM_GLOBAL_RATE,
    TELEGRAM_POLLER,
    TELEGRAM_PROMPTS,
    AdapterFamily,
    Keys,
)
from relay.services import RedisAdapterServices


@pytest.fixture
def telegram(redis: Redis, keys: Keys) -> RedisAdapterServices:
    return RedisAdapterServices(redis, keys, "telegram")


@pytest.fixture
def discord(redis: Redis, keys: Keys) -> RedisAdapterServices:
    return RedisAdapterServices(redis, keys, "discord")


def test_every_declared_family_has_a_bound_and_a_unique_key_path() -> None:
    assert len(ADAPTER_FAMILIES) >= 14
    for family in ADAPTER_FAMILIES.values():
        assert family.ttl_s is not None or family.cap, family
    with pytest.raises(ValueError, match="expiry or a stated cap"):
        AdapterFamily("telegram", "unbounded", "string", None)


async def test_writes_carry_the_familys_expiry(telegram: RedisAdapterServices, redis: Redis, keys: Keys) -> None:
    buttons = telegram.store(TELEGRAM_BUTTONS)
    assert await buttons.put("ref1", value="{}")
    ttl = await redis.ttl(keys.adapter_key(TELEGRAM_BUTTONS, "ref1"))
    assert TELEGRAM_BUTTONS.ttl_s is not None and TELEGRAM_BUTTONS.ttl_s - 5 <= ttl <= TELEGRAM_BUTTONS.ttl_s
    assert await buttons.get("ref1") == "{}"
    assert await buttons.get("absent") is None


async def test_a_family_without_ttl_is_written_without_one(
    discord: RedisAdapterServices, redis: Redis, keys: Keys
) -> None:
    hashes = discord.store(DISCORD_COMMANDS)
    await hashes.put("global", value="abc")
    assert await redis.ttl(keys.adapter_key(DISCORD_COMMANDS, "global")) == -1


async def test_only_if_absent_and_take(telegram: RedisAdapterServices) -> None:
    prompts = telegram.store(TELEGRAM_PROMPTS)
    assert await prompts.put(5, 7, value="first", only_if_absent=True)
    assert not await prompts.put(5, 7, value="second", only_if_absent=True)
    assert await prompts.take(5, 7) == "first"
    assert await prompts.take(5, 7) is None, "taken once"
    assert not await prompts.exists(5, 7)


async def test_a_counter_expires_from_its_first_count_only(
    discord: RedisAdapterServices, redis: Redis, keys: Keys
) -> None:
    counts = discord.store(DISCORD_INVALID)
    key = keys.adapter_key(DISCORD_INVALID, 9)
    assert await counts.incr(9) == 1
    await redis.expire(key, 100)  # as if the window were nearly over
    assert await counts.incr(9) == 2
    assert await redis.ttl(key) <= 100, "a later count must not extend the window"
    assert await redis.ttl(key) > 0


async def test_sets_renew_their_expiry_and_delete_by_parts(
    discord: RedisAdapterServices, redis: Redis, keys: Keys
) -> None:
    channels = discord.store(DISCORD_GUILD_CHANNELS)
    await channels.add(1, "channels", member=10)
    await channels.add(1, "channels", member="11")
    assert await channels.members(1, "channels") == {"10", "11"}
    assert await redis.ttl(keys.adapter_key(DISCORD_GUILD_CHANNELS, 1, "channels")) > 0
    await channels.delete((1, "channels"))
    assert await channels.members(1, "channels") == set()


async def test_another_platforms_or_kinds_family_is_refused(telegram: RedisAdapterServices) -> None:
    with pytest.raises(ValueError, match="discord's key family"):
        telegram.store(DISCORD_COMMANDS)
    with pytest.raises(ValueError, match="is a lease"):
        telegram.store(TELEGRAM_POLLER)
    with pytest.raises(ValueError, match="is a string"):
        telegram.lease(TELEGRAM_BUTTONS)
    with pytest.raises(ValueError, match="TTL"):
        telegram.lease(TELEGRAM_POLLER, ttl_s=10 * 60)  # longer than declared


async def test_a_lease_has_one_holder_at_a_time(redis: Redis, keys: Keys) -> None:
    one = RedisAdapterServices(redis, keys, "telegram").lease(TELEGRAM_POLLER, 5)
    two = RedisAdapterServices(redis, keys, "telegram").lease(TELEGRAM_POLLER, 5)
    assert one.owner != two.owner
    assert await one.acquire()
    assert not await two.acquire()
    assert not await two.renew()
    assert not await two.release(), "only the holder releases"
    assert 0 < await redis.pttl(keys.adapter_key(TELEGRAM_POLLER)) <= 5000
    assert await one.release()
    assert await two.acquire()


async def test_first_time_is_true_once_per_event(telegram: RedisAdapterServices, redis: Redis, keys: Keys) -> None:
    assert await telegram.first_time("77")
    assert not await telegram.first_time("77")
    assert await telegram.first_time("78")
    assert 0 < await redis.ttl(keys.command_seen("telegram", "77")) <= 24 * 3600
    other = RedisAdapterServices(redis, keys, "discord")
    assert await other.first_time("77"), "event ids are per platform"


async def test_a_rate_budget_spaces_acquisitions(telegram: RedisAdapterServices) -> None:
    budget = telegram.rate_budget(TELEGRAM_GLOBAL_RATE, 20)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(4):
        await budget.acquire()
    assert loop.time() - start >= 3 / 20 - 0.02  # four slots at 20/s span three intervals


async def test_redis_down_is_store_unavailable(keys: Keys) -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    services = RedisAdapterServices(dead, keys, "telegram")
    try:
        with pytest.raises(StoreUnavailable):
            await services.store(TELEGRAM_BUTTONS).get("x")
        with pytest.raises(StoreUnavailable):
            await services.first_time("1")
        with pytest.raises(StoreUnavailable):
            await services.lease(TELEGRAM_POLLER).acquire()
        with pytest.raises(StoreUnavailable):
            await services.rate_budget(TELEGRAM_GLOBAL_RATE, 10).acquire()
    finally:
        await dead.aclose()
