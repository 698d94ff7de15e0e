"""The composition root and the `aitrader-relay` command: the only module that knows every adapter.

It reads settings, configures logging, opens Redis and the HTTP client, builds the enabled
adapters and runs `Relay` until SIGTERM. A bad setting ends here as one line and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from relay import logs
from relay.adapter import ChatAdapter
from relay.app import Relay
from relay.config import RelaySettings, describe_error
from relay.embedded_redis import open_redis
from relay.errors import ConfigError
from relay.keys import Keys
from relay.redis_values import text_dict
from relay.tokens import TokenBox, load_or_create_key, new_key_text

if TYPE_CHECKING:
    from adapters.embedded_server import BackgroundServer

log = logging.getLogger("aitrader-relay")

NO_PLATFORM = (
    "no chat platform configured: set TELEGRAM_BOT_TOKEN to enable Telegram, "
    "DISCORD_BOT_TOKEN to enable Discord (or try `aitrader-relay demo`, which needs neither)"
)


class PlatformSwitches(BaseSettings):
    """Only which platforms are on; each adapter reads its own full settings."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    telegram_bot_token: SecretStr | None = None
    discord_bot_token: SecretStr | None = None


def build_http(settings: RelaySettings) -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.aitrader_timeout_seconds, connect=min(5.0, settings.aitrader_timeout_seconds))
    return httpx.AsyncClient(
        base_url=settings.base_url,
        timeout=timeout,
        follow_redirects=False,  # a redirect to another host would carry the agent token along
        headers={"User-Agent": "aitrader-relay/0.1"},
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


def build_adapters(switches: PlatformSwitches, redis: Redis, keys: Keys, redactor: logs.Redactor) -> list[ChatAdapter]:
    adapters: list[ChatAdapter] = []
    if switches.telegram_bot_token:
        from adapters.telegram import TelegramAdapter, TelegramSettings

        adapters.append(TelegramAdapter(TelegramSettings(), redis, keys, redactor))
    if switches.discord_bot_token:
        from adapters.discord import DiscordAdapter, DiscordSettings

        adapters.append(DiscordAdapter(DiscordSettings(), redis, keys, redactor))
    return adapters


@contextlib.contextmanager
def _stop_signals() -> Iterator[asyncio.Event]:
    """An event SIGTERM/SIGINT set, installed before anything starts: a signal that arrives while
    the relay is still starting ends it gracefully once started, instead of killing it mid-way
    with the default handler. The embedded HTTP servers install none (adapters/embedded_server.py)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _until_any(events: Sequence[asyncio.Event]) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _serve_metrics(relay: Relay, port: int) -> BackgroundServer:
    from prometheus_client import make_asgi_app

    from adapters.embedded_server import BackgroundServer

    server = BackgroundServer(make_asgi_app(relay.metrics.registry), "0.0.0.0", port, "metrics")
    await server.start()
    log.info("metrics on port %d", server.port)
    return server


async def run(settings: RelaySettings, switches: PlatformSwitches, *, console: bool = False) -> int:
    redactor = logs.configure(settings.log_level.upper())
    for token in (switches.telegram_bot_token, switches.discord_bot_token):
        redactor.add(token.get_secret_value() if token else None)
    with _stop_signals() as stop:
        async with open_redis(settings.redis_url, settings.relay_data_dir, settings.redis_max_connections) as handle:
            box = load_or_create_key(
                settings.relay_secret_key.get_secret_value() if settings.relay_secret_key else None,
                settings.relay_data_dir,
                embedded=handle.embedded,
            )
            keys = Keys(settings.relay_key_prefix)
            adapters = build_adapters(switches, handle.redis, keys, redactor)
            closed: list[asyncio.Event] = []
            if console:
                from adapters.console import ConsoleAdapter, stdin_reader

                console_adapter = ConsoleAdapter(await stdin_reader(), sys.stdout)
                adapters.append(console_adapter)
                closed.append(console_adapter.closed)
            async with build_http(settings) as http:
                relay = Relay(settings, handle.redis, http, box, adapters, redactor=redactor)
                metrics = await _serve_metrics(relay, settings.metrics_port) if settings.metrics_port else None
                try:
                    async with relay:
                        log.info("relay running redis=%s", handle.where)
                        warming = asyncio.create_task(relay.warm_charts(), name="chart workers")
                        await _until_any([stop, *closed])
                        warming.cancel()
                        log.info("relay stopping")
                finally:
                    if metrics:
                        await metrics.stop()
    return 0


async def demo(seconds: float | None, activity_every: float) -> int:
    """The whole flow offline: the simulator on 127.0.0.1, an embedded Redis, the console."""
    from adapters.console import ConsoleAdapter, stdin_reader
    from aitrader_sim.demo import run_activity, seed_demo
    from aitrader_sim.server import SimulatorServer
    from aitrader_sim.world import World

    redactor = logs.configure("WARNING")
    world = World(poll_interval_seconds=3)  # notifications show up within seconds in the demo
    seed = seed_demo(world)
    data_dir = Path(tempfile.mkdtemp(prefix="aitrader-relay-demo-"))
    try:
        with _stop_signals() as stop:
            async with SimulatorServer(world) as sim, open_redis(None, data_dir) as handle:
                settings = RelaySettings(
                    aitrader_base_url=sim.url,
                    relay_data_dir=data_dir,
                    poll_min_seconds=3,
                    poll_max_seconds=30,
                    feed_poll_seconds=10,
                    _env_file=None,
                )
                box = load_or_create_key(None, data_dir, embedded=True)
                console = ConsoleAdapter(await stdin_reader(), sys.stdout)
                async with (
                    build_http(settings) as http,
                    Relay(settings, handle.redis, http, box, [console], redactor=redactor),
                ):
                    print(f"AI-Trader simulator on {sim.url}; you are agent {seed.you.name!r} (#{seed.you.id}).")
                    print("Linking the demo agent and subscribing this console. Type /help, or Ctrl-D to quit.\n")
                    await console.run_line(f"/link {seed.you.token}")
                    await console.run_line("/subscribe all")
                    activity = asyncio.create_task(run_activity(world, seed.you.id, every_seconds=activity_every))
                    try:
                        if seconds is not None:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(_until_any([stop, console.closed]), timeout=seconds)
                        else:
                            await _until_any([stop, console.closed])
                    finally:
                        activity.cancel()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # the demo's data is throwaway
    return 0


async def stats(settings: RelaySettings) -> int:
    """Counters and queue sizes from Redis, as JSON (for operators and scripts)."""
    logs.configure("WARNING")
    keys = Keys(settings.relay_key_prefix)
    async with open_redis(settings.redis_url, settings.relay_data_dir) as handle:
        r = handle.redis
        counters = {k: int(v) for k, v in text_dict(await r.hgetall(keys.stats())).items()}
        out = {
            "linked_agents": await r.scard(keys.agents()),
            "chats_with_queued_deliveries": await r.zcard(keys.outbox_ready()),
            "dead_letters": await r.xlen(keys.dead_letters()),
            "agents_waiting_for_reconcile": await r.scard(keys.needs_reconcile()),
            "counters": counters,
        }
    print(json.dumps(out, indent=2))
    return 0


def check_key(settings: RelaySettings) -> None:
    """The key rules `run` would enforce, checked before anything is started."""
    if settings.relay_secret_key is not None:
        TokenBox.from_text(settings.relay_secret_key.get_secret_value())
    elif settings.redis_url:
        raise ConfigError(
            "RELAY_SECRET_KEY: required when REDIS_URL is set (generate one with `aitrader-relay keygen`)"
        )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aitrader-relay", description="AI-Trader notifications in Telegram and Discord.")
    sub = p.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the relay (Telegram and/or Discord as configured)")
    run_p.add_argument("--console", action="store_true", help="also chat with it in this terminal")
    demo_p = sub.add_parser("demo", help="offline demo: built-in AI-Trader simulator and a terminal chat")
    demo_p.add_argument("--seconds", type=float, default=None, help="quit after this many seconds")
    demo_p.add_argument("--every", type=float, default=4.0, help="seconds between simulated events")
    sub.add_parser("check", help="validate the configuration and exit")
    sub.add_parser("stats", help="print queue sizes and counters as JSON")
    sub.add_parser("keygen", help="print a new RELAY_SECRET_KEY")
    return p


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    # Until the event loop takes over SIGTERM (graceful), a stop during start-up just exits:
    # nothing has been read from AI-Trader yet, so there is nothing to lose.
    signal.signal(signal.SIGTERM, _exit_quietly)
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        print(new_key_text())
        return 0
    if args.command == "demo":
        return asyncio.run(demo(args.seconds, args.every))
    try:
        settings = RelaySettings()
        switches = PlatformSwitches()
        check_key(settings)
        if args.command == "check":
            print(
                "configuration ok; platforms: "
                + (
                    ", ".join(
                        n
                        for n, t in (("telegram", switches.telegram_bot_token), ("discord", switches.discord_bot_token))
                        if t
                    )
                    or "none"
                )
            )
            return 0
        if args.command == "stats":
            return asyncio.run(stats(settings))
        if not (switches.telegram_bot_token or switches.discord_bot_token or args.console):
            print(NO_PLATFORM, file=sys.stderr)
            return 2
        return asyncio.run(run(settings, switches, console=args.console))
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (RedisConnectionError, OSError) as exc:
        where = "REDIS_URL" if settings.redis_url else f"the embedded Redis in {settings.relay_data_dir}"
        print(f"configuration error: cannot reach {where} ({type(exc).__name__})", file=sys.stderr)
        return 2


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
