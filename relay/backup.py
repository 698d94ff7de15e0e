"""Export and import of what users set up: linked agents, subscriptions and chat settings.

The export is JSON: every key of the portable families below, named without the key prefix (so
an import may use another `RELAY_KEY_PREFIX`), with its Redis type and value. Agent tokens stay
sealed with the current RELAY_SECRET_KEY (the ciphertext is copied, never opened), and the export
carries a check value sealed with the same key: an import under another key is refused instead of
storing tokens nobody can open. `--without-tokens` leaves the tokens out; such agents import
paused, asking their users to /link again, and never replace a token already stored.

What is not carried: queued and dead-lettered deliveries, the inbox, leases, counters and
adapter caches (stop the relay before exporting to move it; anything queued stays behind).

An import is idempotent: it writes hashes field by field, adds set and sorted-set members, and
raises the subscription counter only. It is refused, before anything is written, when a
subscription id in the file already exists in the target for another chat.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from relay.keys import Keys
from relay.redis_values import text, text_dict, texts
from relay.tokens import TokenBox

FORMAT = "aitrader-relay-export"
VERSION = 1
_CHECK_AGENT = 0  # the check value is sealed as if for agent 0, which no real agent has
_CHECK_TEXT = "aitrader-relay export key check"
PAUSED_REASON = "imported without its token: /link again in a private chat"

# (pattern after the prefix, Redis type): what a user set up, and nothing the relay can rebuild.
# (pattern after the prefix, Redis type, in the hub): what a user set up, and nothing the relay can
# rebuild. Names are written without a cluster's hash tag (`Keys._h`), so an export from one Redis
# imports into a cluster and back: this is how a deployment moves to a cluster.
PORTABLE: tuple[tuple[str, str, bool], ...] = (
    ("agents", "set", True),
    ("agent:{n}", "hash", True),
    ("agent:{n}:users", "set", True),
    ("agent:{n}:subs", "set", True),
    ("agent:{n}:seen", "zset", True),  # so a reconcile after the move does not deliver old rows again
    ("user:{any}", "hash", True),
    ("sub:seq", "string", True),
    ("sub:{n}", "hash", True),
    ("sub:{n}:seen", "zset", True),  # a watch's baseline: nothing old is posted after the move
    ("watches", "set", True),
    ("chat:{any}:subs", "set", True),
    ("chat:{any}:kinds", "hash", True),
    ("chat:{any}:settings", "hash", False),
    ("briefs", "hash", False),
)
_REGEX = [
    (re.compile("^" + re.escape(p).replace(r"\{n\}", r"\d+").replace(r"\{any\}", r".+") + "$"), t, hub)
    for p, t, hub in PORTABLE
]


class ImportRefused(ValueError):
    """The file cannot be imported here; nothing was written."""


@dataclass
class ImportResult:
    keys: int = 0
    agents_without_token: int = 0
    notes: list[str] = field(default_factory=list)


def portable_type(name: str) -> str | None:
    return next((t for regex, t, _ in _REGEX if regex.match(name)), None)


def _key_of(keys: Keys, name: str) -> str:
    """The stored key of a portable name (with the hub's hash tag on a cluster)."""
    in_hub = next((hub for regex, _, hub in _REGEX if regex.match(name)), False)
    return f"{keys.hub_stem() if in_hub else keys.prefix}:{name}"


def _name_of(keys: Keys, key: str) -> str:
    """A stored key's portable name: after the prefix, without the hub's hash tag."""
    return key[len(keys.prefix) + 1 :].removeprefix(keys.hub_tag + ":")


async def export(redis: Redis, keys: Keys, box: TokenBox, *, with_tokens: bool = True) -> dict[str, Any]:
    prefix = keys.prefix + ":"
    out: list[dict[str, Any]] = []
    names = sorted({_name_of(keys, text(k)) async for k in redis.scan_iter(match=prefix + "*", count=1000)})
    for name in names:
        kind = portable_type(name)
        if kind is None or kind != text(await redis.type(_key_of(keys, name))):
            continue
        value = await _read(redis, _key_of(keys, name), kind)
        if kind == "hash" and re.fullmatch(r"agent:\d+", name) and not with_tokens:
            value.pop("token", None)
        out.append({"key": name, "type": kind, "value": value})
    return {
        "format": FORMAT,
        "version": VERSION,
        "tokens": "sealed" if with_tokens else "omitted",
        "key_check": box.seal(_CHECK_TEXT, _CHECK_AGENT) if with_tokens else None,
        "keys": out,
    }


async def import_(redis: Redis, keys: Keys, box: TokenBox, data: object) -> ImportResult:
    entries, with_tokens = _validated(data, box)
    await _refuse_colliding_subscriptions(redis, keys, entries)
    result = ImportResult()
    for entry in entries:
        name, kind, value = entry["key"], entry["type"], entry["value"]
        target = _key_of(keys, name)
        if kind == "hash" and re.fullmatch(r"agent:\d+", name) and (not with_tokens or "token" not in value):
            if await redis.hexists(target, "token"):
                value = {k: v for k, v in value.items() if k not in ("state", "paused_reason")}
            else:
                value = {**value, "state": "paused", "paused_reason": PAUSED_REASON}
                result.agents_without_token += 1
        await _write(redis, target, kind, value)
        result.keys += 1
    return result


def _validated(data: object, box: TokenBox) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportRefused("not an aitrader-relay export")
    if data.get("version") != VERSION:
        raise ImportRefused(f"export version {data.get('version')!r}; this relay reads version {VERSION}")
    with_tokens = data.get("tokens") == "sealed"
    if with_tokens:
        check = data.get("key_check")
        if not isinstance(check, str) or box.open(check, _CHECK_AGENT) != _CHECK_TEXT:
            raise ImportRefused(
                "RELAY_SECRET_KEY differs from the exporting relay's: its sealed tokens could not be opened "
                "here. Import with the same key, or export again with --without-tokens"
            )
    raw = data.get("keys")
    if not isinstance(raw, list):
        raise ImportRefused("the export has no key list")
    entries = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ImportRefused("a key entry is malformed")
        kind = portable_type(entry["key"])
        if kind is None or kind != entry.get("type") or not _shape_ok(kind, entry.get("value")):
            raise ImportRefused(f"key {entry['key'][:80]!r} is not one an export contains, or its value is malformed")
        entries.append(entry)
    return entries, with_tokens


def _shape_ok(kind: str, value: object) -> bool:
    if kind == "hash":
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if kind == "set":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "zset":
        return isinstance(value, list) and all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], int | float)
            for p in value
        )
    return isinstance(value, str) and value.isdigit()


async def _refuse_colliding_subscriptions(redis: Redis, keys: Keys, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        if re.fullmatch(r"sub:\d+", entry["key"]):
            here = text_dict(await redis.hgetall(_key_of(keys, entry["key"])))
            if here and here.get("chat") != entry["value"].get("chat"):
                raise ImportRefused(
                    f"subscription {entry['key']} exists here for another chat: import into an empty Redis "
                    "(or the one the export came from)"
                )


async def _read(redis: Redis, key: str, kind: str) -> Any:
    if kind == "hash":
        return text_dict(await redis.hgetall(key))
    if kind == "set":
        return sorted(texts(await redis.smembers(key)))
    if kind == "zset":
        pairs: list[tuple[bytes, float]] = await redis.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
        return [[text(m), float(s)] for m, s in pairs]
    return text(await redis.get(key))


_WRITERS: dict[str, Callable[[Redis, str, Any], Any]] = {
    "hash": lambda r, k, v: r.hset(k, mapping=v) if v else None,
    "set": lambda r, k, v: r.sadd(k, *v) if v else None,
    "zset": lambda r, k, v: r.zadd(k, {m: s for m, s in v}) if v else None,
}


async def _write(redis: Redis, key: str, kind: str, value: Any) -> None:
    if kind == "string":  # the subscription counter: only ever raised
        current = await redis.get(key)
        if current is None or int(current) < int(value):
            await redis.set(key, value)
        return
    pending = _WRITERS[kind](redis, key, value)
    if pending is not None:
        await pending
