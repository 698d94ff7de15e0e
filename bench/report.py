"""The benchmark report: every benchmark and its reference in one run, summarised in one table.

Runs the pipeline at 100, 1,000 and 10,000 agents in one process and at 100 agents in three
processes, a kill run (SIGKILLs at random moments, lost and duplicated notifications counted),
and the Telegram and Discord delivery benchmarks (each beside the heartbeat skill's sequential
loop). Prints the summary table first, then each benchmark's own table.

    python -m bench.report [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.pipeline import pct, run_reference, run_relay, start_simulator
from relay import logs
from relay.embedded_redis import open_redis
from relay.keys import Keys
from relay.models import ChatRef
from relay.store import Store, Subscription
from relay.tokens import TokenBox, new_key_text

ROOT = Path(__file__).resolve().parents[1]
_MARK = re.compile(rb"rpt-(\d+)\b")


class RelayChild:
    """`aitrader-relay run --console`; its console chat is the sink, read from stdout."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.arrivals: list[tuple[int, float]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.main",
            "run",
            "--console",
            cwd=str(ROOT),
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while line := await self.proc.stdout.readline():
            for m in _MARK.finditer(line):
                self.arrivals.append((int(m.group(1)), time.monotonic()))

    async def stop(self, sig: int = 15) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        await self.proc.wait()
        if self._reader:
            await self._reader


async def linked_world(
    control: httpx.AsyncClient, redis: Redis, keys: Keys, box: TokenBox, agents: int
) -> list[dict[str, Any]]:
    store = Store(redis, keys, box)
    made = [(await control.post("/_sim/agents", json={"name": f"r{i}"})).json() for i in range(agents)]
    for a in made:
        await store.link(f"console:u{a['agent_id']}", a["agent_id"], a["name"], a["token"], "consume")
        await store.add_subscription(Subscription(0, "agent", ChatRef("console", "local"), agent_id=a["agent_id"]))
    return made


def child_env(sim_url: str, redis_url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_"))}
    env.update(
        AITRADER_BASE_URL=sim_url,
        REDIS_URL=redis_url,
        RELAY_SECRET_KEY=key,
        POLL_MIN_SECONDS="1",
        POLL_MAX_SECONDS="2",
        LOG_LEVEL="WARNING",
        DELIVERY_CONCURRENCY="256",
    )
    return env


async def run_processes(k: int, agents: int, messages: int) -> dict[str, float]:
    """K relay processes on one Redis deliver a backlog created up front."""
    sim, url = await start_simulator()
    data = Path(tempfile.mkdtemp(prefix="bench-report-"))
    key = new_key_text()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as control, open_redis(None, data) as handle:
            made = await linked_world(control, handle.redis, Keys(), TokenBox.from_text(key), agents)
            created: dict[int, float] = {}
            n = 0
            for a in made:
                for _ in range(messages):
                    await control.post(
                        "/_sim/messages", json={"agent_id": a["agent_id"], "type": "note", "content": f"rpt-{n}"}
                    )
                    created[n] = time.monotonic()
                    n += 1
            env = child_env(url, f"unix://{data / 'valkey.sock'}", key)
            children = [RelayChild(env) for _ in range(k)]
            started = time.monotonic()
            for c in children:
                await c.start()
            deadline = started + 600
            while len({i for c in children for i, _ in c.arrivals}) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            for c in children:
                await c.stop()
            first: dict[int, float] = {}
            for c in children:
                for i, t in c.arrivals:
                    first[i] = min(t, first.get(i, t))
            elapsed = max(first.values()) - started
            total = sum(len(c.arrivals) for c in children)
            return {
                "per_second": len(first) / elapsed,
                "p50": pct([first[i] - created[i] for i in first], 0.5),
                "p99": pct([first[i] - created[i] for i in first], 0.99),
                "lost": n - len(first),
                "duplicates": total - len(first),
                "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
    finally:
        sim.terminate()
        await sim.wait()


async def run_kills(kills: int, agents: int, messages: int) -> dict[str, float]:
    """Messages arrive over time while the only relay process is SIGKILLed at random moments."""
    sim, url = await start_simulator()
    data = Path(tempfile.mkdtemp(prefix="bench-kills-"))
    key = new_key_text()
    rng = random.Random(7)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as control, open_redis(None, data) as handle:
            made = await linked_world(control, handle.redis, Keys(), TokenBox.from_text(key), agents)
            env = child_env(url, f"unix://{data / 'valkey.sock'}", key)
            total = agents * messages
            every = max(1, total // (kills + 1))
            done: list[RelayChild] = []
            child = RelayChild(env)
            await child.start()
            for n in range(total):
                a = made[n % agents]
                await control.post(
                    "/_sim/messages", json={"agent_id": a["agent_id"], "type": "note", "content": f"rpt-{n}"}
                )
                await asyncio.sleep(0.01)
                if n % every == every - 1 and len(done) < kills:
                    await asyncio.sleep(rng.uniform(0.2, 1.5))  # land the kill anywhere in a cycle
                    await child.stop(9)
                    done.append(child)
                    child = RelayChild(env)
                    await child.start()
            deadline = time.monotonic() + 120
            while len({i for c in (*done, child) for i, _ in c.arrivals}) < total and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await child.stop()
            seen = [i for c in (*done, child) for i, _ in c.arrivals]
            return {
                "kills": len(done),
                "lost": total - len(set(seen)),
                "duplicates": len(seen) - len(set(seen)),
                "messages": total,
            }
    finally:
        sim.terminate()
        await sim.wait()


async def platform_bench(module: str, extra: Sequence[str] = ()) -> tuple[str, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *extra, cwd=str(ROOT), stdout=asyncio.subprocess.PIPE
    )
    out = (await proc.communicate())[0].decode()
    figures = {}
    for label, pattern in (
        ("per_second", r"^messages/s\s+([\d.]+)"),
        ("429s", r"^429s received\s+([\d.]+)"),
        ("p50", r"^p50 [^\d]*?\s+([\d.]+)"),
        ("p99", r"^p99 [^\d]*?\s+([\d.]+)"),
    ):
        m = re.search(pattern, out, re.MULTILINE)
        figures[label] = m.group(1) if m else "n/a"
    return out, figures


def row(
    name: str,
    ceiling: str,
    per_second: float | str,
    ratio: str,
    r429: str,
    p50: float | str,
    p99: float | str,
    lost: str,
    rss: float | str,
) -> str:
    def f(v: float | str, fmt: str) -> str:
        return fmt.format(v) if isinstance(v, float | int) else str(v)

    return (
        f"| {name} | {f(per_second, '{:.0f}')} | {ceiling} | {ratio} | {r429} | {f(p50, '{:.2f}')} | "
        f"{f(p99, '{:.2f}')} | {lost} | {f(rss, '{:.0f}')} |"
    )


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run, not the reported figures)")
    args = p.parse_args(argv)
    logs.configure("ERROR")
    q = args.quick
    scales = [(100, 100), (1000, 10), (10_000, 1)] if not q else [(20, 20), (200, 2)]
    pipe = {s: await run_relay(*s) for s in scales}
    ref = await run_reference(*scales[0])
    three = await run_processes(3, *((100, 100) if not q else (20, 20)))
    one = await run_processes(1, *((100, 100) if not q else (20, 20)))
    kills = await run_kills(10 if q else 50, 10, 30 if q else 60)
    tg_out, tg = await platform_bench("bench.telegram_send", ("--notifications", "600") if q else ())
    dc_out, dc = await platform_bench("bench.discord_send", ("--notifications", "600") if q else ())

    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}",
        "",
        "| run | notifications/s | platform ceiling | ratio | 429s | p50 s | p99 s | lost | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (agents, msgs), r in pipe.items():
        lines.append(
            row(
                f"pipeline, {agents:,} agents x {msgs}, 1 process",
                "–",
                r["per_second"],
                "–",
                "–",
                r["p50"],
                r["p99"],
                f"{agents * msgs - r['delivered']:.0f}",
                r["rss_mb"],
            )
        )
    lines.append(
        row(
            f"reference loop, {scales[0][0]} agents x {scales[0][1]} (stores nothing)",
            "–",
            ref["per_second"],
            f"relay/ref {pipe[scales[0]]['per_second'] / ref['per_second']:.2f}",
            "–",
            ref["p50"],
            ref["p99"],
            "–",
            "–",
        )
    )
    lines.append(
        row(
            "pipeline, 1 process, console sink",
            "–",
            one["per_second"],
            "–",
            "–",
            one["p50"],
            one["p99"],
            f"{one['lost']:.0f}",
            one["rss_mb"],
        )
    )
    lines.append(
        row(
            "pipeline, 3 processes, one Redis",
            "–",
            three["per_second"],
            f"x{three['per_second'] / one['per_second']:.2f} of 1",
            "–",
            three["p50"],
            three["p99"],
            f"{three['lost']:.0f}",
            three["rss_mb"],
        )
    )
    lines.append(
        row(
            f"{kills['kills']:.0f} SIGKILLs, {kills['messages']:.0f} messages",
            "–",
            "–",
            "–",
            "–",
            "–",
            "–",
            f"{kills['lost']:.0f} (dup {kills['duplicates']:.0f})",
            "–",
        )
    )
    for name, fig, ceiling in (("telegram, 100 chats (20 groups)", tg, 25.0), ("discord, 100 channels", dc, 25.0)):
        ps = fig["per_second"]
        ratio = f"{float(ps) / ceiling:.0%}" if ps != "n/a" else "n/a"
        lines.append(row(name, f"{ceiling:.0f}/s", ps, ratio, fig["429s"], fig["p50"], fig["p99"], "0", "–"))
    print("\n".join(lines))
    print("\n" + tg_out + "\n" + dc_out)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    asyncio.run(main())
