"""The composition root and the `aitrader-relay` command: the only module that knows every adapter.

It reads settings, configures logging, opens Redis and the HTTP client, builds the enabled
adapters and runs `Relay` until SIGTERM. A bad setting ends here as one line and exit status 2.
"""

# ruff: noqa: E402  # the signal handlers below must be in place before the slow imports

from __future__ import annotations

import signal
import sys
from pathlib import Path


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


_signalled: list[int] = []  # a SIGTERM or SIGINT that came before anything could act on it


def _remember(signum: int, frame: object) -> None:
    """Until the event loop owns the signals, one is noted and acted on at a safe point.

    Raising SystemExit from the handler instead lands in whatever code runs at that moment. On
    Python 3.11 an exception inside `__set_name__` is re-raised as a RuntimeError, so a Ctrl-C
    while matplotlib defined its Axes class ended the demo with status 1 and a traceback (CI,
    Ctrl-C 0.7 s after start)."""
    _signalled.append(signum)


def _defer_signals() -> None:
    signal.signal(signal.SIGTERM, _remember)
    signal.signal(signal.SIGINT, _remember)


def _exit_if_signalled() -> None:
    """A noted stop ends the process here: nothing has been read from AI-Trader yet."""
    if _signalled:
        raise SystemExit(0)


# Loading the modules below takes about half a second; a Ctrl-C or SIGTERM meanwhile quits
# quietly once they are loaded. Only when this module is the program, never when it is imported.
_IS_PROGRAM = Path(sys.argv[0]).name in ("aitrader-relay", "main.py")
if _IS_PROGRAM:
    _defer_signals()

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any

import httpx
from pydantic import ValidationError
from redis.asyncio import Redis

from adapters import cli_operator
from adapters.configuration import PlatformSwitches, load, read_all
from adapters.http_front import FrontServer, SharedHttp
from relay import __version__, eventloop, logs, opstats, preflight
from relay.adapter import ChatAdapter
from relay.aitrader import http_limits
from relay.app import Relay
from relay.config import RelaySettings, describe_error
from relay.embedded_redis import open_configured, open_redis
from relay.errors import ConfigError
from relay.health import Health
from relay.http_client import CookielessClient, transport_for
from relay.keys import Keys
from relay.services import RedisAdapterServices
from relay.store import Store
from relay.tokens import exposure_warnings, load_or_create_key, new_key_text

__all__ = ["PlatformSwitches", "cli", "main"]

log = logging.getLogger("aitrader-relay")

if _IS_PROGRAM:
    _exit_if_signalled()


def terminal_locale() -> str:
    """The terminal's language as POSIX sets it (LC_ALL wins over LC_MESSAGES over LANG), for the
    console chat: LANG=zh_CN.UTF-8 aitrader-relay demo answers in Chinese."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if value := os.environ.get(name, ""):
            return value
    return ""


def build_http(settings: RelaySettings, *, request_hooks: Sequence[Callable[..., Any]] = ()) -> httpx.AsyncClient:
    """The AI-Trader client; `request_hooks` let the benchmarks count and time the requests of
    the very client the relay runs with."""
    timeout = httpx.Timeout(settings.aitrader_timeout_seconds, connect=min(5.0, settings.aitrader_timeout_seconds))
    limits = http_limits(settings.aitrader_connections)
    return CookielessClient(
        base_url=settings.base_url,
        timeout=timeout,
        follow_redirects=False,  # a redirect to another host would carry the agent token along
        headers={"User-Agent": f"aitrader-relay/{__version__}"},
        limits=limits,
        transport=transport_for(settings.base_url, limits),
        event_hooks={"request": list(request_hooks)},
    )


def build_adapters(
    switches: PlatformSwitches, redis: Redis, keys: Keys, redactor: logs.Redactor, http: SharedHttp | None = None
) -> list[ChatAdapter]:
    """Each adapter gets its platform's `AdapterServices`, never Redis itself (relay/adapter.py)."""
    adapters: list[ChatAdapter] = []
    if switches.telegram_bot_token:
        from adapters.telegram import TelegramAdapter, TelegramSettings

        services = RedisAdapterServices(redis, keys, TelegramAdapter.platform)
        adapters.append(TelegramAdapter(TelegramSettings(), services, redactor, http=http))
    if switches.discord_bot_token:
        from adapters.discord import DiscordAdapter, DiscordSettings

        services = RedisAdapterServices(redis, keys, DiscordAdapter.platform)
        adapters.append(DiscordAdapter(DiscordSettings(), services, redactor))
    return adapters


class _Stop(asyncio.Event):
    """Set by SIGTERM/SIGINT. During start-up a signal also cancels the start: a platform that
    is retried until it answers (Telegram unreachable) would otherwise hold the process until
    the platform kills it; nothing has been read from AI-Trader yet, and every `async with` on
    the way out closes what was opened.

    The event is set in both cases because the cancellation can be lost: on Python 3.11
    `asyncio.wait_for` returns the result instead of raising when the awaited call finishes in
    the same loop turn as the cancel, and redis-py awaits every write through it. The start
    then carried on and the process ran until killed (1 Ctrl-C in 8 during the demo's first
    commands); now it stops as soon as the start reaches the wait for this event."""

    def __init__(self) -> None:
        super().__init__()
        self.running = False
        self._main = asyncio.current_task()

    def received(self) -> None:
        self.set()
        if not self.running and self._main is not None:
            self._main.cancel()


@contextlib.contextmanager
def _stop_signals() -> Iterator[_Stop]:
    """SIGTERM/SIGINT handled by the loop from the moment it runs (a Python-level handler would
    raise inside whatever code runs at that moment and print its traceback). The embedded HTTP
    servers install none (adapters/embedded_server.py)."""
    stop = _Stop()
    loop = asyncio.get_running_loop()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in before:
        loop.add_signal_handler(sig, stop.received)
    if _signalled:  # noted by _remember before the loop took the signals over
        stop.received()
    try:
        yield stop
    finally:
        for sig, handler in before.items():
            # The loop would leave Python's defaults: a second Ctrl-C during the last of the
            # shutdown would print a KeyboardInterrupt traceback instead of being noted.
            loop.remove_signal_handler(sig)
            if handler is not None:  # None: not installed from Python; the loop's default stays
                signal.signal(sig, handler)


async def _until_any(events: Sequence[asyncio.Event]) -> None:
    for event in events:
        if isinstance(event, _Stop):
            event.running = True
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def http_port(settings: RelaySettings, switches: PlatformSwitches) -> int | None:
    """$PORT when set; else 8080 in Telegram webhook mode (the webhook needs a server); else none."""
    if settings.port is not None:
        return settings.port
    if "telegram" in switches.enabled:
        from adapters.telegram import TelegramSettings

        telegram = load(TelegramSettings, "TELEGRAM_")
        if telegram.webhook_url:
            return telegram.port
    return None


def serve_health(front: FrontServer, relay: Relay, settings: RelaySettings, running: Callable[[], bool]) -> Health:
    health = Health(
        relay.redis,
        relay.keys,
        relay.adapters,
        relay.metrics.registry,
        poll_max_seconds=settings.poll_max_seconds,
        max_queue_age=settings.ready_max_queue_age_seconds,
        running=running,
    )
    front.add(health.routes())
    return health


async def run(settings: RelaySettings, switches: PlatformSwitches, *, console: bool = False) -> int:
    redactor = logs.configure(settings.log_level.upper())
    for token in (switches.telegram_bot_token, switches.discord_bot_token):
        redactor.add(token.get_secret_value() if token else None)
    with _stop_signals() as stop:
        async with open_configured(settings) as handle:
            box = load_or_create_key(
                settings.relay_secret_key.get_secret_value() if settings.relay_secret_key else None,
                settings.relay_data_dir,
                embedded=handle.embedded,
            )
            for warning in await _store_warnings(handle.embedded, handle.redis, settings.relay_data_dir):
                log.warning("%s", warning)
            if pool_warning := settings.cluster_pool_warning():
                log.warning("%s", pool_warning)
            keys = settings.keys()
            port = http_port(settings, switches)
            front = FrontServer(port) if port is not None else None
            adapters = build_adapters(switches, handle.redis, keys, redactor, front.shared if front else None)
            closed: list[asyncio.Event] = []
            if console:
                from adapters.console import ConsoleAdapter, stdin_reader

                console_adapter = ConsoleAdapter(await stdin_reader(), sys.stdout, locale=terminal_locale())
                adapters.append(console_adapter)
                closed.append(console_adapter.closed)
            async with build_http(settings) as http:
                relay = Relay(settings, handle.redis, http, box, adapters, redactor=redactor)
                if front is not None:
                    # Up before the adapters start: the webhook route joins it, and a PaaS probing
                    # /readyz during a slow start hears "starting" rather than nothing.
                    serve_health(front, relay, settings, lambda: stop.running)
                    await front.start()
                try:
                    async with relay:
                        log.info("relay running redis=%s", handle.where)
                        warming = asyncio.create_task(relay.warm_charts(), name="chart workers")
                        await _until_any([stop, *closed])
                        warming.cancel()
                        log.info("relay stopping")
                finally:
                    if front is not None:
                        await front.stop()
    return 0


@contextlib.asynccontextmanager
async def _demo_health(relay: Relay, settings: RelaySettings, stop: _Stop) -> AsyncIterator[None]:
    """With PORT set (and only then: two demos on one machine must not collide), the demo serves
    /healthz, /readyz and /metrics like `run`."""
    port = os.environ.get("PORT", "").strip()
    if not port:
        yield
        return
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"PORT: {port[:20]!r} is not a port number")
    front = FrontServer(int(port))
    serve_health(front, relay, settings, lambda: True)
    await front.start()
    try:
        yield
    finally:
        await front.stop()


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
                try:
                    settings = RelaySettings(
                        aitrader_base_url=sim.url,
                        relay_data_dir=data_dir,
                        poll_min_seconds=3,
                        poll_max_seconds=30,
                        feed_poll_seconds=10,
                        _env_file=None,
                    )
                except ValidationError as exc:  # the environment still applies, e.g. POLL_CONCURRENCY=abc
                    raise ConfigError(describe_error(exc).removeprefix("configuration error: ")) from None
                box = load_or_create_key(None, data_dir, embedded=True)
                console = ConsoleAdapter(await stdin_reader(), sys.stdout, locale=terminal_locale())
                async with (
                    build_http(settings) as http,
                    Relay(settings, handle.redis, http, box, [console], redactor=redactor) as relay,
                    _demo_health(relay, settings, stop),
                ):
                    print(f"AI-Trader simulator on {sim.url}; you are agent {seed.you.name!r} (#{seed.you.id}).")
                    print("Linking the demo agent and subscribing this console. Type /help, or Ctrl-D to quit.\n")
                    await console.run_line(f"/link {seed.you.token}")
                    await console.run_line("/subscribe all")
                    # The trader's cockpit: positions, then a trade that waits for its Confirm.
                    await console.run_line("/positions")
                    await console.run_line("/trade buy BTC 0.01 crypto")
                    # A chart: the console prints its caption and saves the picture to a file.
                    await console.run_line("/chart profit")
                    print(
                        "Also try /trader 2, /price BTC crypto, /leaderboard, /trending, /intel, /intel news crypto,\n"
                        "/chart positions, /chart NVDA, /timezone Europe/Berlin, /subscribe intel daily 08:00.\n"
                    )
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
    async with open_configured(settings) as handle:
        out = await opstats.collect(handle.redis, settings.keys())
    print(json.dumps(out, indent=2))
    return 0


async def rekey(settings: RelaySettings) -> int:
    """Re-seal every stored agent token with the newest RELAY_SECRET_KEY; print the counts."""
    logs.configure("WARNING")
    async with open_configured(settings) as handle:
        box = load_or_create_key(
            settings.relay_secret_key.get_secret_value() if settings.relay_secret_key else None,
            settings.relay_data_dir,
            embedded=handle.embedded,
        )
        counts = await Store(handle.redis, settings.keys(), box).rekey()
    print(
        f"rekeyed {counts.rekeyed} token(s); {counts.current} already under the newest key; "
        f"{counts.unreadable} under no configured key (those agents pause until their users /link again)"
    )
    return 0


async def check() -> int:
    """Everything `run` checks before it starts a platform, without starting one; says what."""
    logs.configure("ERROR")
    checked = read_all(need_platform=True)
    settings = checked.settings
    async with open_configured(settings) as handle:
        if handle.embedded:
            checked.done.append(f"RELAY_DATA_DIR writable and the embedded Redis starts ({settings.relay_data_dir})")
        elif handle.cluster_nodes:
            checked.done.append(f"REDIS_URL answers: a cluster of {handle.cluster_nodes} primaries, state ok")
        else:
            checked.done.append("REDIS_URL answers")
        warnings = await _store_warnings(handle.embedded, handle.redis, settings.relay_data_dir)
        warnings += [w for w in [settings.cluster_pool_warning()] if w]
    print("configuration ok; platforms: " + ", ".join(checked.switches.enabled))
    print("checked: " + "; ".join(checked.done))
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


async def _store_warnings(embedded: bool, redis: Redis, data_dir: Path | None = None) -> list[str]:
    found = [preflight.embedded_store_warning(os.environ)] if embedded else [await preflight.eviction_warning(redis)]
    if embedded and data_dir is not None:
        found += exposure_warnings(data_dir)
    return [w for w in found if w]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number") from None
    if not 0 < value < 1e9:  # also rules out nan and inf
        raise argparse.ArgumentTypeError(f"{text[:20]!r} must be a number of seconds above 0")
    return value


DEMO_DESCRIPTION = """The whole relay offline, on this machine only: a built-in AI-Trader simulator on 127.0.0.1, an
embedded Redis in a temporary directory (removed on exit) and a chat in this terminal. The demo
links its simulated agent and subscribes the terminal, then the simulator produces a new
notification every few seconds. Type commands such as /help, /feed btc, /replies 1001,
/reply 1001 nice call; Ctrl-D (end of input) or Ctrl-C quits. No account, token or network needed.
With PORT set, it serves /healthz, /readyz and /metrics there as `run` does."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aitrader-relay", description="AI-Trader notifications in Telegram and Discord.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the relay (Telegram and/or Discord as configured)")
    run_p.add_argument("--console", action="store_true", help="also chat with it in this terminal")
    demo_p = sub.add_parser(
        "demo",
        help="offline demo: built-in AI-Trader simulator and a terminal chat",
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo_p.add_argument(
        "--seconds", type=_positive, default=None, metavar="S", help="quit after S seconds (default: run until Ctrl-D)"
    )
    demo_p.add_argument(
        "--every", type=_positive, default=4.0, metavar="S", help="seconds between simulated events (default: 4)"
    )
    sub.add_parser("check", help="validate the configuration, Redis and the data directory, and exit")
    sub.add_parser("stats", help="print queue sizes and counters as JSON")
    sub.add_parser("keygen", help="print a new RELAY_SECRET_KEY")
    sub.add_parser(
        "rekey",
        help="re-encrypt every stored agent token with the newest key (RELAY_SECRET_KEY=new,old...) and print counts",
    )
    cli_operator.add_parsers(sub)
    return p


def _standard_streams() -> None:
    """Give a closed stdin, stdout or stderr /dev/null. Otherwise the next file or socket opened
    takes its number, and the console would read Redis' replies as typed lines."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)  # the lowest free number: fd


def main(argv: Sequence[str] | None = None) -> int:
    _standard_streams()
    # Until the event loop takes over SIGTERM and SIGINT (graceful), a stop during start-up is
    # noted and then ends the process: nothing has been read from AI-Trader yet.
    _defer_signals()
    args = _parser().parse_args(argv)
    try:
        return _command(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        print(new_key_text())
        return 0
    if args.command == "demo":
        return _stoppable(demo(args.seconds, args.every))
    if args.command != "run":
        _quit_on_signal()
    if args.command == "check":
        return asyncio.run(check())
    if args.command == "stats":
        return asyncio.run(stats(load(RelaySettings)))
    if args.command == "rekey":
        return asyncio.run(rekey(load(RelaySettings)))
    if args.command == "dead-letters":
        return asyncio.run(cli_operator.dead_letters(load(RelaySettings), args))
    if args.command == "export":
        return asyncio.run(cli_operator.export_command(load(RelaySettings), args))
    if args.command == "import":
        return asyncio.run(cli_operator.import_command(load(RelaySettings), args))
    checked = read_all(need_platform=not args.console)
    return _stoppable(run(checked.settings, checked.switches, console=args.console))


def _quit_on_signal() -> None:
    """The one-shot operator commands have no graceful stop: a signal ends them where they are."""
    _exit_if_signalled()
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, _exit_quietly)


def _stoppable(coro: Coroutine[None, None, int]) -> int:
    """Run until done; a SIGTERM or SIGINT during start-up cancels it, which is a normal exit."""
    try:
        return eventloop.run(coro)
    except asyncio.CancelledError:
        return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
