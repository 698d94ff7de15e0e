"""A fake Discord (REST + gateway WebSocket) on 127.0.0.1 for tests and the benchmark.

The real discord.py talks to it through DISCORD_API_BASE and DISCORD_GATEWAY_URL. It speaks
enough of the gateway (HELLO, IDENTIFY -> READY, heartbeats, GUILD_CREATE, dispatches, RESUME)
and of REST (login, command sync, interaction callbacks and follow-ups, channel messages with
nonce dedup), validates Discord's message limits, enforces rate limits with Discord's headers,
records every call, and lets a test inject interactions and failures. It knows nothing about
the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_ID = 900000000000000001
APP_ID = 900000000000000002
OWNER_ID = 900000000000000003
EPHEMERAL = 1 << 6
ADMINISTRATOR = 1 << 3
SUPPRESS_NOTIFICATIONS = 1 << 12
_EXEMPT = ("/interactions/", "/webhooks/")  # interaction endpoints are outside the global limit
_ISO = "2025-01-01T00:00:00+00:00"


def user_payload(user_id: int, name: str = "") -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name or f"user{user_id % 10_000}",
        "discriminator": "0",
        "global_name": name or None,
        "avatar": None,
        "bot": False,
    }


BOT_USER = {**user_payload(BOT_ID, "relay"), "bot": True}


class CommandNotAvailable(Exception):
    """The member could not have run the command: Discord hides it from them."""


@dataclass
class Call:
    method: str
    path: str
    status: int
    body: Any
    at: float  # when the response was ready
    arrived: float = 0.0  # when the request reached the fake (monotonic)

    @property
    def counts_globally(self) -> bool:
        """Discord counts it against the bot's global limit (interaction answers are exempt)."""
        return not self.path.startswith(_EXEMPT)


@dataclass
class StoredMessage:
    id: int
    channel_id: int
    payload: dict[str, Any]  # what the client sent (latest edit applied)
    ephemeral: bool = False
    via: str = "channel"  # channel | interaction
    interaction_id: int | None = None
    deleted: bool = False
    loading: bool = False  # a deferred "thinking" response not yet filled in
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        p = self.payload
        return {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": BOT_USER,
            "type": 0,
            "content": p.get("content") or "",
            "embeds": p.get("embeds") or [],
            "components": p.get("components") or [],
            "flags": (EPHEMERAL if self.ephemeral else 0) | int(p.get("flags") or 0),
            "timestamp": _ISO,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "pinned": False,
            "nonce": p.get("nonce"),
        }

    @property
    def text(self) -> str:
        """Everything a reader could see in the message."""
        p = self.payload
        parts = [p.get("content") or ""]
        for e in p.get("embeds") or []:
            parts += [e.get("title", ""), e.get("description", ""), (e.get("footer") or {}).get("text", "")]
            for f in e.get("fields") or []:
                parts += [f.get("name", ""), f.get("value", "")]
        return "\n".join(x for x in parts if x)

    def custom_ids(self) -> list[str]:
        return [
            c["custom_id"]
            for row in self.payload.get("components") or []
            for c in row.get("components", [])
            if "custom_id" in c
        ]

    def labels(self) -> dict[str, str]:
        return {
            c["custom_id"]: c.get("label", "")
            for row in self.payload.get("components") or []
            for c in row.get("components", [])
            if "custom_id" in c
        }


@dataclass
class FakeInteraction:
    id: int
    token: str
    type: int
    channel_id: int
    payload: dict[str, Any]
    message_id: int | None = None  # the message a pressed button sits on
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    original: StoredMessage | None = None
    followups: list[StoredMessage] = field(default_factory=list)
    modal: dict[str, Any] | None = None

    @property
    def answered(self) -> bool:
        """A final answer is visible: the deferral was filled in or a message was sent/edited."""
        if not self.callbacks:
            return False
        kind = self.callbacks[0]["type"]
        if kind == 9:
            return True
        if kind == 5:
            return (self.original is not None and not self.original.loading) or bool(self.followups)
        return True

    def messages(self) -> list[StoredMessage]:
        out = [self.original] if self.original is not None else []
        return [m for m in out + self.followups if not m.deleted]


class _Session:
    def __init__(self, ws: web.WebSocketResponse, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self.seq = 0
        self.identified = False

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        seq = None
        if op == 0:
            self.seq += 1
            seq = self.seq
        # Text frames: discord.py only decompresses binary frames, whatever `compress` it asked for.
        await self.ws.send_str(json.dumps({"op": op, "d": data, "s": seq, "t": event}))


class FakeDiscord:
    def __init__(
        self,
        *,
        token: str,
        global_limit: int | None = 50,
        channel_limit: tuple[int, float] | None = (5, 5.0),
        nonce_window: float = 300.0,
        guilds: dict[int, list[int]] | None = None,
    ) -> None:
        self.token = token
        self.global_limit = global_limit
        self.channel_limit = channel_limit
        self.nonce_window = nonce_window
        self.guilds: dict[int, list[int]] = dict(guilds or {})
        self.calls: list[Call] = []
        self.messages: dict[int, StoredMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.sync_calls: list[int | None] = []
        self.identifies: list[float] = []
        self.sessions: list[_Session] = []
        self.rate_limited: list[Call] = []  # every 429 sent
        self.session_start_remaining = 1000
        # Discord only lets a guild member run a command whose default_member_permissions they
        # lack when a guild admin overrode the command's permissions for them. Off by default: tests
        # of what the relay does with such an interaction send it regardless.
        self.enforce_command_permissions = False
        self._overrides: dict[tuple[int, str], set[int]] = {}
        self._ids = itertools.count(1_000_000_000_000_000_000)
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._global_window = (0, 0)  # (second, count)
        self._global_block_until = 0.0
        self._buckets: dict[int, tuple[float, int]] = {}
        self._refused: dict[int, int] = {}
        self._drop_next: set[int] = set()
        self._fail_next: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/ws", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await session.ws.close()
        if self._runner:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    # --- test controls ----------------------------------------------------------------------

    def refuse(self, channel_id: int, status: int) -> None:
        """Answer 403 (Missing Access) or 404 (Unknown Channel) for the channel from now on."""
        self._refused[channel_id] = status

    def accept(self, channel_id: int) -> None:
        self._refused.pop(channel_id, None)

    def drop_next_response(self, channel_id: int) -> None:
        """Create the next message in the channel, then cut the connection without answering."""
        self._drop_next.add(channel_id)

    def fail_next(self, channel_id: int, status: int = 503) -> None:
        self._fail_next[channel_id] = status

    def exhaust_bucket(self, channel_id: int) -> None:
        """As if another process had just used the channel's whole message bucket."""
        assert self.channel_limit
        self._buckets[channel_id] = (time.monotonic(), self.channel_limit[0])

    def block_globally(self, seconds: float) -> None:
        """Every (non-interaction) request gets a global 429 for `seconds`."""
        self._global_block_until = time.monotonic() + seconds

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        async def loop() -> Any:
            while not (result := predicate()):
                self._changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)
            return result

        return await asyncio.wait_for(loop(), timeout)

    def channel_messages(self, channel_id: int | None = None) -> list[StoredMessage]:
        return [
            m
            for m in self.messages.values()
            if m.via == "channel" and (channel_id is None or m.channel_id == channel_id)
        ]

    def public_messages(self) -> list[StoredMessage]:
        """Everything anyone in a channel can see (channel posts and non-ephemeral answers)."""
        return [m for m in self.messages.values() if not m.ephemeral and not m.deleted and not m.loading]

    def calls_to(self, method: str, fragment: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path]

    @property
    def active_session(self) -> _Session | None:
        live = [s for s in self.sessions if s.identified and not s.ws.closed]
        return live[-1] if live else None

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        session = self.active_session
        assert session is not None, "no identified gateway session"
        await session.send(0, data, event)

    # --- interactions -----------------------------------------------------------------------

    def override_command_permissions(self, guild_id: int, name: str, user_id: int) -> None:
        """What a guild admin does in Server Settings > Integrations (PUT .../commands/{id}/permissions):
        the member may run /name in this guild although they lack its default_member_permissions."""
        self._overrides.setdefault((guild_id, name), set()).add(user_id)

    def may_run(self, spec: dict[str, Any], guild_id: int | None, user_id: int, permissions: int) -> bool:
        """Discord's own check before it delivers a slash command (guilds only; DMs have none)."""
        raw = spec.get("default_member_permissions")
        if guild_id is None or raw is None or permissions & ADMINISTRATOR:
            return True
        if user_id in self._overrides.get((guild_id, spec["name"]), set()):
            return True
        required = int(raw)  # "0": administrators only
        return required != 0 and permissions & required == required

    async def interaction(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        channel_id: int,
        user_id: int = 111_111_111_111_111_111,
        guild_id: int | None = None,
        permissions: int = 0,
    ) -> FakeInteraction:
        """A user runs a synced slash command; options are typed from the synced definition."""
        spec = next(
            (c for c in self.commands.get(guild_id, []) + self.commands.get(None, []) if c["name"] == name), None
        )
        assert spec is not None, f"/{name} was never synced"
        if self.enforce_command_permissions and not self.may_run(spec, guild_id, user_id, permissions):
            raise CommandNotAvailable(f"Discord does not offer /{name} to user {user_id} in guild {guild_id}")
        types = {o["name"]: o["type"] for o in spec.get("options", [])}
        wire = []
        for key, value in (options or {}).items():
            assert key in types, f"/{name} has no option {key}"
            wire.append({"name": key, "type": types[key], "value": int(value) if types[key] == 4 else str(value)})
        data = {"id": spec["id"], "name": name, "type": 1, "options": wire}
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return await self._interact(2, data, channel_id, user_id, guild_id, permissions)

    async def press(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int = 111_111_111_111_111_111,
        guild_id: int | None = None,
        permissions: int = 0,
    ) -> FakeInteraction:
        message = self.messages[message_id]
        assert custom_id in message.custom_ids(), "no such button on the message"
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(3, data, message.channel_id, user_id, guild_id, permissions, message=message)

    async def submit_modal(
        self,
        opened_by: FakeInteraction,
        values: dict[str, str],
        *,
        user_id: int = 111_111_111_111_111_111,
        guild_id: int | None = None,
        permissions: int = 0,
    ) -> FakeInteraction:
        """Submit the modal that `opened_by` answered with, filling fields by custom_id."""
        modal = opened_by.modal
        assert modal is not None, "that interaction did not open a modal"
        components = []
        for row in modal["components"]:
            inner = row.get("component") or (row.get("components") or [None])[0]
            value = values.get(inner["custom_id"], "")
            if inner["type"] == 3:
                answer = {"type": 3, "custom_id": inner["custom_id"], "values": [value] if value else []}
            else:
                answer = {"type": 4, "custom_id": inner["custom_id"], "value": value}
            components.append(
                {"type": 18, "component": answer} if row["type"] == 18 else {"type": 1, "components": [answer]}
            )
        data = {"custom_id": modal["custom_id"], "components": components}
        message = self.messages.get(opened_by.message_id) if opened_by.message_id else None
        return await self._interact(5, data, opened_by.channel_id, user_id, guild_id, permissions, message=message)

    async def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        channel_id: int,
        user_id: int,
        guild_id: int | None,
        permissions: int,
        message: StoredMessage | None = None,
    ) -> FakeInteraction:
        interaction_id = next(self._ids)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "token": f"itok{interaction_id}",
            "version": 1,
            "channel_id": str(channel_id),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 8 << 20,
            "app_permissions": str((1 << 53) - 1),
        }
        if guild_id is not None:
            payload.update(
                guild_id=str(guild_id),
                guild_locale="en-US",
                context=0,
                authorizing_integration_owners={"0": str(guild_id)},
                channel={
                    "id": str(channel_id),
                    "type": 0,
                    "guild_id": str(guild_id),
                    "name": f"c{channel_id % 1000}",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                },
                member={
                    "user": user_payload(user_id),
                    "roles": [],
                    "joined_at": _ISO,
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                    "permissions": str(permissions),
                },
            )
        else:
            payload.update(
                context=1,
                authorizing_integration_owners={"0": "0"},
                channel={
                    "id": str(channel_id),
                    "type": 1,
                    "recipients": [user_payload(user_id)],
                    "last_message_id": None,
                },
                user=user_payload(user_id),
            )
        if message is not None:
            payload["message"] = message.to_json()
        record = FakeInteraction(
            interaction_id, payload["token"], kind, channel_id, payload, message_id=message.id if message else None
        )
        self.interactions[interaction_id] = record
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    # --- HTTP plumbing ----------------------------------------------------------------------

    def busiest_second(self) -> int:
        """The most requests counted against the global limit in any sliding second (by arrival)."""
        times = sorted(c.arrived for c in self.calls if c.counts_globally)
        best, first = 0, 0
        for last, t in enumerate(times):
            while times[first] <= t - 1.0:
                first += 1
            best = max(best, last - first + 1)
        return best

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        arrived = time.monotonic()
        request._fake_arrived = arrived  # type: ignore[attr-defined]
        response = await handler(request)
        if request.path.startswith("/api/"):
            body = getattr(request, "_fake_json", None)
            call = Call(
                request.method, request.path[len("/api/v10") :], response.status, body, time.monotonic(), arrived
            )
            self.calls.append(call)
            if response.status == 429:
                self.rate_limited.append(call)
            self._changed.set()
        return response

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        request._fake_json = body  # type: ignore[attr-defined]
        exempt = path.startswith(_EXEMPT)
        if not exempt and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        if not exempt and (limited := self._global_429()):
            return limited
        parts = path.strip("/").split("/")
        method = request.method
        if path == "/users/@me":
            return _json(BOT_USER)
        if path == "/oauth2/applications/@me":
            return _json(
                {
                    "id": str(APP_ID),
                    "name": "relay",
                    "description": "",
                    "icon": None,
                    "bot_public": False,
                    "bot_require_code_grant": False,
                    "owner": user_payload(OWNER_ID),
                    "verify_key": "0" * 64,
                    "flags": 0,
                    "summary": "",
                    "team": None,
                }
            )
        if path in ("/gateway", "/gateway/bot"):
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": self.session_start_remaining,
                        "reset_after": 1000,
                        "max_concurrency": 1,
                    },
                }
            )
        if parts[0] == "applications" and method == "PUT":
            return self._sync(parts, body)
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(int(parts[1]), body)
        if parts[0] == "webhooks":
            return self._webhook(request, parts, body)
        if parts[0] == "channels" and len(parts) >= 2:
            return await self._channel(request, int(parts[1]), parts[2:], body)
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _global_429(self) -> web.Response | None:
        now = time.monotonic()
        if now < self._global_block_until:
            return _rate_limited(self._global_block_until - now, scope="global")
        if self.global_limit is None:
            return None
        second, count = self._global_window
        current = int(now)
        if current != second:
            second, count = current, 0
        count += 1
        self._global_window = (second, count)
        if count > self.global_limit:
            return _rate_limited(second + 1 - now, scope="global")
        return None

    def _sync(self, parts: list[str], body: list[dict[str, Any]]) -> web.Response:
        guild_id = int(parts[3]) if len(parts) > 3 and parts[2] == "guilds" else None
        synced = []
        for command in body:
            synced.append(
                {
                    **command,
                    "id": str(next(self._ids)),
                    "application_id": str(APP_ID),
                    "version": "1",
                    "guild_id": str(guild_id) if guild_id else None,
                }
            )
        self.commands[guild_id] = synced
        self.sync_calls.append(guild_id)
        return _json(synced)

    def _callback(self, interaction_id: int, body: dict[str, Any]) -> web.Response:
        record = self.interactions.get(interaction_id)
        if record is None:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if record.callbacks:
            return _json({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        kind = body["type"]
        data = body.get("data") or {}
        record.callbacks.append(body)
        flags = int(data.get("flags") or 0)
        resource: dict[str, Any] = {"type": kind}
        if kind == 9:
            record.modal = data
        elif kind in (4, 5):
            error = _invalid(data) if kind == 4 else None
            if error:
                return error
            record.original = self._store(
                record.channel_id,
                data if kind == 4 else {},
                ephemeral=bool(flags & EPHEMERAL),
                via="interaction",
                interaction_id=record.id,
                loading=kind == 5,
            )
            if kind == 4:
                resource["message"] = record.original.to_json()
        elif kind == 7 and record.message_id:
            error = _invalid(data)
            if error:
                return error
            self.messages[record.message_id].payload.update(data)
        self._changed.set()
        original = record.original
        return _json(
            {
                "interaction": {
                    "id": str(record.id),
                    "type": record.type,
                    "response_message_id": str(original.id) if original else None,
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(flags & EPHEMERAL),
                },
                "resource": resource,
            }
        )

    def _webhook(self, request: web.Request, parts: list[str], body: Any) -> web.Response:
        token = parts[2]
        record = next((r for r in self.interactions.values() if r.token == token), None)
        if record is None:
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        method = request.method
        if len(parts) == 3 and method == "POST":
            error = _invalid(body)
            if error:
                return error
            original = record.original
            if original is not None and original.loading and not original.deleted:
                # The first follow-up after a deferral fills it in, with the deferral's visibility.
                original.payload, original.loading = dict(body), False
                self._changed.set()
                return _json(original.to_json())
            message = self._store(
                record.channel_id,
                body,
                ephemeral=bool(int(body.get("flags") or 0) & EPHEMERAL),
                via="interaction",
                interaction_id=record.id,
            )
            record.followups.append(message)
            return _json(message.to_json())
        if len(parts) == 5 and parts[4] == "@original":
            target = record.original
            if record.type == 3 and (not record.callbacks or record.callbacks[0]["type"] in (6, 7)):
                target = self.messages.get(record.message_id or 0)
            if target is None or target.deleted:
                return _json({"message": "Unknown Message", "code": 10008}, 404)
            if method == "DELETE":
                target.deleted = True
                self._changed.set()
                return web.Response(status=204)
            if method == "PATCH":
                error = _invalid(body)
                if error:
                    return error
                target.payload = {**target.payload, **{k: v for k, v in body.items()}}
                target.loading = False
                self._changed.set()
                return _json(target.to_json())
            return _json(target.to_json())
        return _json({"message": "404: Not Found", "code": 0}, 404)

    async def _channel(self, request: web.Request, channel_id: int, rest: list[str], body: Any) -> web.StreamResponse:
        if status := self._refused.get(channel_id):
            message = {403: ("Missing Access", 50001), 404: ("Unknown Channel", 10003)}[status]
            return _json({"message": message[0], "code": message[1]}, status)
        if not rest and request.method == "GET":
            return _json(
                {
                    "id": str(channel_id),
                    "type": 0,
                    "name": "c",
                    "position": 0,
                    "permission_overwrites": [],
                    "guild_id": "1",
                    "nsfw": False,
                    "parent_id": None,
                }
            )
        if rest == ["messages"] and request.method == "POST":
            return await self._create_message(request, channel_id, body)
        if len(rest) == 2 and rest[0] == "messages" and request.method == "PATCH":
            message = self.messages.get(int(rest[1]))
            if message is None or message.channel_id != channel_id:
                return _json({"message": "Unknown Message", "code": 10008}, 404)
            if error := _invalid(body):
                return error
            message.payload.update(body)
            return _json(message.to_json())
        return _json({"message": "404: Not Found", "code": 0}, 404)

    async def _create_message(self, request: web.Request, channel_id: int, body: dict[str, Any]) -> web.StreamResponse:
        if status := self._fail_next.pop(channel_id, None):
            return _json({"message": "Service Unavailable", "code": 0}, status)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get((channel_id, str(nonce)))
            if seen and time.monotonic() - seen[1] < self.nonce_window:
                return _json(self.messages[seen[0]].to_json(), 200, self._bucket_headers(channel_id))
        if limited := self._route_429(channel_id):
            return limited
        if error := _invalid(body):
            return error
        message = self._store(channel_id, body)
        if nonce is not None and body.get("enforce_nonce"):
            self._nonces[(channel_id, str(nonce))] = (message.id, time.monotonic())
        if channel_id in self._drop_next:
            self._drop_next.discard(channel_id)
            arrived = request._fake_arrived  # type: ignore[attr-defined]
            self.calls.append(Call("POST", f"/channels/{channel_id}/messages", 0, body, time.monotonic(), arrived))
            assert request.transport is not None
            request.transport.close()  # the message exists, but the client never hears so
            raise asyncio.CancelledError
        return _json(message.to_json(), 200, self._bucket_headers(channel_id))

    def _route_429(self, channel_id: int) -> web.Response | None:
        if self.channel_limit is None:
            return None
        limit, period = self.channel_limit
        now = time.monotonic()
        start, count = self._buckets.get(channel_id, (now, 0))
        if now - start >= period:
            start, count = now, 0
        if count >= limit:
            return _rate_limited(start + period - now, scope="user", bucket_headers=self._bucket_headers(channel_id))
        self._buckets[channel_id] = (start, count + 1)
        return None

    def _bucket_headers(self, channel_id: int) -> dict[str, str]:
        if self.channel_limit is None:
            return {}
        limit, period = self.channel_limit
        now = time.monotonic()
        start, count = self._buckets.get(channel_id, (now, 0))
        reset_after = max(0.0, start + period - now)
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - count)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "fake-messages-bucket",
        }

    def _store(
        self,
        channel_id: int,
        payload: dict[str, Any],
        *,
        ephemeral: bool = False,
        via: str = "channel",
        interaction_id: int | None = None,
        loading: bool = False,
    ) -> StoredMessage:
        message = StoredMessage(
            next(self._ids), channel_id, dict(payload), ephemeral, via, interaction_id, loading=loading
        )
        self.messages[message.id] = message
        self._changed.set()
        return message

    # --- gateway ----------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = _Session(ws, f"s{next(self._ids)}")
        self.sessions.append(session)
        await session.send(10, {"heartbeat_interval": 41250})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, data = frame.get("op"), frame.get("d")
            if op == 1:
                await session.send(11, None)
            elif op == 2:
                if data.get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                self.identifies.append(time.time())
                session.identified = True
                await session.send(
                    0,
                    {
                        "v": 10,
                        "user": BOT_USER,
                        "session_id": session.session_id,
                        "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                        "application": {"id": str(APP_ID), "flags": 0},
                        "resume_gateway_url": self.gateway_url,
                        "shard": [0, 1],
                    },
                    "READY",
                )
                for guild_id in self.guilds:
                    await session.send(0, self.guild_payload(guild_id), "GUILD_CREATE")
                self._changed.set()
            elif op == 6:
                session.identified = True
                await session.send(0, {}, "RESUMED")
        self._changed.set()
        return ws

    def guild_payload(self, guild_id: int) -> dict[str, Any]:
        channels = [
            {
                "id": str(c),
                "type": 0,
                "name": f"c{c % 1000}",
                "position": i,
                "permission_overwrites": [],
                "guild_id": str(guild_id),
                "nsfw": False,
                "parent_id": None,
            }
            for i, c in enumerate(self.guilds[guild_id])
        ]
        return {
            "id": str(guild_id),
            "name": f"guild{guild_id % 1000}",
            "channels": channels,
            "threads": [],
            "roles": [
                {
                    "id": str(guild_id),
                    "name": "@everyone",
                    "permissions": "0",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "members": [],
            "member_count": 2,
            "emojis": [],
            "stickers": [],
            "features": [],
            "unavailable": False,
            "owner_id": str(OWNER_ID),
            "joined_at": _ISO,
            "large": False,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "icon": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json", no charset: discord.py compares the header verbatim.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={**(headers or {}), "Content-Type": "application/json"}
    )


def _rate_limited(retry_after: float, *, scope: str, bucket_headers: dict[str, str] | None = None) -> web.Response:
    retry_after = max(0.001, round(retry_after, 3))
    is_global = scope == "global"
    headers = {
        "Retry-After": str(max(1, int(retry_after + 0.999))),
        "X-RateLimit-Scope": scope,
        "Via": "1.1 google",
    }  # discord.py treats a 429 without Via as a Cloudflare ban
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    else:
        headers.update(bucket_headers or {})
        headers["X-RateLimit-Remaining"] = "0"
    return _json(
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}, 429, headers
    )


def _invalid(payload: dict[str, Any] | None) -> web.Response | None:
    """Discord's 400 for a message over its limits (resources/message.mdx)."""
    problems = message_problems(payload or {})
    if problems:
        return _json({"message": "Invalid Form Body", "code": 50035, "errors": problems}, 400)
    return None


def message_problems(p: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if len(p.get("content") or "") > 2000:
        out.append("content longer than 2000")
    embeds = p.get("embeds") or []
    if len(embeds) > 10:
        out.append("more than 10 embeds")
    total = 0
    for i, e in enumerate(embeds):
        limits = (("title", 256), ("description", 4096))
        for key, limit in limits:
            if len(e.get(key) or "") > limit:
                out.append(f"embeds.{i}.{key} too long")
            total += len(e.get(key) or "")
        if e.get("description") is not None and not e["description"].strip():
            out.append(f"embeds.{i}.description blank")
        footer = (e.get("footer") or {}).get("text") or ""
        if len(footer) > 2048:
            out.append(f"embeds.{i}.footer too long")
        total += len(footer)
        fields = e.get("fields") or []
        if len(fields) > 25:
            out.append(f"embeds.{i} more than 25 fields")
        for f in fields:
            if not f.get("name") or len(f["name"]) > 256 or not f.get("value") or len(f["value"]) > 1024:
                out.append(f"embeds.{i} bad field")
            total += len(f.get("name") or "") + len(f.get("value") or "")
        if e.get("url") and not str(e["url"]).startswith(("http://", "https://")):
            out.append(f"embeds.{i}.url invalid")
    if total > 6000:
        out.append("embeds longer than 6000 in total")
    nonce = p.get("nonce")
    if nonce is not None and len(str(nonce)) > 25:
        out.append("nonce longer than 25")
    for row in p.get("components") or []:
        for c in row.get("components", []):
            if len(c.get("custom_id") or "") > 100 or len(c.get("label") or "") > 80:
                out.append("component too long")
    return out
