"""Every Lua script of the relay names its keys from KEYS (directly, or by name among them), never otherwise.

A cluster runs a script on the node of its KEYS' slot: a key the script makes up from anything
else (the bare key prefix, an id) may live on another node, and the script fails there (redis-py
routes by KEYS; Valkey refuses a key of another slot). Keys built inside a script are allowed only
from the hub stem (`Keys.hub_stem`), which carries the hub's hash tag on a cluster, so they share
the slot of the script's KEYS (all hub keys). This reads the scripts themselves, so a new one that
builds `prefix .. ':x'` fails here even before a cluster test reaches it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from redis.asyncio import Redis

import relay
from relay.keys import Keys
from relay.models import ChatRef
from relay.redis_values import text
from relay.store import Store, Subscription
from relay.tokens import TokenBox

_CALL = re.compile(r"redis\.p?call\(\s*'(\w+)'\s*,")
_SEGMENT = re.compile(r"[(),=\n{}]|\b(?:then|return|if|and|or|not|do|local)\b")
_LOCAL = re.compile(r"^\s*(?:local\s+)?([\w, ]+?)\s*=(?!=)\s*([^\n]+)", re.M)  # assignments
_FUNCTION = re.compile(r"local\s+function\s+(\w+)\(([^)]*)\)")
_KEYLESS = {"TIME"}  # commands whose first argument is not a key


def calls(lua: str) -> list[tuple[str, list[str]]]:
    """Each redis.call / redis.pcall: its command and its top-level arguments after it."""
    out = []
    for match in _CALL.finditer(lua):
        depth, parts, current = 0, [], ""
        for ch in lua[match.end() :]:
            if ch == ")" and depth == 0:
                break
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if ch == "," and depth == 0:
                parts.append(current.strip())
                current = ""
            else:
                current += ch
        out.append((match.group(1), [*parts, current.strip()]))
    return out


def key_arguments(command: str, parts: list[str]) -> list[str]:
    """The arguments of one call that name keys (most commands: the first one)."""
    if command == "XGROUP":  # XGROUP CREATE <key> ...
        return parts[1:2]
    if command == "XREADGROUP":  # ... STREAMS <key> ... <id>
        at = next((i for i, a in enumerate(parts) if a == "'STREAMS'"), len(parts))
        return parts[at + 1 : at + 2]
    return parts[:1]


def scripts() -> dict[str, str]:
    found = {}
    for info in pkgutil.iter_modules(relay.__path__):
        module = importlib.import_module(f"relay.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                found[f"relay.{info.name}.{name}"] = value
    return found


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",")]


def rooted_names(lua: str) -> set[str]:
    """Names bound to KEYS[...] or to the hub stem (or to keys built from them), to a fixpoint."""
    roots = {"hub", "key("} if _BY_NAME in lua else {"hub"}
    while True:
        before = set(roots)
        for names, exprs in _LOCAL.findall(lua):
            for name, expr in zip(_split(names), _split(exprs), strict=False):
                if rooted(expr, roots):
                    roots.add(name)
        for fn, params in _FUNCTION.findall(lua):
            calls = re.findall(rf"(?<!function ){fn}\(([^)]*)\)", lua)
            for i, param in enumerate(_split(params)):
                # A fragment without its calls (composed into other scripts) is checked where composed.
                if all(len(_split(c)) > i and rooted(_split(c)[i], roots) for c in calls):
                    roots.add(param)
        if roots == before:
            return roots


def built_keys(lua: str) -> list[str]:
    """The first term of every concatenation that looks like a key (it appends `':...`); values
    that start with a literal ('backlog:' .. chat) are not keys."""
    out = []
    for segment in _SEGMENT.split(lua):
        if ".. ':" in segment.replace("..':", ".. ':"):
            first = segment.split("..")[0].strip()
            if first and not first.startswith("'"):
                out.append(first)
    return out


# relay.store's scripts take their keys by name: `key(name)` and `K[name]` look a name up among KEYS.
_BY_NAME = "K[ARGV[1 + i]] = KEYS[i]"


def rooted(expr: str, roots: set[str]) -> bool:
    expr = expr.strip()
    if expr.startswith(("key(", "K[")) and "key(" in roots:
        return True
    return expr.startswith("KEYS[") or expr.split("..")[0].strip() in roots


def test_every_script_names_its_keys_from_keys_or_the_hub_stem() -> None:
    found = scripts()
    assert len(found) >= 15, sorted(found)  # the scan really found the scripts
    wrong = []
    for name, lua in found.items():
        if any(lua in other for other in found.values() if other is not lua):
            continue  # a fragment: checked inside the scripts it is composed into
        roots = rooted_names(lua)
        for command, args in calls(lua):
            if command in _KEYLESS:
                continue
            wrong += [f"{name}: {command} {a}" for a in key_arguments(command, args) if not rooted(a, roots)]
        wrong += [f"{name}: key built from {stem}" for stem in built_keys(lua) if not rooted(stem, roots)]
    assert wrong == []


def test_the_check_itself_catches_a_key_built_from_the_prefix() -> None:
    bad = "local prefix = ARGV[1]\nredis.call('DEL', prefix .. ':agent:' .. ARGV[2])"
    roots = rooted_names(bad)
    assert built_keys(bad) == ["prefix"] and not rooted("prefix", roots)
    by_id = "redis.call('XGROUP', 'CREATE', ARGV[1], 'g', '0')\nredis.call('HGET', KEYS[1] .. ARGV[2], 'f')"
    assert [key_arguments(c, a) for c, a in calls(by_id)] == [["ARGV[1]"], ["KEYS[1] .. ARGV[2]"]]
    assert not rooted("ARGV[1]", rooted_names(by_id))
    good = "local hub = ARGV[1]\nlocal k = hub .. ':agent:' .. ARGV[2]\nredis.call('DEL', k)"
    assert rooted("k", rooted_names(good))


async def test_a_store_script_short_of_keys_writes_nothing_and_names_the_ones_it_needs(
    redis: Redis, keys: Keys, box: TokenBox
) -> None:
    store = Store(redis, keys, box)
    await store.link("rec:1", 7, "seven", "tok-7", "consume")
    sub = await store.add_subscription(Subscription(0, "agent", ChatRef("rec", "9"), agent_id=7))
    names = ["user:rec:1", "agents"]
    first = await store._unlink(keys=[keys.hub_name(n) for n in names], args=[len(names), *names, "rec:1"])
    answer = [text(x) for x in first]
    assert answer[0] == "need" and "agent:7:subs" in answer
    assert await store.linked_agent_id("rec:1") == 7  # a plan that lacked keys changed nothing
    # Through the rounds: the subscription's hash, and then its chat's set, are found and named.
    assert await store.unlink("rec:1") == [7]
    assert not await redis.exists(keys.sub(sub), keys.chat_subs("rec:9:"), keys.agent(7), keys.user_link("rec:1"))


async def test_an_unlink_among_ten_thousand_linked_agents_names_them_all_without_overflowing_lua(
    redis: Redis, keys: Keys, box: TokenBox
) -> None:
    # Unlink checks every linked agent for links left by older versions: 10,000 keys to name,
    # more than Lua's unpack() can return at once.
    store = Store(redis, keys, box)
    await store.link("rec:1", 7, "seven", "tok-7", "consume")
    await redis.sadd(keys.agents(), *range(100_000, 110_000))
    assert await store.unlink("rec:1") == [7]
    assert await redis.scard(keys.agents()) == 10_000


# --- the Python side: which keys each script call and each transaction passes ----------------------

_SAMPLE_ARGS = {
    "agent_id": 5, "sub_id": 3, "chat": "rec:1:", "user": "rec:1", "order_id": "ab", "fingerprint": "ff",
    "platform": "rec", "event_id": "e1", "local_date": "2026-01-01", "batch": "b1", "bucket": "all",
    "name": "agents",
}  # fmt: skip


def sample_slots() -> dict[str, int]:
    """The slot of each Keys method's key on a cluster, for one sample entity of each kind."""
    import inspect

    from redis.crc import key_slot

    from relay.keys import ADAPTER_FAMILIES

    tagged = Keys("p", cluster=True)
    slots = {}
    for name, method in inspect.getmembers(tagged, inspect.ismethod):
        if name.startswith("_") or name in ("hub_stem",):
            continue
        params = list(inspect.signature(method).parameters)
        args = [next(iter(ADAPTER_FAMILIES.values())) if p == "family" else _SAMPLE_ARGS.get(p, "x") for p in params]
        args = [a for a, p in zip(args, params, strict=True) if p != "parts"]
        slots[name] = int(key_slot(method(*args).encode()))
    return slots


def _key_calls(node: object, methods: set[str]) -> list[str]:
    import ast

    assert isinstance(node, ast.AST)
    return [
        n.func.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in methods
        and (
            (isinstance(n.func.value, ast.Name) and n.func.value.id in ("k", "keys"))
            or (isinstance(n.func.value, ast.Attribute) and n.func.value.attr in ("_k", "_keys", "keys"))
        )
    ]  # fmt: skip


def _in_place(value: object) -> bool:
    import ast

    return isinstance(value, ast.List) and not any(isinstance(e, ast.Name | ast.Starred) for e in value.elts)


def grouped_key_uses() -> list[tuple[str, list[str]]]:
    """(where, Keys methods) for every script call (`keys=[...]`) and every MULTI transaction
    (`pipeline(transaction=True)`) in relay/: the keys one atomic step uses together. A list built
    in a variable counts every key its function names (an over-estimate). Keys that come from
    elsewhere (a lease's or a budget's own key) are not seen here: the cluster tests run those."""
    import ast
    from pathlib import Path

    methods = set(sample_slots())
    out: list[tuple[str, list[str]]] = []
    for path in sorted(Path(relay.__path__[0]).glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                where = f"{path.name}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Call):
                    # A list written out in place, else every key its function names.
                    out.extend(
                        (where, _key_calls(kw.value if _in_place(kw.value) else fn, methods))
                        for kw in node.keywords
                        if kw.arg == "keys"
                    )
                    is_multi = (
                        isinstance(node.func, ast.Attribute)
                        and node.func.attr == "pipeline"
                        and any(
                            kw.arg == "transaction" and getattr(kw.value, "value", None) is True for kw in node.keywords
                        )
                    )
                    if is_multi:
                        out.append((where, _key_calls(fn, methods)))
    return out


def test_every_script_call_and_transaction_keeps_its_keys_in_one_slot() -> None:
    slots = sample_slots()
    found = grouped_key_uses()
    assert len(found) >= 20, found  # the scan really found the call sites
    wrong = [f"{where}: {sorted(set(used))}" for where, used in found if len({slots[m] for m in used}) > 1]
    assert wrong == []
