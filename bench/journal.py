"""What the /why journal costs: bench.pipeline's workload with the journal recording, and the same
with its writes turned into no-ops (the reference), alternated `--runs` times.

Reported per run, one JSON line each: Redis round trips and commands per notification, relay CPU
seconds (and per 1,000 notifications), Valkey's and the simulator's CPU seconds, round trips per
steady poll. Every workload is created before the relay starts.

    python -m bench.journal --agents 50 --messages 20 --runs 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from typing import Any

from bench import pipeline
from relay import journal

_real_queue = journal.Journal.queue


def _off(self: journal.Journal, pipe: Any, batch: journal.JournalBatch) -> int:
    batch.clear()
    return 0


async def one(agents: int, messages: int, recording: bool) -> dict[str, Any]:
    journal.Journal.queue = _real_queue if recording else _off  # type: ignore[method-assign]
    try:
        result = await pipeline.run_relay(agents, messages, steady=2.0)
    finally:
        journal.Journal.queue = _real_queue  # type: ignore[method-assign]
    keep = (
        "delivered",
        "lost",
        "duplicates",
        "per_second",
        "redis_round_trips_per_notification",
        "redis_per_notification",
        "cpu_relay_s",
        "cpu_redis_s",
        "cpu_simulator_s",
        "redis_round_trips_per_poll",
    )
    out: dict[str, Any] = {"journal": "on" if recording else "off (reference)"}
    out.update({k: round(float(result[k]), 4) for k in keep})
    out["relay_cpu_s_per_1000"] = round(1000 * float(result["cpu_relay_s"]) / max(1.0, float(result["delivered"])), 4)
    return out


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args(argv)
    for _ in range(args.runs):
        for recording in (True, False):
            print(json.dumps(await one(args.agents, args.messages, recording)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
