"""Steady-state benchmark: messages created while the relay runs, at a set rate, with and without
the WebSocket doorbell; latency from creation upstream to the sink, CPU seconds per process.

    python -m bench.steady [--agents 100] [--rate 5] [--seconds 90] [--interval 30]
                           [--modes doorbell,polling] [--json]

Four processes, as in production: the AI-Trader simulator (`python -m aitrader_sim`, the server
recommends `--interval`), Valkey (embedded, its own CPU from INFO), the relay (this process, its
CPU from `time.process_time`) and a load generator that creates the messages through the
simulator's control API at `--rate` per second, spread over the agents at random, and writes each
id with the CLOCK_MONOTONIC time just before its request (shared by every process on Linux). The
relay polls every `--interval` seconds (POLL_MIN_SECONDS = POLL_MAX_SECONDS) and, in `doorbell`
mode, holds one socket per agent. Each mode starts from scratch (new simulator, Valkey, relay).

The issue's goal: p95 <= 2 s with the doorbell, <= interval + 2 s without.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from adapters.main import build_http
from bench.pipeline import CountingSink, HttpCounter, counted, pct, polls_done, proc_cpu_s, redis_counters
from relay import eventloop
from relay.app import Relay
from relay.config import RelaySettings
from relay.embedded_redis import open_redis
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef
from relay.store import Store, Subscription
from relay.tokens import load_or_create_key

WARMUP_DEADLINE = 120.0


async def start_simulator(interval: int) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aitrader_sim",
        "--port",
        "0",
        "--poll-interval",
        str(interval),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode().strip()
    return proc, line.split("=", 1)[1]


async def create(url: str, agent_ids: list[int], rate: float, seconds: float, seed: int) -> None:
    """The load generator (its own process): one message at a time at `rate`/s, on a fixed
    schedule (not "sleep after each"), so a slow answer does not lower the rate."""
    rng = random.Random(seed)
    out = sys.stdout
    async with httpx.AsyncClient(base_url=url, timeout=30) as control:
        start = time.monotonic()
        n = 0
        while (due := start + n / rate) < start + seconds:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            agent = rng.choice(agent_ids)
            before = time.monotonic()
            body = {"agent_id": agent, "type": "price_alert", "content": f"steady {n}"}
            ids = (await control.post("/_sim/messages", json=body)).json()["ids"]
            out.write(f"{ids[0]} {before:.6f}\n")
            n += 1
    out.write(f"# cpu {time.process_time():.3f}\n")  # read by the bench: this process is gone by then
    out.flush()


async def run_mode(
    *, doorbell: bool, agents: int, rate: float, seconds: float, interval: int, seed: int
) -> dict[str, Any]:
    sim, url = await start_simulator(interval)
    data = Path(tempfile.mkdtemp(prefix="bench-steady-"))
    creator: asyncio.subprocess.Process | None = None
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as control, open_redis(None, data) as handle:
            made = [(await control.post("/_sim/agents", json={"name": f"steady{i}"})).json() for i in range(agents)]
            settings = RelaySettings(
                _env_file=None,
                aitrader_base_url=url,
                relay_data_dir=data,
                poll_min_seconds=interval,
                poll_max_seconds=interval,
                doorbell=doorbell,
                doorbell_max_sockets=max(agents, 1),
            )
            keys = Keys(settings.relay_key_prefix)
            box = load_or_create_key(None, data, embedded=True)
            store = Store(handle.redis, keys, box)
            for agent in made:
                await store.link(
                    f"sink:{agent['agent_id']}", agent["agent_id"], agent["name"], agent["token"], "consume"
                )
                await store.add_subscription(
                    Subscription(0, "agent", ChatRef("sink", str(agent["agent_id"])), agent_id=agent["agent_id"])
                )
            sink = CountingSink(expected=10**12)  # never "done": the bench decides when to stop
            http_calls = HttpCounter()
            async with build_http(settings, request_hooks=[http_calls]) as http:
                relay = Relay(settings, handle.redis, http, box, [sink], redactor=Redactor(), rng=random.Random(seed))
                async with relay:
                    # Warm-up: every agent polled once (and, with the doorbell, every socket open).
                    loop = asyncio.get_running_loop()
                    ready_by = loop.time() + WARMUP_DEADLINE  # a deadline, not a wait
                    while loop.time() < ready_by and (
                        polls_done(relay) < agents or (relay.doorbell is not None and relay.doorbell.sockets < agents)
                    ):
                        await asyncio.sleep(0.2)
                    sockets = relay.doorbell.sockets if relay.doorbell is not None else 0
                    redis0 = await redis_counters(handle.redis)
                    cpu0, sim0 = time.process_time(), proc_cpu_s(sim.pid)
                    calls0, polls0, window0 = http_calls.calls, polls_done(relay), time.monotonic()
                    metrics = relay.metrics
                    rung0 = metrics.doorbell_polls.labels("polled")._value.get()
                    busy0 = metrics.doorbell_polls.labels("busy")._value.get()
                    pushes0 = counted(metrics.doorbell_pushes)
                    ids = ",".join(str(a["agent_id"]) for a in made)
                    creator = await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "bench.steady",
                        "--create",
                        url,
                        "--ids",
                        ids,
                        "--rate",
                        str(rate),
                        "--seconds",
                        str(seconds),
                        "--seed",
                        str(seed),
                        stdout=asyncio.subprocess.PIPE,
                    )
                    out, _ = await creator.communicate()
                    lines = out.decode().splitlines()
                    creator_cpu = float(lines[-1].split()[-1]) if lines and lines[-1].startswith("# cpu") else math.nan
                    created = {
                        int(i): float(t) for i, t in (line.split() for line in lines if not line.startswith("#"))
                    }
                    # The same window in both modes (creation, then one interval and 5 s more, by
                    # when polling alone has fetched everything), so their CPU seconds compare.
                    await asyncio.sleep(interval + 5)
                    cpu1, sim1, redis1 = time.process_time(), proc_cpu_s(sim.pid), await redis_counters(handle.redis)
                    calls1, polls1, window = http_calls.calls, polls_done(relay), time.monotonic() - window0
                    rung = metrics.doorbell_polls.labels("polled")._value.get() - rung0
                    busy = metrics.doorbell_polls.labels("busy")._value.get() - busy0
                    pushes = counted(metrics.doorbell_pushes) - pushes0
            arrived = {k.split(":")[1]: t for k, t in sink.arrived.items()}
            latencies = [arrived[f"m{i}"] - t for i, t in created.items() if f"m{i}" in arrived]
            return {
                "mode": "doorbell" if doorbell else "polling",
                "sockets": sockets,
                "created": len(created),
                "delivered": len(latencies),
                "lost": len(created) - len(latencies),
                "duplicates": sink.duplicates,
                "p50_s": round(pct(latencies, 0.5), 3),
                "p95_s": round(pct(latencies, 0.95), 3),
                "p99_s": round(pct(latencies, 0.99), 3),
                "max_s": round(max(latencies, default=float("nan")), 3),
                "window_s": round(window, 1),
                "polls": polls1 - polls0,
                "doorbell_polls": rung,
                "doorbell_busy": busy,
                "pushes_heard": pushes,
                "http_calls": calls1 - calls0,
                "redis_round_trips": redis1[1] - redis0[1] - 2,
                "cpu_s": {
                    "relay": round(cpu1 - cpu0, 3),
                    "simulator": round(sim1 - sim0, 3),
                    "redis": round(redis1[0] - redis0[0], 3),
                    "load_generator": None if math.isnan(creator_cpu) else round(creator_cpu, 3),
                },
                "relay_cpu_share": round((cpu1 - cpu0) / window, 4),
                "relay_cpu_ms_per_notification": round((cpu1 - cpu0) * 1000 / max(1, len(latencies)), 2),
            }
    finally:
        sim.terminate()
        await sim.wait()
        if creator is not None and creator.returncode is None:
            creator.terminate()
            await creator.wait()


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    out = [
        f"steady state: {args.agents} agents, {args.rate}/s for {args.seconds:.0f} s, poll interval {args.interval} s",
        "",
        f"{'mode':9} {'created':>7} {'lost':>4} {'dup':>3} {'p50 s':>6} {'p95 s':>6} {'p99 s':>6} {'max s':>6} "
        f"{'polls':>6} {'rung':>5} {'busy':>4} {'window s':>8} {'CPU s relay/sim/redis/gen':>26}",
    ]
    for r in runs:
        cpu = r["cpu_s"]
        cpus = f"{cpu['relay']:.2f}/{cpu['simulator']:.2f}/{cpu['redis']:.2f}/{cpu['load_generator'] or 0:.2f}"
        out.append(
            f"{r['mode']:9} {r['created']:>7} {r['lost']:>4} {r['duplicates']:>3} {r['p50_s']:>6.2f} "
            f"{r['p95_s']:>6.2f} {r['p99_s']:>6.2f} {r['max_s']:>6.2f} {r['polls']:>6.0f} "
            f"{r['doorbell_polls']:>5.0f} {r['doorbell_busy']:>4.0f} {r['window_s']:>8.1f} {cpus:>26}"
        )
    out.append("")
    out.append(f"goal: p95 <= 2 s with the doorbell, <= {args.interval + 2} s without")
    return "\n".join(out)


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--rate", type=float, default=5.0, help="messages created per second, over all agents")
    p.add_argument("--seconds", type=float, default=90.0, help="how long messages are created")
    p.add_argument("--interval", type=int, default=30, help="poll interval (POLL_MIN = POLL_MAX) in seconds")
    p.add_argument("--modes", default="doorbell,polling", help="comma-separated: doorbell, polling")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--create", metavar="URL", help=argparse.SUPPRESS)  # the load generator's own process
    p.add_argument("--ids", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.create:
        await create(args.create, [int(i) for i in args.ids.split(",")], args.rate, args.seconds, args.seed)
        return
    runs = []
    for mode in args.modes.split(","):
        if mode not in ("doorbell", "polling"):
            p.error(f"unknown mode {mode!r}")
        runs.append(
            await run_mode(
                doorbell=mode == "doorbell",
                agents=args.agents,
                rate=args.rate,
                seconds=args.seconds,
                interval=args.interval,
                seed=args.seed,
            )
        )
    if args.json:
        body = {
            "agents": args.agents,
            "rate": args.rate,
            "seconds": args.seconds,
            "interval": args.interval,
            "loop": eventloop.loop_name(),
            "machine": {"cpus": os.cpu_count()},
            "runs": runs,
        }
        print(json.dumps(body, indent=2))
    else:
        print(table(runs, args))


if __name__ == "__main__":
    eventloop.run(main())
