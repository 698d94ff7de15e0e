"""Poll soak: can one relay process hold many agents at their poll interval (issue 11)?

Links `--agents` agents (10,000 by default) in the AI-Trader simulator (its own process, answering
every heartbeat with `poll_interval_seconds` = `--interval`), runs the whole relay in this process
with an embedded Valkey (its own process) for `--minutes`, and measures each poll's lateness where
AI-Trader would see it: the gap between two heartbeats of one agent, less the interval, from
httpx's request hook. The goal: every gap within the interval + 2 s. A trickle of notifications
(`--rate` a second, to random agents, each routed to its own chat on a counting sink) keeps
fan-out and delivery in the picture. Prints a line every `--every` seconds and a summary at the
end (`--json`: one JSON object) with lateness p50/p99/max, the polls later than 2 s, the relay's
CPU share and CPU seconds per process (relay = this process, simulator, Valkey).

Due times start spread over one interval, as a running deployment has them (a restart keeps
them: they live in Redis); `--cold` starts every agent due at once instead, as after linking them
all in one moment, and the first interval then shows the catch-up.

    python -m bench.poll_soak [--agents 10000] [--interval 30] [--minutes 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from adapters.main import build_http
from bench.soak import BitmapSink, cpu_seconds
from relay import eventloop
from relay.app import Relay
from relay.config import RelaySettings
from relay.embedded_redis import open_redis
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef
from relay.store import Store, Subscription
from relay.tokens import load_or_create_key

HEARTBEAT = "/api/claw/agents/heartbeat"
LATE_S = 2.0  # the goal: every poll within its interval + 2 s


@dataclass
class Gaps:
    """Heartbeat gaps per agent, from the relay's own HTTP client (what AI-Trader would see)."""

    interval: float
    agent_of: dict[str, int] = field(default_factory=dict)  # Authorization header -> agent id
    last: dict[int, float] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    heartbeats: int = 0

    async def __call__(self, request: httpx.Request) -> None:
        if request.url.path != HEARTBEAT:
            return
        agent = self.agent_of.get(request.headers.get("authorization", ""))
        if agent is None:
            return
        now = time.monotonic()
        self.heartbeats += 1
        before = self.last.get(agent)
        self.last[agent] = now
        # A drain's second call follows its first at once: only poll-to-poll gaps count.
        if before is not None and now - before > self.interval / 2:
            self.lateness.append(now - before - self.interval)

    def overdue(self, now: float) -> int:
        """Agents whose next poll is already more than LATE_S late (a starved agent makes no gap)."""
        return sum(1 for t in self.last.values() if now - t - self.interval > LATE_S)


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def start_simulator(interval: float) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aitrader_sim",
        "--port",
        "0",
        "--poll-interval",
        str(round(interval)),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode().strip()
    return proc, line.split("=", 1)[1]


async def make_agents(control: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with gate:
            made.append((await control.post("/_sim/agents", json={"name": f"soak{i}"})).json())

    await asyncio.gather(*(one(i) for i in range(count)))
    return made


async def trickle(control: httpx.AsyncClient, made: list[dict[str, Any]], rate: float, rng: random.Random) -> int:
    """Pushes `rate` notifications a second to random agents until cancelled; returns how many."""
    pushed = 0
    try:
        while rate > 0:
            agent = rng.choice(made)
            await control.post(
                "/_sim/messages",
                json={"agent_id": agent["agent_id"], "type": "price_alert", "content": "x", "count": 1},
            )
            pushed += 1
            await asyncio.sleep(1 / rate)
    except asyncio.CancelledError:
        pass
    return pushed


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    sim, url = await start_simulator(args.interval)
    data = Path(tempfile.mkdtemp(prefix="bench-poll-soak-"))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as control, open_redis(None, data) as handle:
            r = handle.redis
            valkey_pid = int((await r.info("server"))["process_id"])
            settings = RelaySettings(
                _env_file=None,
                aitrader_base_url=url,
                relay_data_dir=data,
                poll_min_seconds=args.interval,
                poll_max_seconds=max(300.0, args.interval),
                # Polling alone: the doorbell's sockets and extra polls are bench.steady's subject.
                doorbell=False,
            )
            keys = Keys(settings.relay_key_prefix)
            box = load_or_create_key(None, data, embedded=True)
            store = Store(r, keys, box)
            t0 = time.monotonic()
            made = await make_agents(control, args.agents)
            for a in made:
                await store.link(f"sink:{a['agent_id']}", a["agent_id"], a["name"], a["token"], "consume")
                await store.add_subscription(
                    Subscription(0, "agent", ChatRef("sink", str(a["agent_id"])), agent_id=a["agent_id"])
                )
            if not args.cold:
                now_ms = int(time.time() * 1000)
                span = int(args.interval * 1000)
                await r.zadd(keys.poll_due(), {str(a["agent_id"]): now_ms + rng.randrange(span) for a in made})
            print(f"poll soak: {args.agents:,} agents linked in {time.monotonic() - t0:.0f} s", file=sys.stderr)
            gaps = Gaps(args.interval, {f"Bearer {a['token']}": a["agent_id"] for a in made})
            sink = BitmapSink()
            pids = {"relay": os.getpid(), "simulator": sim.pid or 0, "redis": valkey_pid}
            async with build_http(settings, request_hooks=[gaps]) as http:
                relay = Relay(settings, r, http, box, [sink], redactor=Redactor(), rng=random.Random(1))
                cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
                started = time.monotonic()
                async with relay:
                    pusher = asyncio.create_task(trickle(control, made, args.rate, rng))
                    end = started + args.minutes * 60
                    samples = []
                    seen = 0
                    while (now := time.monotonic()) < end:
                        await asyncio.sleep(min(args.every, end - now))
                        window, seen = gaps.lateness[seen:], len(gaps.lateness)
                        wall = time.monotonic() - started
                        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
                        sample = {
                            "wall_s": round(wall),
                            "heartbeats": gaps.heartbeats,
                            "p50_s": round(pct(window, 0.5), 3),
                            "p99_s": round(pct(window, 0.99), 3),
                            "max_s": round(max(window, default=float("nan")), 3),
                            "late": sum(1 for x in window if x > LATE_S),
                            "overdue_now": gaps.overdue(time.monotonic()),
                            "relay_cpu_share": round(cpu["relay"] / wall, 3),
                        }
                        samples.append(sample)
                        print(json.dumps(sample), file=sys.stderr, flush=True)
                    pusher.cancel()
                    pushed = await pusher
                    wall = time.monotonic() - started
                    cpu = {name: round(cpu_seconds(pid) - cpu0[name], 2) for name, pid in pids.items()}
                    overdue = gaps.overdue(time.monotonic())
                    # Let the last notifications through before counting them.
                    drain_end = time.monotonic() + 2 * args.interval + 5
                    while sink.delivered < pushed and time.monotonic() < drain_end:
                        await asyncio.sleep(0.5)
                    claim_lateness = next(iter(relay.metrics.poll_lateness.collect())).samples
            lateness = gaps.lateness
            return {
                "agents": args.agents,
                "interval_s": args.interval,
                "minutes": args.minutes,
                "cold_start": args.cold,
                "loop": eventloop.loop_name(),
                "polls": len(lateness),
                "heartbeats": gaps.heartbeats,
                "polls_per_s": round(gaps.heartbeats / wall, 1),
                "lateness_p50_s": round(pct(lateness, 0.5), 3),
                "lateness_p99_s": round(pct(lateness, 0.99), 3),
                "lateness_max_s": round(max(lateness, default=float("nan")), 3),
                "late_polls": sum(1 for x in lateness if x > LATE_S),
                "overdue_at_end": overdue,
                "claim_lateness_buckets": {
                    s.labels["le"]: s.value for s in claim_lateness if s.name.endswith("_bucket")
                },
                "relay_cpu_share": round(cpu["relay"] / wall, 3),
                "relay_cpu_ms_per_poll": round(cpu["relay"] * 1000 / max(1, gaps.heartbeats), 3),
                "cpu_s": cpu,
                "wall_s": round(wall, 1),
                "notifications_pushed": pushed,
                "delivered": sink.delivered,
                "duplicates": sink.duplicates,
                "samples": samples,
            }
    finally:
        sim.terminate()
        await sim.wait()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--agents", type=int, default=10_000)
    p.add_argument("--interval", type=int, default=30, help="the heartbeat's poll_interval_seconds")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=2.0, help="notifications a second, to random agents")
    p.add_argument("--every", type=float, default=30.0, help="seconds between progress lines (stderr)")
    p.add_argument("--cold", action="store_true", help="every agent due at once at the start")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = p.parse_args(argv)
    if min(args.agents, args.interval, args.minutes, args.every) <= 0 or args.rate < 0:
        p.error("--agents, --interval, --minutes and --every must be positive, --rate not negative")
    result = eventloop.run(soak(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            if key != "samples":
                print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
