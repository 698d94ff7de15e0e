"""The README's Performance table, regenerated from the benchmarks' JSON.

Every `*.json` file in the results directory (default `bench/results/`) is one run of one
benchmark: `bench.pipeline --json`, `bench.telegram_send --json`, `bench.discord_send --json`,
and the multi-process and kill runs below. Files of other benchmarks (soak, steady state) are
shown too, by their top-level figures, so a new benchmark needs no change here to be reported.
Each row puts CPU-normalised figures (per CPU-second, CPU seconds per process) beside the
wall-clock ones: on a shared machine wall-clock rates are noise, CPU seconds much less so.

    python -m bench.report [--run] [--quick] [--results DIR] [--readme README.md]

`--run` first runs the pipeline, platform, multi-process and kill benchmarks (twice each for the
pipeline and the platforms, about 25 minutes) and saves their JSON in the results directory;
`--readme` rewrites the table between the README's performance markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.pipeline import pct, proc_cpu_s, redis_counters, start_simulator
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

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, sig: int = 15) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        await self.proc.wait()
        if self._reader:
            await self._reader


async def _until_all_or_stalled(children: Sequence[RelayChild], n: int, deadline: float, stall: float = 60) -> None:
    """Until the children printed `n` distinct marks, the deadline, or `stall` seconds without a
    new one (what is missing then is reported as lost, rather than waited for)."""
    seen, since = 0, time.monotonic()
    while seen < n and time.monotonic() < min(deadline, since + stall):
        await asyncio.sleep(0.2)
        now_seen = len({i for c in children for i, _ in c.arrivals})
        if now_seen > seen:
            seen, since = now_seen, time.monotonic()


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
        # The console is one chat, and the workloads queue up to 10,000 for it: past the default
        # cap (500) the oldest would be dead-lettered, and the run waited 600 s for them.
        MAX_QUEUE_PER_CHAT="1000000",
    )
    return env


async def run_processes(k: int, agents: int, messages: int) -> dict[str, Any]:
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
            sim_cpu0, (redis_cpu0, _, _) = proc_cpu_s(sim.pid), await redis_counters(handle.redis)
            started = time.monotonic()
            for c in children:
                await c.start()
            await _until_all_or_stalled(children, n, started + 600)
            # Read before the stop: a relay's CPU from its start (imports included, about 1 s each).
            relay_cpu = sum(proc_cpu_s(c.pid) for c in children)
            cpu = {
                "relay": round(relay_cpu, 2),
                "simulator": round(proc_cpu_s(sim.pid) - sim_cpu0, 2),
                "redis": round((await redis_counters(handle.redis))[0] - redis_cpu0, 2),
            }
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
                "notifications_per_relay_cpu_s": len(first) / relay_cpu if relay_cpu else math.nan,
                "cpu_s": cpu,
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
            await _until_all_or_stalled([*done, child], total, time.monotonic() + 120)
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


BEGIN = "<!-- performance:begin (generated by python -m bench.report --readme README.md) -->"
END = "<!-- performance:end -->"
HEADER = (
    "| run | wall-clock rate /s | per relay CPU-second | CPU s: relay / Redis / simulator | "
    "Redis round trips per notification | p50 / p99 s | lost / dup | ceiling reached | 429s per 10k |"
)


def _n(value: Any, fmt: str = "{:,.0f}") -> str:
    if isinstance(value, bool) or value is None:
        return "–"
    if isinstance(value, int | float):
        return "–" if isinstance(value, float) and math.isnan(value) else fmt.format(value)
    return str(value)


def _cpu(cpu: dict[str, Any]) -> str:
    cpu = {k: v for k, v in cpu.items() if isinstance(v, int | float)}
    mine = ("relay", "relay_and_fake", "loop")  # the process under test, whatever the benchmark calls it
    relay = next((cpu[k] for k in mine if k in cpu), None)
    redis_ = cpu.get("redis")
    other = sum(float(v) for k, v in cpu.items() if k not in (*mine, "redis"))
    return f"{_n(relay, '{:.2f}')} / {_n(redis_, '{:.2f}')} / {_n(other if len(cpu) > 2 else None, '{:.2f}')}"


def pipeline_rows(name: str, body: dict[str, Any]) -> list[str]:
    label = f"pipeline {body['agents']:,} agents x {body['messages']} ({name})"
    out = [
        f"| {label} | {_n(body['per_second'])} | {_n(body['notifications_per_relay_cpu_s'])} | {_cpu(body['cpu_s'])} | "
        f"{_n(body['redis_round_trips_per_notification'], '{:.2f}')} | "
        f"{_n(body['p50_s'], '{:.2f}')} / {_n(body['p99_s'], '{:.2f}')} | {body['lost']} / {body['duplicates']} | – | – |"
    ]
    ref = body.get("reference")
    if ref:
        out.append(
            f"| reference loop, same workload, stores nothing ({name}) | {_n(ref['per_second'])} | "
            f"{_n(ref['notifications_per_relay_cpu_s'])} | {_cpu(ref['cpu_s'])} | – | "
            f"{_n(ref['p50_s'], '{:.2f}')} / {_n(ref['p99_s'], '{:.2f}')} | {ref['lost']} / {ref['duplicates']} | – | – |"
        )
    return out


def platform_rows(name: str, body: dict[str, Any]) -> list[str]:
    work = body["workload"]
    relay, ref = body["relay"], body["reference"]
    if "chats" in work:
        order = work.get("order", "random")
        what = f"Telegram, {work['notifications']:,} to {work['chats']} chats ({work['groups']} groups, {order})"
    else:
        what = f"Discord, {work['notifications']:,} to {work['channels']} channels"
    steady = body.get("steady_pacing_pct")
    middle = f"; {steady:.0f}% in the middle 80%" if isinstance(steady, int | float) and not math.isnan(steady) else ""
    ceiling = (
        f"{body['pacing_pct']:.0f}% of {body['ceiling_per_second']:.0f}/s{middle} (paced at {body['adapter_rate']:.1f})"
    )
    per_cpu = relay["delivered"] / relay["cpu_s"]["relay_and_fake"] if relay.get("cpu_s") else None
    out = [
        f"| {what} ({name}) | {_n(relay['per_second'], '{:.1f}')} | {_n(per_cpu)} incl. fake | "
        f"{_cpu(relay.get('cpu_s', {}))} | – | {_n(relay['p50'], '{:.1f}')} / {_n(relay['p99'], '{:.1f}')} | "
        f"{_n(work['notifications'] - relay['delivered'])} / {_n(relay.get('duplicates', 0))} | {ceiling} | {_n(body['429s_per_10k_requests'], '{:.1f}')} |"
    ]
    ref_pct = 100 * ref["per_second"] / body["ceiling_per_second"]
    ref_429 = 10_000 * ref["429s"] / ref["requests"] if ref.get("requests") else float("nan")
    out.append(
        f"| {what.split(',')[0]} reference loop, sequential ({name}) | {_n(ref['per_second'], '{:.1f}')} | – | – | – | "
        f"{_n(ref['p50'], '{:.1f}')} / {_n(ref['p99'], '{:.1f}')} | – | {ref_pct:.0f}% | {_n(ref_429, '{:.1f}')} |"
    )
    return out


def other_row(name: str, body: dict[str, Any]) -> str:
    """A benchmark this report has no layout for: its top-level numbers, CPU first."""
    cpu = body.get("cpu_s") if isinstance(body.get("cpu_s"), dict) else None
    scalars = [
        f"{k} {_n(v, '{:,.4g}')}" for k, v in body.items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    label = str(body.get("kind") or body.get("bench") or name)
    return f"| {label} ({name}) | {'; '.join(scalars[:12])} | – | {_cpu(cpu) if cpu else '–'} | – | – | – | – | – |"


def soak_row(name: str, body: dict[str, Any]) -> str:
    """bench.poll_soak: polls held at their interval; the latency cells are poll lateness."""
    cpu = body.get("cpu_s") or {}
    relay = cpu.get("relay")
    per_cpu = body["heartbeats"] / relay if relay else None
    label = f"poll soak, {body['agents']:,} agents every {body['interval_s']:.0f} s for {body['minutes']} min"
    return (
        f"| {label} ({name}) | {_n(body.get('polls_per_s'), '{:.1f}')} polls | {_n(per_cpu)} polls | {_cpu(cpu)} | – | "
        f"lateness {_n(body['lateness_p50_s'], '{:.2f}')} / {_n(body['lateness_p99_s'], '{:.2f}')} "
        f"(max {_n(body.get('lateness_max_s'), '{:.2f}')}, {body.get('late_polls', '–')} over 2 s) | "
        f"– / {_n(body.get('duplicates'))} | relay CPU share {_n(body.get('relay_cpu_share'), '{:.0%}')} | – |"
    )


def steady_rows(name: str, body: dict[str, Any]) -> list[str]:
    """bench.steady: notifications created at a set rate while the relay runs, per mode."""
    out = []
    for run in body["runs"]:
        cpu = run.get("cpu_s") or {}
        delivered = run.get("delivered") or 0
        relay = cpu.get("relay")
        window = run.get("window_s")
        label = f"steady state, {body.get('agents', '?')} agents, {body.get('rate', '?')}/s created, {run.get('mode')}"
        trips = run.get("redis_round_trips")
        out.append(
            f"| {label} ({name}) | {_n(delivered / window if window else None, '{:.1f}')} | "
            f"{_n(delivered / relay if relay else None)} | {_cpu(cpu)} | "
            f"{_n(trips / delivered if trips and delivered else None, '{:.2f}')} | "
            f"{_n(run.get('p50_s'), '{:.2f}')} / {_n(run.get('p99_s'), '{:.2f}')} | "
            f"{_n(run.get('lost'))} / {_n(run.get('duplicates'))} | – | – |"
        )
    return out


def processes_row(name: str, body: dict[str, Any]) -> str:
    """`run_processes`: K relay processes delivering to one console chat; CPU summed over them."""
    return (
        f"| {body['kind']} ({name}) | {_n(body['per_second'])} | {_n(body['notifications_per_relay_cpu_s'])} | "
        f"{_cpu(body['cpu_s'])} | – | {_n(body['p50'], '{:.2f}')} / {_n(body['p99'], '{:.2f}')} | "
        f"{body['lost']} / {body['duplicates']} | – | – |"
    )


def rows_for(name: str, body: dict[str, Any]) -> list[str]:
    if "notifications_per_relay_cpu_s" in body and "agents" in body:
        return pipeline_rows(name, body)
    if "notifications_per_relay_cpu_s" in body and "p50" in body and "kind" in body:
        return [processes_row(name, body)]
    if "pacing_pct" in body and "workload" in body:
        return platform_rows(name, body)
    if "lateness_p99_s" in body and "heartbeats" in body:
        return [soak_row(name, body)]
    if isinstance(body.get("runs"), list) and all(isinstance(r, dict) and "mode" in r for r in body["runs"]):
        return steady_rows(name, body)
    return [other_row(name, body)]


def load(results: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every run's JSON, by file name; a file that is not one JSON object is reported and skipped."""
    out = []
    for path in sorted(results.glob("*.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        if isinstance(body, dict):
            out.append((path.stem, body))
    return out


def render(runs: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}",
        "",
        HEADER,
        "|" + "---|" * (HEADER.count("|") - 1),
    ]
    for name, body in runs:
        lines += rows_for(name, body)
    return "\n".join(lines)


def write_readme(readme: Path, table: str) -> None:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no performance markers ({BEGIN} ... {END})")
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{BEGIN}\n{table}\n{END}{after}")


async def run_module(module: str, *args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, "--json", cwd=str(ROOT), stdout=asyncio.subprocess.PIPE
    )
    out = (await proc.communicate())[0].decode()
    body: dict[str, Any] = json.loads(out[out.index("{") :])
    return body


async def run_all(quick: bool, save: Callable[[str, dict[str, Any]], None]) -> None:
    """Runs each benchmark and hands its JSON to `save` with its file name as soon as it ends
    (a run cut short keeps what finished)."""
    n = "600" if quick else "3000"
    runs: dict[str, tuple[str, tuple[str, ...]]] = {
        "pipeline-100x20": ("bench.pipeline", ("--agents", "100", "--messages", "20" if not quick else "5")),
        "telegram-100-chats": (
            "bench.telegram_send",
            ("--groups", "0", "--order", "round-robin", "--notifications", n),
        ),
        "telegram-100-chats-20-groups": ("bench.telegram_send", ("--notifications", n)),
        "discord-100-channels": ("bench.discord_send", ("--notifications", n)),
    }
    for run in (1, 2) if not quick else (1,):
        for name, (module, args) in runs.items():
            save(f"{name}-run{run}", await run_module(module, *args))
    if not quick:
        save("pipeline-100x100-run1", await run_module("bench.pipeline", "--agents", "100", "--messages", "100"))
        for k in (1, 3):
            fig: dict[str, Any] = dict(await run_processes(k, 100, 100))
            save(f"processes-{k}", {"kind": f"{k} relay process(es), console sink, 100 agents x 100", **fig})
        save("kills", {"kind": "SIGKILLs while messages flow", **(await run_kills(50, 10, 60))})


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--run", action="store_true", help="run the benchmarks first and save their JSON")
    p.add_argument("--quick", action="store_true", help="with --run: small workloads (a smoke run)")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="directory of JSON results")
    p.add_argument("--readme", type=Path, help="rewrite the table between this file's performance markers")
    args = p.parse_args(argv)
    logs.configure("ERROR")
    if args.run:
        args.results.mkdir(parents=True, exist_ok=True)
        await run_all(
            args.quick, lambda name, body: (args.results / f"{name}.json").write_text(json.dumps(body, indent=2))
        )
    table = render(load(args.results))
    if args.readme:
        write_readme(args.readme, table)
    print(table)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    asyncio.run(main())
