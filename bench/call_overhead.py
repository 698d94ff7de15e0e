"""Client CPU per call of the two cheap wins of issue 11, measured in one process, interleaved.

- httpx with and without `sniffio` importable: httpcore imports it on every request, and a
  missing module is searched for on the whole path each time (hidden here by a finder that
  searches every path entry except site-packages and then fails, as an absent package would).
- A tenacity retrier built on every call against `relay.retrying.retried`, which builds one
  only after a failure.
- A send's deadline through `asyncio.wait_for` against an `asyncio.timeout` context.
- httpx's own transport (httpcore on anyio) against `relay.http_client.AsyncioTransport`
  (httpcore on asyncio streams), both with the pool the relay uses (4 connections), and the
  relay's client (that transport, no cookie jar).

    python -m bench.call_overhead [--calls 500] [--rounds 3]

Prints one JSON object: CPU milliseconds (httpx) or microseconds (retriers) per call, per round.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.machinery
import json
import sys
import time
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from bench.pipeline import start_simulator
from relay.aitrader import http_limits
from relay.http_client import AsyncioTransport, CookielessClient
from relay.retrying import retried


class HideSniffio:
    """While `on`, `import sniffio` fails after the search an uninstalled package costs."""

    def __init__(self) -> None:
        self.on = False
        self.site = [p for p in sys.path if "site-packages" in p]

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "sniffio" and self.on:
            importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if p not in self.site])
            raise ImportError(name)
        return None


async def ok() -> int:
    return 1


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    hide = HideSniffio()
    sys.meta_path.insert(0, hide)
    sim, url = await start_simulator()
    out: dict[str, list[float]] = {}
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(50):
                await client.get("/")
            for _ in range(args.rounds):
                for label, hidden in (("httpx_ms_without_sniffio", True), ("httpx_ms_with_sniffio", False)):
                    hide.on = hidden
                    sys.modules.pop("sniffio", None)
                    start = time.process_time()
                    for _ in range(args.calls):
                        await client.get("/")
                    out.setdefault(label, []).append((time.process_time() - start) * 1000 / args.calls)
        hide.on = False
        limits = http_limits(4)
        async with (
            httpx.AsyncClient(base_url=url, limits=limits) as theirs,
            httpx.AsyncClient(base_url=url, transport=AsyncioTransport(limits)) as ours,
            CookielessClient(base_url=url, transport=AsyncioTransport(limits)) as relays,
        ):
            for client in (theirs, ours, relays):
                for _ in range(50):
                    await client.get("/")
            for _ in range(args.rounds):
                for label, client in (
                    ("httpx_transport_ms", theirs),
                    ("asyncio_transport_ms", ours),
                    ("asyncio_transport_no_cookies_ms", relays),
                ):
                    start = time.process_time()
                    for _ in range(args.calls):
                        (await client.get("/")).json()
                    out.setdefault(label, []).append((time.process_time() - start) * 1000 / args.calls)
        n = args.calls * 10
        for _ in range(args.rounds):
            start = time.process_time()
            for _ in range(n):
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(OSError),
                    stop=stop_after_attempt(3),
                    wait=wait_random_exponential(0.2, 2),
                    reraise=True,
                ):
                    with attempt:
                        await ok()
            out.setdefault("retrier_built_every_call_us", []).append((time.process_time() - start) * 1e6 / n)
            start = time.process_time()
            for _ in range(n):
                await retried(ok, retry_on=OSError, stop=stop_after_attempt(3), wait=wait_random_exponential(0.2, 2))
            out.setdefault("retried_us", []).append((time.process_time() - start) * 1e6 / n)
            # A send's deadline (relay.delivery): wait_for wraps the call in a task of its own on
            # Python 3.11; the timeout context the deliverer uses only schedules a timer.
            start = time.process_time()
            for _ in range(n):
                await asyncio.wait_for(ok(), 120)
            out.setdefault("send_deadline_wait_for_us", []).append((time.process_time() - start) * 1e6 / n)
            start = time.process_time()
            for _ in range(n):
                async with asyncio.timeout(120):
                    await ok()
            out.setdefault("send_deadline_timeout_us", []).append((time.process_time() - start) * 1e6 / n)
    finally:
        sim.terminate()
        await sim.wait()
    print(json.dumps({k: [round(v, 3) for v in values] for k, values in out.items()}))


if __name__ == "__main__":
    asyncio.run(main())
