"""The pipeline benchmark on one Valkey and on a three-primary Valkey Cluster, one after the other.

Both run `bench.pipeline.run_relay` (same agents, messages and settings); the cluster is started
from the embedded package's server binary (tests/fakes/valkey_cluster.py). Prints, for each, what
the relay delivered, lost and duplicated, notifications per relay CPU-second, relay CPU per steady
poll, and CPU seconds per process (relay, simulator, Valkey summed over the nodes) beside wall-clock.
The cluster's cost is the client's: redis-py's cluster client routes every command in Python.

    python -m bench.cluster [--agents 100] [--messages 20] [--steady 5] [--runs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from redis.asyncio import Redis

from bench.pipeline import run_relay
from relay import eventloop
from tests.fakes.valkey_cluster import ClusterUnavailable, ValkeyCluster

UNAVAILABLE = 3  # exit status when no cluster can be started (tests skip on it)
FIGURES = (
    "delivered",
    "lost",
    "duplicates",
    "seconds",
    "notifications_per_relay_cpu_s",
    "relay_cpu_ms_per_poll",
    "cpu_relay_s",
    "cpu_simulator_s",
    "cpu_redis_s",
    "p50",
    "p99",
)


async def run(agents: int, messages: int, steady: float, runs: int) -> dict[str, list[dict[str, float]]]:
    """`runs` of each, interleaved (the first run of a process pays for its imports and warm-up)."""
    out: dict[str, list[dict[str, float]]] = {"one_valkey": [], "cluster_3_primaries": []}
    cluster = ValkeyCluster()
    cluster.start()
    nodes = [Redis(host="127.0.0.1", port=port) for port in cluster.ports]
    try:
        for i in range(runs):
            order = ("one_valkey", "cluster_3_primaries") if i % 2 else ("cluster_3_primaries", "one_valkey")
            for mode in order:
                if mode == "one_valkey":
                    out[mode].append(await run_relay(agents, messages, steady))
                else:
                    out[mode].append(
                        await run_relay(agents, messages, steady, redis_url=cluster.url, cluster=True, nodes=nodes)
                    )
    finally:
        for node in nodes:
            await node.aclose()
        cluster.stop()
    return out


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--steady", type=float, default=5.0, help="seconds of polls that find nothing, after delivery")
    p.add_argument("--runs", type=int, default=2, help="runs of each, interleaved")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    try:
        results = await run(args.agents, args.messages, args.steady, args.runs)
    except ClusterUnavailable as exc:
        print(f"no Valkey cluster could be started here: {exc}", file=sys.stderr)
        raise SystemExit(UNAVAILABLE) from None
    if args.json:
        print(json.dumps({"agents": args.agents, "messages": args.messages, **results}, indent=2))
        return
    print(f"{args.agents} agents x {args.messages} messages, {args.runs} runs each | " + " | ".join(results))
    for name in FIGURES:
        print(f"{name} | " + " | ".join(" / ".join(f"{r[name]:.2f}" for r in rs) for rs in results.values()))


if __name__ == "__main__":
    eventloop.run(main())
