"""`python -m aitrader_sim`: serve a simulator in its own process until SIGTERM/SIGINT.

Prints `AITRADER_SIM_URL=...` once it listens; with --demo it seeds a community and
keeps it active, and also prints `AITRADER_DEMO_TOKEN=...` and `AITRADER_DEMO_AGENT_ID=...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys

from aitrader_sim.demo import run_activity, seed_demo
from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aitrader_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--demo", action="store_true", help="seed demo agents and keep them active")
    parser.add_argument("--every", type=float, default=4.0, help="seconds between demo events")
    parser.add_argument("--timestamp-style", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--poll-interval", type=int, default=30, help="recommended_poll_interval_seconds in heartbeat replies"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    world = World(seed=args.seed, timestamp_style=args.timestamp_style, poll_interval_seconds=args.poll_interval)
    seed = seed_demo(world) if args.demo else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with SimulatorServer(world, host=args.host, port=args.port) as sim:
        print(f"AITRADER_SIM_URL={sim.url}", flush=True)
        activity: asyncio.Task[None] | None = None
        if seed is not None:
            print(f"AITRADER_DEMO_TOKEN={seed.you.token}", flush=True)
            print(f"AITRADER_DEMO_AGENT_ID={seed.you.id}", flush=True)
            activity = asyncio.create_task(run_activity(world, seed.you.id, args.every, random.Random(args.seed)))
        await stop.wait()
        if activity is not None:
            activity.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await activity
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
