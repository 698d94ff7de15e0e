"""Start-up warnings about where the relay runs: things that work today and lose data tomorrow.

Neither stops the relay (an operator may know better), but each is said once, clearly, at start
and by `aitrader-relay check`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)

# Environment variables that PaaS runtimes set in every process, and whose filesystem is thrown
# away at each restart or deploy (Heroku dynos, Cloud Run instances, Render services without a disk).
EPHEMERAL_MARKERS: tuple[tuple[str, str], ...] = (
    ("DYNO", "a Heroku dyno"),
    ("K_SERVICE", "a Cloud Run service"),
    ("RENDER", "a Render service"),
)


def ephemeral_filesystem(environ: Mapping[str, str]) -> str | None:
    """The platform whose filesystem is thrown away at restarts, when this process runs on one."""
    for variable, platform in EPHEMERAL_MARKERS:
        if environ.get(variable, "").strip():
            return platform
    return None


def embedded_store_warning(environ: Mapping[str, str]) -> str | None:
    platform = ephemeral_filesystem(environ)
    if platform is None:
        return None
    return (
        f"the embedded Redis keeps its data in RELAY_DATA_DIR, but this runs on {platform}, whose filesystem "
        "is emptied at every restart: linked agents, subscriptions and queued notifications would be lost. "
        "Set REDIS_URL to a Redis server (e.g. the platform's Redis add-on)."
    )


async def eviction_policy(redis: Redis) -> str | None:
    """The server's maxmemory-policy; None when the server hides it (managed services may)."""
    try:
        reply = await redis.config_get("maxmemory-policy")
        value = reply.get("maxmemory-policy") or reply.get(b"maxmemory-policy")  # type: ignore[call-overload]
        if value:
            return str(value.decode() if isinstance(value, bytes) else value)
    except ResponseError:  # CONFIG is disabled on many managed plans; INFO still says it
        pass
    try:
        info = await redis.info("memory")
    except RedisError:
        return None
    policy = info.get("maxmemory_policy")
    return str(policy) if policy else None


async def eviction_warning(redis: Redis) -> str | None:
    policy = await eviction_policy(redis)
    if policy is None or policy == "noeviction":
        return None
    return (
        f"REDIS_URL: the server's maxmemory-policy is {policy}, not noeviction: when it fills up it will "
        "evict the relay's keys, which loses queued notifications and duplicates delivered ones. "
        "Set maxmemory-policy to noeviction (managed services: in the add-on's settings)."
    )
