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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from platform_fakes import uploads

BOT_ID = 900000000000000001
APP_ID = 900000000000000002
OWNER_ID = 900000000000000003
EPHEMERAL = 1 << 6
ADMINISTRATOR = 1 << 3
SUPPRESS_NOTIFICATIONS = 1 << 12
# Per-request values the middleware and handlers share (aiohttp's typed request storage).
_ARRIVED = web.RequestKey("fake_arrived", float)
_BODY = web.RequestKey("fake_json", object)
_FILES = web.RequestKey("fake_files", tuple)  # (files by form name, request size)
_EXEMPT = ("/interactions/", "/webhooks/")  # interaction endpoints are outside the global limit
_ISO = "2025-01-01T00:00:00+00:00"
_CLOSE_REASONS = {4000: "Unknown error.", 4004: "Authentication failed.", 4014: "Disallowed intent(s)."}


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
            "attachments": [uploads.public_attachment(a) for a in p.get("attachments") or [] if "url" in a],
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
    choices: list[dict[str, Any]] | None = None  # the answer to an autocomplete (type 8)
    received: float = field(default_factory=time.monotonic)  # when it was dispatched to the bot

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
        route_limit: tuple[int, float] | None = (5, 5.0),
        interaction_deadline: float = 3.0,
        token_lifetime: float = 900.0,
    ) -> None:
        """Limits as Discord documents them; tests shrink the periods (never switch a rule off
        unless the test is about something else). `channel_limit` is the message-create bucket,
        `route_limit` every other bucketed route (edits, follow-ups, command sync)."""
        self.token = token
        self.route_limit = route_limit
        self.interaction_deadline = interaction_deadline
        self.token_lifetime = token_lifetime
        self.global_limit = global_limit
        self.channel_limit = channel_limit
        self.nonce_window = nonce_window
        self.upload_limit = uploads.DISCORD_FILE_MAX  # per file; a boosted server allows more
        self.guilds: dict[int, list[int]] = dict(guilds or {})
        self.calls: list[Call] = []
        self.messages: dict[int, StoredMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        # A server's "preferred locale" (guild.preferred_locale), set by its admins; en-US by default.
        self.guild_locales: dict[int, str] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.sync_calls: list[int | None] = []
        self.identifies: list[float] = []
        self.sessions: list[_Session] = []
        self.rate_limited: list[Call] = []  # every 429 sent
        self.session_start_remaining = 1000
        self.resumes = 0
        # Discord only lets a guild member run a command whose default_member_permissions they
        # lack when a guild admin overrode the command's permissions for them. Off by default: tests
        # of what the relay does with such an interaction send it regardless.
        self.enforce_command_permissions = False
        self._overrides: dict[tuple[int, str], set[int]] = {}
        self._ids = itertools.count(1_000_000_000_000_000_000)
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._global_window: deque[float] = deque()  # arrivals in the last second (sliding)
        self._global_block_until = 0.0
        self._cloudflare_until = 0.0
        self._shared_until: dict[int, float] = {}
        self._denied: dict[int, set[str]] = {}
        self._buckets: dict[Any, tuple[float, int]] = {}
        self._sessions_by_id: dict[str, _Session] = {}
        self._identify_close: int | None = None
        self._refused: dict[int, int] = {}
        self._drop_next: set[int] = set()
        self._fail_next: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._middleware], client_max_size=uploads.BODY_READ_MAX)
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
        self._denied.pop(channel_id, None)

    def deny(self, channel_id: int, *permissions: str) -> None:
        """Take permissions from the bot in the channel: "send_messages" (every message) or
        "embed_links" (messages with embeds) answer 403 50013 Missing Permissions, unlike 50001
        Missing Access (the channel is not visible at all; `refuse(channel, 403)`)."""
        self._denied[channel_id] = set(permissions)

    def cloudflare_ban(self, seconds: float) -> None:
        """Cloudflare blocks the IP: every REST request gets a 429 without Discord's `Via` header
        and an HTML body (topics/rate-limits#invalid-request-limit-aka-cloudflare-bans)."""
        self._cloudflare_until = time.monotonic() + seconds

    def shared_limit(self, channel_id: int, seconds: float) -> None:
        """Message creates in the channel get a 429 with X-RateLimit-Scope: shared, as when a
        resource's limit is shared by every bot (topics/rate-limits#header-format)."""
        self._shared_until[channel_id] = time.monotonic() + seconds

    async def request_reconnect(self) -> None:
        """Opcode 7 Reconnect on the live session: the client should resume elsewhere (topics/gateway#reconnect)."""
        session = self.active_session
        assert session is not None, "no identified gateway session"
        await session.send(7, None)

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Opcode 9 Invalid Session; with d=false the session is gone and RESUME is refused
        (topics/gateway#invalid-session)."""
        session = self.active_session
        assert session is not None, "no identified gateway session"
        if not resumable:
            self._sessions_by_id.pop(session.session_id, None)
        session.identified = False
        await session.send(9, resumable)

    async def close_session(self, code: int, reason: str = "") -> None:
        """Close the live session with a gateway close code (topics/opcodes-and-status-codes#gateway-close-event-codes)."""
        session = self.active_session
        assert session is not None, "no identified gateway session"
        session.identified = False
        await session.ws.close(code=code, message=(reason or _CLOSE_REASONS.get(code, "")).encode())

    def refuse_identify(self, code: int | None) -> None:
        """Every later IDENTIFY is closed with `code` (4004 Authentication failed, 4014 Disallowed
        intent(s)); None accepts them again."""
        self._identify_close = code

    def drop_next_response(self, channel_id: int) -> None:
        """Create the next message in the channel, then cut the connection without answering."""
        self._drop_next.add(channel_id)

    def fail_next(self, channel_id: int, status: int = 503) -> None:
        self._fail_next[channel_id] = status

    def exhaust_bucket(self, channel_id: int) -> None:
        """As if another process had just used the channel's whole message bucket."""
        assert self.channel_limit
        self._buckets[("POST message", channel_id)] = (time.monotonic(), self.channel_limit[0])

    def block_globally(self, seconds: float) -> None:
        """Every (non-interaction) request gets a global 429 for `seconds`."""
        self._global_block_until = time.monotonic() + seconds

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        # The timeout is a deadline, not a wait: a loaded machine may need this long.
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
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs a synced slash command; options are typed from the synced definition.
        `locale`: the user's client language, sent on every interaction (Discord's `locale`)."""
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
        return await self._interact(2, data, channel_id, user_id, guild_id, permissions, locale=locale)

    async def autocomplete(
        self,
        name: str,
        focused: str,
        typed: str,
        options: dict[str, Any] | None = None,
        *,
        channel_id: int,
        user_id: int = 111_111_111_111_111_111,
        guild_id: int | None = None,
        permissions: int = 0,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """The user is typing option `focused` of /`name`: an APPLICATION_COMMAND_AUTOCOMPLETE
        interaction (type 4). "The focused option will be marked with a focused: true field";
        what was typed so far arrives as a string whatever the option's type, unvalidated
        (interactions/receiving-and-responding.mdx#interaction-object-application-command-interaction-data-option-structure,
        application-commands.mdx#autocomplete). Only an option synced with autocomplete gets one."""
        spec = next(
            (c for c in self.commands.get(guild_id, []) + self.commands.get(None, []) if c["name"] == name), None
        )
        assert spec is not None, f"/{name} was never synced"
        declared = {o["name"]: o for o in spec.get("options", [])}
        assert declared.get(focused, {}).get("autocomplete"), f"/{name} {focused} was not synced with autocomplete"
        wire = [
            {"name": key, "type": declared[key]["type"], "value": str(value)}
            for key, value in (options or {}).items()
            if key != focused
        ]
        wire.append({"name": focused, "type": declared[focused]["type"], "value": typed, "focused": True})
        data = {"id": spec["id"], "name": name, "type": 1, "options": wire}
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return await self._interact(4, data, channel_id, user_id, guild_id, permissions, locale=locale)

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
        locale: str = "en-US",
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
            "locale": locale,
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
        request[_ARRIVED] = arrived
        response: web.StreamResponse = await handler(request)
        if request.path.startswith("/api/"):
            body = request.get(_BODY)
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
            content_type = request.headers.get("Content-Type", "")
            if uploads.is_multipart(content_type):
                body, files = _multipart_body(content_type, raw)
                request[_FILES] = (files, len(raw))
            else:
                body = json.loads(raw) if raw else None
        request[_BODY] = body
        if time.monotonic() < self._cloudflare_until:
            # Cloudflare answers before Discord does: no Via header, no JSON (topics/rate-limits).
            return web.Response(text="error code: 1015", status=429, content_type="text/html")
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
            if limited := self._route_429(("PUT commands", path), self.route_limit):
                return limited
            return self._with_bucket(self._sync(parts, body), ("PUT commands", path), self.route_limit)
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(int(parts[1]), body)
        if parts[0] == "webhooks":
            # Follow-ups are bucketed per interaction token (the webhook is the major parameter).
            route = (f"{method} webhook", parts[2] if len(parts) > 2 else "")
            if limited := self._route_429(route, self.route_limit):
                return limited
            return self._with_bucket(self._webhook(request, parts, body), route, self.route_limit)
        if parts[0] == "channels" and len(parts) >= 2:
            return await self._channel(request, int(parts[1]), parts[2:], body)
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _global_429(self) -> web.Response | None:
        now = time.monotonic()
        if now < self._global_block_until:
            return _rate_limited(self._global_block_until - now, scope="global")
        if self.global_limit is None:
            return None
        # "All bots can make up to 50 requests per second to our API" (topics/rate-limits#global-rate-limit):
        # any one-second span, not per wall-clock second, so a burst across a second boundary is refused.
        window = self._global_window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.global_limit:
            return _rate_limited(window[0] + 1.0 - now, scope="global")
        window.append(now)
        return None

    def _sync(self, parts: list[str], body: list[dict[str, Any]]) -> web.Response:
        guild_id = int(parts[3]) if len(parts) > 3 and parts[2] == "guilds" else None
        # "autocomplete may not be set to true if choices are present", and only string, integer
        # and number options autocomplete (application-commands.mdx#application-command-option-structure).
        for i, command in enumerate(body):
            for j, option in enumerate(command.get("options") or []):
                if option.get("autocomplete") and (option.get("choices") or option.get("type") not in (3, 4, 10)):
                    where = f"{i}.options.{j}.autocomplete"
                    problems = [(where, "AUTOCOMPLETE_CHOICES", "Autocomplete cannot be used with choices")]
                    return _json({"message": "Invalid Form Body", "code": 50035, "errors": _nest(problems)}, 400)
        synced = [
            {
                **command,
                "id": str(next(self._ids)),
                "application_id": str(APP_ID),
                "version": "1",
                "guild_id": str(guild_id) if guild_id else None,
            }
            for command in body
        ]
        self.commands[guild_id] = synced
        self.sync_calls.append(guild_id)
        return _json(synced)

    def _callback(self, interaction_id: int, body: dict[str, Any]) -> web.Response:
        record = self.interactions.get(interaction_id)
        # "you must send an initial response within 3 seconds of receiving the event. If the 3
        # second deadline is exceeded, the token will be invalidated" (interactions/
        # receiving-and-responding.mdx#responding-to-an-interaction): 404 10062 Unknown interaction.
        if record is None or time.monotonic() - record.received > self.interaction_deadline:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if record.callbacks:
            return _json({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        kind = body["type"]
        data = body.get("data") or {}
        # An autocomplete interaction takes only APPLICATION_COMMAND_AUTOCOMPLETE_RESULT (8), and 8
        # answers nothing else (interactions/receiving-and-responding.mdx#interaction-response-object-interaction-callback-type).
        if (record.type == 4) != (kind == 8):
            return _json({"message": "Interaction has an invalid response type", "code": 40043}, 400)
        if kind == 8 and (problems := choice_problems(data)):
            return _json({"message": "Invalid Form Body", "code": 50035, "errors": _nest(problems)}, 400)
        # A refused callback acknowledges nothing: validate before recording it.
        if kind == 9 and (problems := modal_problems(data)):
            return _json({"message": "Invalid Form Body", "code": 50035, "errors": _nest(problems)}, 400)
        if kind == 4 and (error := _invalid(data)):
            return error
        if kind == 7 and (error := _invalid(data, new=False)):
            return error
        record.callbacks.append(body)
        flags = int(data.get("flags") or 0)
        resource: dict[str, Any] = {"type": kind}
        if kind == 9:
            record.modal = data
        elif kind == 8:
            record.choices = list(data.get("choices") or [])
        elif kind in (4, 5):
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
        if time.monotonic() - record.received > self.token_lifetime:
            # "Interaction tokens are valid for 15 minutes" (receiving-and-responding.mdx#followup-messages);
            # an expired one is 401 50027 Invalid Webhook Token (topics/opcodes-and-status-codes).
            return _json({"message": "Invalid Webhook Token", "code": 50027}, 401)
        method = request.method
        if method in ("POST", "PATCH") and isinstance(body, dict) and (refused := self._take_uploads(request, body)):
            return refused
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
                error = _invalid(body, new=False)
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
            # 50001 Missing Access: the bot cannot see the channel; 10003: it does not exist
            # (topics/opcodes-and-status-codes#json-json-error-codes).
            text, code = {403: ("Missing Access", 50001), 404: ("Unknown Channel", 10003)}[status]
            return _json({"message": text, "code": code}, status)
        if rest == ["messages"] and request.method == "GET":
            return self._recent(channel_id, request)
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
            route = ("PATCH message", channel_id)
            if limited := self._route_429(route, self.route_limit):
                return limited
            message = self.messages.get(int(rest[1]))
            if message is None or message.channel_id != channel_id:
                return _json({"message": "Unknown Message", "code": 10008}, 404)
            if denied := self._missing_permissions(channel_id, body):
                return denied
            if error := _invalid(body, new=False):
                return error
            message.payload.update(body)
            return _json(message.to_json(), 200, self._bucket_headers(route, self.route_limit))
        return _json({"message": "404: Not Found", "code": 0}, 404)

    async def _create_message(self, request: web.Request, channel_id: int, body: dict[str, Any]) -> web.StreamResponse:
        route = ("POST message", channel_id)
        if refused := self._take_uploads(request, body):
            return refused
        if status := self._fail_next.pop(channel_id, None):
            return _json({"message": "Service Unavailable", "code": 0}, status)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get((channel_id, str(nonce)))
            if seen and time.monotonic() - seen[1] < self.nonce_window:
                return _json(self.messages[seen[0]].to_json(), 200, self._bucket_headers(route, self.channel_limit))
        if (until := self._shared_until.get(channel_id)) and (left := until - time.monotonic()) > 0:
            return _rate_limited(left, scope="shared", bucket_headers=self._bucket_headers(route, self.channel_limit))
        if limited := self._route_429(route, self.channel_limit):
            return limited
        if denied := self._missing_permissions(channel_id, body):
            return denied
        if error := _invalid(body):
            return error
        message = self._store(channel_id, body)
        if nonce is not None and body.get("enforce_nonce"):
            self._nonces[(channel_id, str(nonce))] = (message.id, time.monotonic())
        if channel_id in self._drop_next:
            self._drop_next.discard(channel_id)
            arrived = request[_ARRIVED]
            self.calls.append(Call("POST", f"/channels/{channel_id}/messages", 0, body, time.monotonic(), arrived))
            assert request.transport is not None
            request.transport.close()  # the message exists, but the client never hears so
            raise asyncio.CancelledError
        return _json(message.to_json(), 200, self._bucket_headers(route, self.channel_limit))

    def _missing_permissions(self, channel_id: int, body: dict[str, Any] | None) -> web.Response | None:
        """403 50013 Missing Permissions: the bot sees the channel but lacks Send Messages, or
        Embed Links for a message with embeds (topics/opcodes-and-status-codes, topics/permissions)."""
        denied = self._denied.get(channel_id, set())
        if "send_messages" in denied or ("embed_links" in denied and (body or {}).get("embeds")):
            return _json({"message": "Missing Permissions", "code": 50013}, 403)
        return None

    def _recent(self, channel_id: int, request: web.Request) -> web.Response:
        """GET /channels/{id}/messages: newest first, `limit` 1-100 (default 50) (resources/message.mdx#get-channel-messages)."""
        limit = int(request.query.get("limit", "50"))
        if not 1 <= limit <= 100:
            errors = _nest([("limit", "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")])
            return _json({"message": "Invalid Form Body", "code": 50035, "errors": errors}, 400)
        found = sorted(
            (m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted and not m.ephemeral),
            key=lambda m: m.id,
            reverse=True,
        )
        return _json([m.to_json() for m in found[:limit]])

    def _take_uploads(self, request: web.Request, body: dict[str, Any]) -> web.Response | None:
        """Checks a multipart request's files against Discord's limits and turns them into the
        message's attachment objects (in `body["attachments"]`, bytes kept for tests)."""
        uploaded = request.get(_FILES)
        if not uploaded:
            return None
        files, size = uploaded
        if refused := uploads.discord_upload_problem(files, size, self.upload_limit):
            return _json(refused[1], refused[0])
        body["attachments"] = uploads.discord_attachments(files, body, lambda: next(self._ids))
        return None

    def _route_429(self, route: Any, limits: tuple[int, float] | None) -> web.Response | None:
        """A per-route bucket (topics/rate-limits#per-route-rate-limits): `limit` requests per
        `period` for each route and major parameter, answered with scope "user"."""
        if limits is None:
            return None
        limit, period = limits
        now = time.monotonic()
        start, count = self._buckets.get(route, (now, 0))
        if now - start >= period:
            start, count = now, 0
        if count >= limit:
            return _rate_limited(start + period - now, scope="user", bucket_headers=self._bucket_headers(route, limits))
        self._buckets[route] = (start, count + 1)
        return None

    def _with_bucket(self, response: web.Response, route: Any, limits: tuple[int, float] | None) -> web.Response:
        if response.status < 400:
            response.headers.update(self._bucket_headers(route, limits))
        return response

    def _bucket_headers(self, route: Any, limits: tuple[int, float] | None) -> dict[str, str]:
        """X-RateLimit-* of topics/rate-limits#header-format; the bucket hash names the route, not
        the major parameter, as Discord's does."""
        if limits is None:
            return {}
        limit, period = limits
        now = time.monotonic()
        start, count = self._buckets.get(route, (now, 0))
        reset_after = max(0.0, start + period - now)
        name = route[0] if isinstance(route, tuple) else str(route)
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - count)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "fake-" + name.replace(" ", "-").lower(),
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
                # topics/opcodes-and-status-codes#gateway-close-event-codes: 4004 Authentication
                # failed, 4014 Disallowed intent(s); both are not reconnectable.
                if data.get("token") != self.token:
                    await ws.close(code=4004, message=_CLOSE_REASONS[4004].encode())
                    break
                if self._identify_close is not None:
                    code = self._identify_close
                    await ws.close(code=code, message=_CLOSE_REASONS.get(code, "").encode())
                    break
                # Every IDENTIFY spends one of the day's session starts (topics/gateway#session-start-limit).
                self.session_start_remaining -= 1
                self.identifies.append(time.time())
                self._sessions_by_id[session.session_id] = session
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
                # topics/gateway#resuming: the token must match and the session must still exist
                # (not invalidated); otherwise opcode 9 with d=false and the client identifies anew.
                old = self._sessions_by_id.get(str((data or {}).get("session_id")))
                if data.get("token") != self.token:
                    await ws.close(code=4004, message=_CLOSE_REASONS[4004].encode())
                    break
                if old is None or int(data.get("seq") or 0) > old.seq:
                    await session.send(9, False)
                    continue
                session.session_id, session.seq = old.session_id, old.seq
                self._sessions_by_id[session.session_id] = session
                self.resumes += 1
                session.identified = True
                await session.send(0, {}, "RESUMED")
        self._changed.set()
        return ws

    def guild_payload(self, guild_id: int) -> dict[str, Any]:
        channels: list[dict[str, Any]] = [
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
            "preferred_locale": self.guild_locales.get(guild_id, "en-US"),
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }


def _multipart_body(content_type: str, raw: bytes) -> tuple[Any, dict[str, uploads.Upload]]:
    """discord.py's upload form: the JSON body in `payload_json`, files as `files[n]` parts."""
    fields, files = uploads.parse_multipart(content_type, raw)
    payload = fields.get("payload_json")
    return (json.loads(payload) if payload else {}), files


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


def _invalid(payload: dict[str, Any] | None, *, new: bool = True) -> web.Response | None:
    """Discord's 400 for a message it refuses (resources/message.mdx, topics/opcodes-and-status-codes).

    An empty new message is 50006 "Cannot send an empty message"; anything over a limit is 50035
    "Invalid Form Body" with the nested `errors` object of reference.mdx#error-messages: one key per
    JSON path segment (array indices as strings), leaves {"_errors": [{"code", "message"}]}.
    discord.py flattens exactly that shape into its HTTPException text."""
    p = payload or {}
    if new and _is_empty(p):
        return _json({"message": "Cannot send an empty message", "code": 50006}, 400)
    problems = message_problems(p)
    if problems:
        return _json({"message": "Invalid Form Body", "code": 50035, "errors": _nest(problems)}, 400)
    return None


def _is_empty(p: dict[str, Any]) -> bool:
    # A message needs content, an embed, a sticker, a file or a poll (resources/message.mdx#create-message).
    return not any(p.get(k) for k in ("content", "embeds", "sticker_ids", "attachments", "poll"))


def _nest(problems: list[tuple[str, str, str]]) -> dict[str, Any]:
    """[("embeds.0.description", code, message)] -> {"embeds": {"0": {"description": {"_errors": [...]}}}}."""
    errors: dict[str, Any] = {}
    for path, code, message in problems:
        node = errors
        for part in path.split("."):
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
    return errors


def _too_long(path: str, limit: int) -> tuple[str, str, str]:
    return (path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def message_problems(p: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(path, code, message) for every limit of resources/message.mdx and message components the
    payload breaks."""
    out: list[tuple[str, str, str]] = []
    if len(p.get("content") or "") > 2000:
        out.append(_too_long("content", 2000))
    embeds = p.get("embeds") or []
    if len(embeds) > 10:
        out.append(("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."))
    total = 0
    for i, e in enumerate(embeds):
        for key, limit in (("title", 256), ("description", 4096)):
            if len(e.get(key) or "") > limit:
                out.append(_too_long(f"embeds.{i}.{key}", limit))
            total += len(e.get(key) or "")
        if e.get("description") is not None and not e["description"].strip():
            out.append((f"embeds.{i}.description", "BASE_TYPE_REQUIRED", "This field is required"))
        footer = (e.get("footer") or {}).get("text") or ""
        if len(footer) > 2048:
            out.append(_too_long(f"embeds.{i}.footer.text", 2048))
        total += len(footer)
        fields = e.get("fields") or []
        if len(fields) > 25:
            out.append((f"embeds.{i}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."))
        for j, f in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                if not f.get(key):
                    out.append((f"embeds.{i}.fields.{j}.{key}", "BASE_TYPE_REQUIRED", "This field is required"))
                elif len(f[key]) > limit:
                    out.append(_too_long(f"embeds.{i}.fields.{j}.{key}", limit))
            total += len(f.get("name") or "") + len(f.get("value") or "")
        if e.get("url") and not str(e["url"]).startswith(("http://", "https://")):
            out.append((f"embeds.{i}.url", "URL_TYPE_INVALID_URL", "Not a well formed URL."))
    if total > 6000:
        out.append(("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"))
    nonce = p.get("nonce")
    if nonce is not None and len(str(nonce)) > 25:
        out.append(_too_long("nonce", 25))
    rows = p.get("components") or []
    # Message components: at most 5 action rows, each with at most 5 buttons (components/reference.mdx).
    if len(rows) > 5:
        out.append(("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length."))
    for r, row in enumerate(rows):
        inner = row.get("components", [])
        if not 1 <= len(inner) <= 5:
            out.append((f"components.{r}.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."))
        for c, comp in enumerate(inner):
            if len(comp.get("custom_id") or "") > 100:
                out.append(_too_long(f"components.{r}.components.{c}.custom_id", 100))
            if len(comp.get("label") or "") > 80:
                out.append(_too_long(f"components.{r}.components.{c}.label", 80))
    return out


def choice_problems(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """An autocomplete answer: "autocomplete interactions allow for a maximum of 25 choices", each
    name 1-100 characters and a string value at most 100 characters (application-commands.mdx,
    application-command-option-choice-structure)."""
    choices = data.get("choices")
    if not isinstance(choices, list):
        return [("choices", "BASE_TYPE_REQUIRED", "This field is required")]
    problems = []
    if len(choices) > 25:
        problems.append(("choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."))
    for i, c in enumerate(choices):
        name, value = c.get("name"), c.get("value")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            problems.append((f"choices.{i}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."))
        if isinstance(value, str) and len(value) > 100:
            problems.append((f"choices.{i}.value", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."))
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            problems.append((f"choices.{i}.value", "BASE_TYPE_REQUIRED", "This field is required"))
    return problems


def modal_problems(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Limits of a modal (interactions/receiving-and-responding.mdx#interaction-response-object-modal,
    components/reference.mdx#text-input and #label): title 1-45, custom_id 1-100, 1-5 components;
    a text input's label 1-45, placeholder up to 100, value and lengths up to 4000."""
    out: list[tuple[str, str, str]] = []
    title = data.get("title") or ""
    if not 1 <= len(title) <= 45:
        out.append(("data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."))
    if not 1 <= len(data.get("custom_id") or "") <= 100:
        out.append(("data.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."))
    rows = data.get("components") or []
    if not 1 <= len(rows) <= 5:
        out.append(("data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."))
    for r, row in enumerate(rows):
        path = f"data.components.{r}"
        if row.get("type") == 18:  # Label: text 1-45, description up to 100, one component inside
            if not 1 <= len(row.get("label") or "") <= 45:
                out.append((f"{path}.label", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."))
            if len(row.get("description") or "") > 100:
                out.append(_too_long(f"{path}.description", 100))
            inner, ipath = row.get("component") or {}, f"{path}.component"
        else:
            inner, ipath = (row.get("components") or [{}])[0], f"{path}.components.0"
            if inner.get("type") == 4 and not 1 <= len(inner.get("label") or "") <= 45:
                out.append((f"{ipath}.label", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."))
        if not 1 <= len(inner.get("custom_id") or "") <= 100:
            out.append((f"{ipath}.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."))
        if len(inner.get("placeholder") or "") > 100:
            out.append(_too_long(f"{ipath}.placeholder", 100))
        if inner.get("type") == 4:
            if len(inner.get("value") or "") > 4000:
                out.append(_too_long(f"{ipath}.value", 4000))
            out.extend(
                (f"{ipath}.{key}", "NUMBER_TYPE_MAX", "int value should be less than or equal to 4000.")
                for key in ("min_length", "max_length")
                if key in inner and not 0 <= int(inner[key]) <= 4000
            )
    return out
