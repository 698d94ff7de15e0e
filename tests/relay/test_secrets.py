"""Agent tokens never reach logs, replies, dead letters or Redis in plain text."""

from __future__ import annotations

import io
import logging
import math

import httpx
from redis.asyncio import Redis

from aitrader_sim.world import World
from relay import logs
from relay.app import Relay
from relay.config import RelaySettings
from relay.errors import Undeliverable
from relay.keys import Keys
from relay.models import UserRef
from relay.redis_values import stream_entries, text, text_dict, text_or_empty, texts
from relay.tokens import TokenBox
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter


async def redis_dump(redis: Redis, prefix: str) -> bytes:
    """Every value under the prefix, whatever its type, as one blob to search."""
    out: list[str] = []
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        kind = text(await redis.type(key))
        if kind == "string":
            out.append(text_or_empty(await redis.get(key)))
        elif kind == "hash":
            out += [f"{k}={v}" for k, v in text_dict(await redis.hgetall(key)).items()]
        elif kind == "set":
            out += texts(await redis.smembers(key))
        elif kind == "zset":
            out += texts(await redis.zrange(key, 0, -1))
        elif kind == "stream":
            for _, fields in stream_entries(await redis.xrange(key)):
                out += [f"{k}={v}" for k, v in fields.items()]
        out.append(text(key))
    return "\n".join(out).encode()


async def test_canary_token_appears_nowhere_at_debug(
    settings: RelaySettings, http: httpx.AsyncClient, box: TokenBox, world: World, redis: Redis, keys: Keys
) -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    redactor = logs.configure("DEBUG", stream=buffer)
    adapter = RecordingAdapter()
    relay = Relay(settings, redis, http, box, [adapter], redactor=redactor)
    dm = Chat(relay, adapter.chat("100"), UserRef("rec", "100", "ann"))
    try:
        agent = world.create_agent("canary")
        canary = agent.token
        replies = [await dm.text("link", token=canary), await dm.text("subscribe", what="all"), await dm.text("status")]
        sid = world.create_signal(agent.id, "strategy", "crypto", "t", "c")
        world.add_reply(sid, world.create_agent("other").id, "hello")
        world.push_messages(agent.id, 3, type="custom", content_fmt="m {i}")
        await relay.poller.poll(agent.id)
        adapter.failures[dm.chat.key] = [Undeliverable(f"pretend the platform echoed {canary}")]
        await relay.deliverer.drain_due(math.inf)
        replies.append(await dm.text("reply", signal_id=str(sid), text="agreed"))
        logging.getLogger("relay.test").debug(
            "request headers %s", {"Authorization": f"Bearer {canary}", "X-Claw-Token": canary}
        )
        try:
            raise RuntimeError(f"upstream said {canary}")
        except RuntimeError:
            logging.getLogger("relay.test").exception("failure while handling")
        world.rotate_token(agent.id)
        await relay.poller.make_due(agent.id)
        await relay.poller.poll(agent.id)  # 401 path
        await relay.deliverer.drain_due(math.inf)
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    captured = buffer.getvalue()
    assert "failure while handling" in captured and "Traceback" in captured  # the logs were captured
    assert "DEBUG" in captured
    assert canary not in captured
    assert all(canary not in r for r in replies)
    assert all(canary not in s.message.to_json() for s in adapter.sent)
    dump = await redis_dump(redis, keys.prefix)
    assert b"dead" in dump  # the dead letter exists...
    assert canary.encode() not in dump  # ...and neither it nor anything else holds the token


def test_redactor_masks_bot_tokens_bearer_headers_and_registered_values() -> None:
    r = logs.Redactor()
    r.add("s3cret-value-123")
    text = r.redact(
        "GET https://api.telegram.org/bot1234567:FAKEbbbCCCdddEEEfffGGGhhhIIIjjjKKKlll/getMe Bearer abc.def s3cret-value-123 /link XYZ"
    )
    assert "FAKEbbbCCC" not in text and "abc.def" not in text and "s3cret-value-123" not in text
    assert "getMe" in text  # only the secrets go
