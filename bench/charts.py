"""Chart benchmark: does a burst of /chart delay polling? Heartbeat lateness with and without
bursts of 50 concurrent chart requests, with CPU seconds per process.

The AI-Trader simulator runs in its own process with its demo market (profit history for the
demo agents), the relay in this one with an embedded Valkey, polling `--agents` agents every
second. Lateness of a heartbeat = when its HTTP request left minus when the scheduler meant to
run that agent's poll. Phases, each `--seconds` long:

- idle: polling only;
- pool: every 5 s a burst of 50 concurrent `/chart profit` requests, all different (no cache
  hits), drawn in the worker process(es) as the relay does;
- inline (reference): the same bursts drawn on the event loop, what the worker pool avoids;
- cached: bursts of 50 identical requests (one drawing, 49 cache hits).

    python -m bench.charts [--agents 20] [--seconds 15] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent

from bench.pipeline import CountingSink, pct
from relay.app import Relay
from relay.charts.draw import draw
from relay.charts.renderer import ChartRenderer, ShortCache
from relay.charts.specs import ChartSpec
from relay.config import RelaySettings
from relay.embedded_redis import open_redis
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef, Command, UserRef
from relay.store import Store
from relay.tokens import load_or_create_key

BURST = 50
BURST_EVERY = 5.0
SETTLE = 3.0
_TICK = os.sysconf("SC_CLK_TCK")


class InlineRenderer(ChartRenderer):
    """The reference: draws on the event loop, as a naive handler would."""

    async def render(self, spec: ChartSpec) -> bytes:
        self.rendered += 1
        return draw(spec)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc), children not included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class Phase:
    name: str
    lateness: list[float] = field(default_factory=list)
    chart_seconds: list[float] = field(default_factory=list)
    errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    rendered: int = 0


async def start_simulator() -> tuple[asyncio.subprocess.Process, str, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aitrader_sim",
        "--port",
        "0",
        "--poll-interval",
        "1",
        "--demo",
        "--every",
        "3600",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    url, agent_id = "", 0
    while not (url and agent_id):
        line = (await proc.stdout.readline()).decode().strip()
        if not line:
            raise RuntimeError("simulator exited before announcing its URL and demo agent")
        key, _, value = line.partition("=")
        if key == "AITRADER_SIM_URL":
            url = value
        elif key == "AITRADER_DEMO_AGENT_ID":
            agent_id = int(value)
    return proc, url, agent_id


class Probe:
    """Matches each heartbeat request to the scheduled run time of its agent's poll."""

    def __init__(self, tokens: dict[str, int]) -> None:
        self.tokens = tokens
        self.scheduled: dict[int, float] = {}
        self.phase: Phase | None = None

    def on_submitted(self, event: Any) -> None:
        assert isinstance(event, JobSubmissionEvent)
        if event.job_id.startswith("agent:") and event.scheduled_run_times:
            self.scheduled[int(event.job_id.split(":")[1])] = event.scheduled_run_times[-1].timestamp()

    async def on_request(self, request: httpx.Request) -> None:
        if not request.url.path.endswith("/agents/heartbeat") or self.phase is None:
            return
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        agent_id = self.tokens.get(token)
        due = self.scheduled.pop(agent_id, None) if agent_id is not None else None
        if due is not None:
            self.phase.lateness.append(time.time() - due)


async def burst(relay: Relay, phase: Phase, agent_id: int, days: Sequence[int]) -> None:
    chat = ChatRef("sink", "charts")
    user = UserRef("sink", "bench")

    async def one(d: int) -> None:
        started = time.monotonic()
        reply = await relay.router.dispatch(
            Command("chart", {"what": "profit", "option": str(agent_id), "days": str(d)}, chat, user, True)
        )
        phase.chart_seconds.append(time.monotonic() - started)
        if not reply.messages or reply.messages[0].image is None:
            phase.errors += 1

    await asyncio.gather(*(one(d) for d in days))


async def run_phase(
    relay: Relay,
    probe: Probe,
    name: str,
    seconds: float,
    pids: dict[str, int],
    *,
    agent_id: int = 0,
    days: Callable[[int], Sequence[int]] | None = None,
) -> Phase:
    await asyncio.sleep(SETTLE)  # the previous phase's backlog is not this phase's lateness
    probe.scheduled.clear()
    phase = Phase(name)
    renderer = relay.charts.renderer
    before = {proc: cpu_seconds(pid) for proc, pid in pids.items()}
    worker_pids = _worker_pids(renderer)
    workers_before = sum(cpu_seconds(p) for p in worker_pids)
    rendered_before = renderer.rendered
    probe.phase = phase
    end = time.monotonic() + seconds
    bursts: list[asyncio.Task[None]] = []
    n = 0
    while time.monotonic() < end:
        if days is not None:
            bursts.append(asyncio.create_task(burst(relay, phase, agent_id, days(n))))
            n += 1
        await asyncio.sleep(min(BURST_EVERY, max(0.0, end - time.monotonic())))
    await asyncio.gather(*bursts)
    probe.phase = None
    phase.cpu = {proc: cpu_seconds(pid) - before[proc] for proc, pid in pids.items()}
    phase.cpu["chart workers"] = sum(cpu_seconds(p) for p in _worker_pids(renderer)) - workers_before
    phase.rendered = renderer.rendered - rendered_before
    return phase


def _worker_pids(renderer: ChartRenderer) -> list[int]:
    pool = renderer._pool  # the bench reads the pool's pids to attribute CPU; the relay never does
    return list(pool._processes) if pool is not None else []


async def run(agents: int, seconds: float, workers: int, size: int = BURST) -> list[Phase]:
    sim, url, demo_agent = await start_simulator()
    data = Path(tempfile.mkdtemp(prefix="bench-charts-"))
    phases: list[Phase] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as control, open_redis(None, data) as handle:
            made = [(await control.post("/_sim/agents", json={"name": f"cb{i}"})).json() for i in range(agents)]
            settings = RelaySettings(
                _env_file=None,
                aitrader_base_url=url,
                relay_data_dir=data,
                poll_min_seconds=1,
                poll_max_seconds=2,
                chart_workers=workers,
            )
            keys = Keys(settings.relay_key_prefix)
            box = load_or_create_key(None, data, embedded=True)
            store = Store(handle.redis, keys, box)
            for agent in made:
                await store.link(
                    f"sink:{agent['agent_id']}", agent["agent_id"], agent["name"], agent["token"], "consume"
                )
            probe = Probe({a["token"]: a["agent_id"] for a in made})
            valkey_pid = int((await handle.redis.info("server"))["process_id"])
            pids = {"relay": os.getpid(), "simulator": sim.pid, "valkey": valkey_pid}
            async with httpx.AsyncClient(base_url=url, timeout=10, event_hooks={"request": [probe.on_request]}) as http:
                relay = Relay(
                    settings, handle.redis, http, box, [CountingSink()], redactor=Redactor(), rng=random.Random(1)
                )
                async with relay:
                    assert relay._scheduler is not None
                    relay._scheduler.add_listener(probe.on_submitted, EVENT_JOB_SUBMITTED)
                    await relay.renderer.warm()
                    await asyncio.sleep(3)  # every agent scheduled and polled once
                    phases.append(await run_phase(relay, probe, "idle (polling only)", seconds, pids))
                    phases.append(
                        await run_phase(
                            relay,
                            probe,
                            f"pool: bursts of {size} different charts",
                            seconds,
                            pids,
                            agent_id=demo_agent,
                            days=lambda n: range(2 + n * size, 2 + (n + 1) * size),
                        )
                    )
                    pool_renderer = relay.charts.renderer
                    relay.charts.renderer = InlineRenderer()
                    relay.charts.cache = ShortCache(ttl=settings.chart_cache_seconds)
                    phases.append(
                        await run_phase(
                            relay,
                            probe,
                            "reference: the same bursts drawn on the event loop",
                            seconds,
                            pids,
                            agent_id=demo_agent,
                            days=lambda n: range(2 + n * size, 2 + (n + 1) * size),
                        )
                    )
                    relay.charts.renderer = pool_renderer
                    relay.charts.cache = ShortCache(ttl=settings.chart_cache_seconds)
                    phases.append(
                        await run_phase(
                            relay,
                            probe,
                            f"pool: bursts of {size} identical charts",
                            seconds,
                            pids,
                            agent_id=demo_agent,
                            days=lambda n: [300 + n] * size,
                        )
                    )
    finally:
        sim.terminate()
        await sim.wait()
    return phases


def table(phases: list[Phase], agents: int, workers: int) -> str:
    lines = [
        f"{agents} agents polled every 1 s; {workers} chart worker process(es); bursts every {BURST_EVERY:.0f} s",
        "",
        "| phase | heartbeats | lateness p50 ms | p99 ms | max ms | charts | drawn | chart p50 s | p99 s | "
        "CPU s relay | chart workers | simulator | valkey |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        late = [x * 1000 for x in p.lateness]
        charts = len(p.chart_seconds)
        chart_cols = (
            f"{charts} | {p.rendered} | {pct(p.chart_seconds, 0.5):.2f} | {pct(p.chart_seconds, 0.99):.2f}"
            if charts
            else "– | – | – | –"
        )
        lines.append(
            f"| {p.name} | {len(late)} | {pct(late, 0.5):.0f} | {pct(late, 0.99):.0f} | {max(late, default=0):.0f} | "
            f"{chart_cols} | {p.cpu['relay']:.1f} | {p.cpu['chart workers']:.1f} | {p.cpu['simulator']:.1f} | "
            f"{p.cpu['valkey']:.1f} |"
        )
        if p.errors:
            lines.append(f"|   ({p.errors} chart requests answered without a picture) |")
    return "\n".join(lines)


async def main(argv: Sequence[str] | None = None) -> None:
    # The reference phase blocks the loop on purpose; APScheduler then logs every skipped tick.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--burst", type=int, default=BURST, help="chart requests per burst")
    args = parser.parse_args(argv)
    phases = await run(args.agents, args.seconds, args.workers, args.burst)
    print(table(phases, args.agents, args.workers))


if __name__ == "__main__":
    asyncio.run(main())
