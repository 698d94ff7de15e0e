"""A fake Telegram Bot API on 127.0.0.1 for tests and the benchmark: the real PTB talks to it.

It answers in the real wire format ({"ok":true,"result":…} / {"ok":false,"error_code":…}),
validates HTML roughly like Telegram, enforces flood limits with 429 + retry_after, records every
call, and lets a test inject updates and failures. It knows nothing about the relay.

It refuses what Telegram refuses, each rule with its source: the Bot API page
(https://core.telegram.org/bots/api, "BAPI" below) and the Bots FAQ on limits
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this, "FAQ"). Where
Telegram documents no figure (how long a callback query can be answered), the figure observed in
client libraries' issue trackers is used and marked as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import math
import re
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from platform_fakes import uploads

# BAPI setWebhook: "Ports currently supported for webhooks: 443, 80, 88, 8443."
WEBHOOK_PORTS = (443, 80, 88, 8443)
# Not documented: Telegram stops accepting answerCallbackQuery some seconds after the press
# ("query is too old and response timeout expired"); reports put it at 5-15 s.
CALLBACK_ANSWER_WINDOW = 10.0
ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
SERVICE_USER = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
MAX_TEXT = 4096
_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<name>[A-Za-z][A-Za-z0-9-]*)(?P<attrs>(?:\s[^<>]*)?)>"
    r"|&(?P<entity>#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|lt|gt|amp|quot);"
    r"|(?P<stray>[<>&])"
)
_HREF = re.compile(r"""\shref\s*=\s*(?:"([^"]*)"|'([^']*)')""")


class ParseError(ValueError):
    pass


def visible_text(text: str) -> str:
    """What Telegram shows for an HTML-mode text; ParseError where Telegram answers
    "can't parse entities" (unknown tag, unbalanced tags, a raw <, > or &)."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        offset = len(text[: m.start()].encode())
        if m.group("stray"):
            raise ParseError(f'Unexpected character "{m.group("stray")}" at byte offset {offset}')
        if m.group("entity"):
            out.append(html.unescape(m.group(0)))
            continue
        name = m.group("name").lower()
        if name not in _TAGS:
            raise ParseError(f'Unsupported start tag "{name}" at byte offset {offset}')
        if m.group("close"):
            if not stack or stack[-1] != name:
                raise ParseError(
                    f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1] if stack else ""}>", found "</{name}>"'
                )
            stack.pop()
        else:
            if name == "a" and not _HREF.search(m.group("attrs") or ""):
                raise ParseError(f"Can't find href attribute at byte offset {offset}")
            stack.append(name)
    out.append(text[pos:])
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when answered
    status: int = 200
    result: Any = None


@dataclass(frozen=True)
class Limits:
    """Telegram's flood limits (FAQ): "avoid sending more than one message per second" in a chat,
    "no more than 20 messages per minute" in a group, "about 30 messages per second" in bulk.
    None disables a limit. `scaled(k)` keeps the shapes with every period multiplied by k, so
    tests meet 429s as production does, k times faster (retry_after stays a whole number of
    seconds, as Telegram's is: a scaled 429 is over-waited, never under-waited)."""

    per_chat_burst: int = 3
    per_chat_rate: float = 1.0
    per_group: tuple[int, float] | None = (20, 60.0)
    global_burst: int = 30
    global_rate: float = 30.0

    def scaled(self, k: float) -> Limits:
        return Limits(
            self.per_chat_burst,
            self.per_chat_rate / k,
            (self.per_group[0], self.per_group[1] * k) if self.per_group else None,
            self.global_burst,
            self.global_rate / k,
        )


DOCUMENTED_LIMITS = Limits()  # frozen, so one instance can be every fake's default


class _Bucket:
    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.tokens, self.at = capacity, time.monotonic()

    def wait_for_token(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Poll:
    terminated: asyncio.Event = field(default_factory=asyncio.Event)


class FakeTelegram:
    """`async with FakeTelegram() as fake:` then point PTB at `fake.api_base`."""

    def __init__(
        self,
        token: str = "1234567:FAKEtokenFAKEtokenFAKEtokenFAKEtoken",
        *,
        limits: Limits | None = DOCUMENTED_LIMITS,
        callback_window: float = CALLBACK_ANSWER_WINDOW,
        webhook_retry: float = 1.0,
        webhook_attempts: int = 10,
    ) -> None:
        self.token = token
        self.limits = limits
        self.callback_window = callback_window
        self.webhook_retry = webhook_retry  # first wait before redelivering after a non-2xx answer
        self.webhook_attempts = webhook_attempts  # "give up after a reasonable amount of attempts"
        # Where the webhook's public https URL is served from (the TLS proxy in front of the relay).
        self.webhook_origin = ""
        self.topics: dict[int, set[int]] = defaultdict(set)
        self.bot_admin: set[int] = set()  # chats where the bot is an administrator
        self.webhook_dropped: list[int] = []  # update_ids Telegram gave up on
        self.bot = {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "Relay",
            "username": "relay_test_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self.members: dict[tuple[int, int], str] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.commands: list[dict[str, Any]] = []
        # (scope as sorted JSON, language_code or "") -> the commands set for it (setMyCommands).
        self.menus: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.webhook_url = ""
        self.webhook_secret = ""
        # Bot API getUpdates/setWebhook `allowed_updates`: the kinds Telegram sends at all; it is
        # remembered until changed, and by default excludes chat_member, message_reaction(_count).
        self.allowed_updates: list[str] | None = None
        self.webhook_deliveries: list[int] = []
        self._webhook_error: tuple[int, str] | None = None
        self.conflicts_served = 0
        self.can_delete: dict[int, bool] = {}
        self._failures: dict[int, tuple[str, int]] = {}
        self._fail_after: dict[int, tuple[int, str]] = {}
        self.reject_html: set[int] = set()  # chats where every HTML text "can't be parsed"
        self.stall: dict[int, float] = {}  # chat -> seconds to sit on a sendMessage before answering
        # Cleared: every request is still carried out (a sendMessage is delivered) but its answer
        # is held back until set again, as when Telegram's side of a connection stops answering.
        self.answering = asyncio.Event()
        self.answering.set()
        self._flood: dict[int, tuple[float, int]] = {}
        self._pending_conflicts = 0
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._msg_ids: dict[int, Iterator[int]] = defaultdict(lambda: itertools.count(1))
        self._query_ids = itertools.count(1)
        self._open_queries: dict[str, float] = {}  # query id -> when pressed (monotonic)
        self._pusher: asyncio.Task[None] | None = None
        self._pushed = asyncio.Event()
        self._new_update = asyncio.Condition()
        self._poll: _Poll | None = None
        self._chat_buckets: dict[int, _Bucket] = {}
        self._group_windows: dict[int, deque[float]] = defaultdict(deque)
        self._global = _Bucket(limits.global_burst, limits.global_rate) if limits else None
        self._called = asyncio.Condition()
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeTelegram:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])])
        config = uvicorn.Config(app, lifespan="off", access_log=False, log_config=None)
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)
        self._http = httpx.AsyncClient(timeout=5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.answering.set()
        if self._poll:
            self._poll.terminated.set()
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
        if self._http:
            await self._http.aclose()
        if self._server and self._task:
            self._server.should_exit = True
            await self._task

    # --- test controls -----------------------------------------------------------------------

    def add_chat(
        self, chat_id: int, type: str = "private", title: str = "", *, is_forum: bool = False
    ) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": chat_id, "type": type}
        if type == "private":
            chat["first_name"] = title or f"User{chat_id}"
        else:
            chat["title"] = title or f"Chat {chat_id}"
        if is_forum:
            chat["is_forum"] = True
        self.chats[chat_id] = chat
        return chat

    def add_topic(self, chat_id: int, thread_id: int) -> None:
        """A forum topic (or reply thread) now exists in the chat."""
        self.topics[chat_id].add(thread_id)

    def chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id not in self.chats:
            self.add_chat(chat_id, "private" if chat_id > 0 else "supergroup")
        return self.chats[chat_id]

    @staticmethod
    def user(
        user_id: int, first_name: str = "", username: str | None = None, language_code: str | None = None
    ) -> dict[str, Any]:
        """A Bot API User; `language_code` is "IETF language tag of the user's language", optional
        (https://core.telegram.org/bots/api#user): sent for users, never for bots or channels."""
        u: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
        if username:
            u["username"] = username
        if language_code:
            u["language_code"] = language_code
        return u

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """status: creator, administrator, member, restricted, left, kicked."""
        self.members[(chat_id, user_id)] = status

    def fail_chat(self, chat_id: int, kind: str | None, *, after: int = 0) -> None:
        """kind: "blocked"/"kicked" (403), "not_found" (400 chat not found), "no_rights" (400 not
        enough rights to send: the group restricts members, an admin can lift it), "bad_request"
        (another 400), "server_error" (500); None heals. `after`: first accept that many more sends."""
        self._failures.pop(chat_id, None)
        self._fail_after.pop(chat_id, None)
        if kind is not None and after:
            self._fail_after[chat_id] = (after, kind)
        elif kind is not None:
            self._failures[chat_id] = (kind, 0)

    def flood(self, chat_id: int, retry_after: int, *, seconds: float | None = None) -> None:
        """Answer 429 retry_after for sends to this chat for `seconds` (default retry_after)."""
        self._flood[chat_id] = (time.monotonic() + (seconds if seconds is not None else retry_after), retry_after)

    def inject_conflicts(self, count: int) -> None:
        """The next `count` getUpdates calls answer 409, as when another instance polls."""
        self._pending_conflicts += count

    def migrate(self, old_id: int, new_id: int) -> None:
        """The group becomes a supergroup: a service message in the old chat, sends there answer 400
        with migrate_to_chat_id."""
        self._failures[old_id] = ("migrated", new_id)
        self.add_chat(new_id, "supergroup", self.chat(old_id).get("title", ""))
        self._message_update(old_id, self.user(1), None, extra={"migrate_to_chat_id": new_id})

    def user_says(
        self,
        chat_id: int,
        user: dict[str, Any],
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
        sender_chat: dict[str, Any] | None = None,
        edited: bool = False,
    ) -> dict[str, Any]:
        """A user (or anonymous admin/channel via sender_chat) posts `text`; returns the message."""
        extra: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            extra["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if thread_id is not None:
            extra |= {"message_thread_id": thread_id, "is_topic_message": True}
            self.add_topic(chat_id, thread_id)
        if reply_to is not None:
            extra["reply_to_message"] = self.messages[(chat_id, reply_to)]
        if sender_chat is not None:
            extra["sender_chat"] = sender_chat
            if sender_chat["id"] != chat_id:
                extra["is_automatic_forward"] = True
        return self._message_update(chat_id, user, None, extra=extra, edited=edited)

    def press(self, chat_id: int, message_id: int, data: str, user: dict[str, Any]) -> str:
        """A user presses an inline button with this callback_data; returns the query id."""
        query_id = str(next(self._query_ids))
        self._open_queries[query_id] = time.monotonic()
        self.inject(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "chat_instance": f"ci{chat_id}",
                    "data": data,
                    "message": self.messages[(chat_id, message_id)],
                }
            }
        )
        return query_id

    def bot_removed(self, chat_id: int, by: dict[str, Any], status: str = "kicked") -> None:
        new: dict[str, Any] = {"user": self.bot, "status": status}
        if status == "kicked":
            new["until_date"] = 0
        self.inject(
            {
                "my_chat_member": {
                    "chat": self.chat(chat_id),
                    "from": by,
                    "date": int(time.time()),
                    "old_chat_member": {"user": self.bot, "status": "member"},
                    "new_chat_member": new,
                }
            }
        )

    def user_edits(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The author edits their message: an `edited_message` (or `edited_channel_post`) update
        with the same message_id, the new text and an edit_date."""
        # A new dict: the original may still sit, unfetched, in an earlier update.
        message = {**self.messages[(chat_id, message_id)], "text": text, "edit_date": int(time.time())}
        message.pop("entities", None)
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self.messages[(chat_id, message_id)] = message
        kind = "edited_channel_post" if message["chat"]["type"] == "channel" else "edited_message"
        self.inject({kind: message})
        return message

    def channel_posts(self, chat_id: int, text: str) -> dict[str, Any]:
        """An administrator posts in a channel: a `channel_post` with sender_chat = the channel and
        no `from` (Bot API Message: from is empty for messages sent to channels)."""
        chat = self.chats.get(chat_id) or self.add_chat(chat_id, "channel")
        message: dict[str, Any] = {
            "message_id": next(self._msg_ids[chat_id]),
            "date": int(time.time()),
            "chat": chat,
            "sender_chat": chat,
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self.messages[(chat_id, message["message_id"])] = message
        self.inject({"channel_post": message})
        return message

    def _remember_allowed(self, p: dict[str, Any]) -> None:
        allowed = p.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed) if allowed.startswith("[") else None
        if isinstance(allowed, list):
            self.allowed_updates = [str(a) for a in allowed] or None

    def _allowed(self, update: dict[str, Any]) -> bool:
        kinds = [k for k in update if k != "update_id"]
        default_off = {"chat_member", "message_reaction", "message_reaction_count"}
        if self.allowed_updates is None:
            return not (set(kinds) & default_off)
        return bool(set(kinds) & set(self.allowed_updates))

    def inject(self, update: dict[str, Any]) -> int:
        """Queue an update; one of a type the bot did not ask for is never created (BAPI
        getUpdates allowed_updates: "Specify a JSON-serialized list of the update types you want
        your bot to receive"). Returns its update_id (0 when filtered out)."""
        if not self._allowed(update):
            return 0
        update_id = next(self._update_ids)
        update = {"update_id": update_id, **update}
        self._updates.append(update)
        if self.webhook_url:
            self._pushed.set()
        asyncio.get_running_loop().create_task(self._notify())
        return update_id

    def calls_to(self, method: str, status: int | None = 200) -> list[Call]:
        return [c for c in self.calls if c.method == method and (status is None or c.status == status)]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Accepted sendMessage calls, optionally for one chat."""
        return [c for c in self.calls_to("sendMessage") if chat_id is None or int(c.params["chat_id"]) == chat_id]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 30.0,  # a deadline, not a wait: a loaded machine may need this long
        *,
        status: int | None = 200,
    ) -> Call:
        """The first recorded call to `method` (with `status`) matching `predicate`; waits for it."""
        deadline = time.monotonic() + timeout
        async with self._called:
            while True:
                for call in self.calls:
                    if (
                        call.method == method
                        and (status is None or call.status == status)
                        and (predicate is None or predicate(call))
                    ):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no {method} call matched within {timeout}s; calls: {[c.method for c in self.calls]}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._called.wait(), left)

    # --- the API -----------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        method = request.path_params["method"]
        params = await self._params(request)
        if request.path_params["token"] != self.token:
            return await self._record(method, params, _error(401, "Unauthorized"))
        if "chat_id" in params and (refused := self._missing(params)):
            return await self._record(method, params, refused)
        handler = getattr(self, f"_api_{method}", None)
        # FAQ: the limits are on messages a bot sends, whatever the method. Modelled methods
        # (sendMessage, sendPhoto, editMessageText…) throttle after validating; any other
        # send/edit/copy/forward meets the limits here.
        flooded = handler is None and method.startswith(_FLOODED) and method != "sendChatAction"
        if flooded and "chat_id" in params and (answer := self._throttle(int(params["chat_id"]))):
            return await self._record(method, params, answer)
        if handler is None:
            return await self._record(method, params, _error(404, "Not Found"))
        if method == "getUpdates":
            return await self._record(method, params, await self._get_updates(params, request))
        return await self._record(method, params, await handler(params))

    @staticmethod
    async def _params(request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if uploads.is_multipart(content_type):
            return _multipart_params(content_type, await request.body())
        if content_type.startswith("application/json"):
            body = await request.body()
            return json.loads(body) if body else {}
        # PTB posts application/x-www-form-urlencoded (no files here); parsed by hand so the fake
        # needs no python-multipart.
        form = (await request.body()).decode()
        params: dict[str, Any] = {}
        for key, value in parse_qsl(form, keep_blank_values=True):
            params[key] = value
            if value[:1] in "[{":  # PTB sends nested objects as JSON strings in the form
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(value)
        return params

    async def _record(self, method: str, params: dict[str, Any], answer: tuple[int, dict[str, Any]]) -> Response:
        status, body = answer
        self.calls.append(Call(method, params, time.monotonic(), status, body.get("result")))
        async with self._called:
            self._called.notify_all()
        await self.answering.wait()
        return JSONResponse(body, status_code=status)

    async def _api_getMe(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return _ok(self.bot)

    async def _api_setMyCommands(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """https://core.telegram.org/bots/api#setmycommands: at most 100 BotCommands (command: 1-32
        of a-z, 0-9, _; description: 1-256 characters), an optional BotCommandScope and an optional
        two-letter ISO 639-1 language_code. The error names are those of the MTProto method behind
        it (https://core.telegram.org/method/bots.setBotCommands)."""
        commands = p.get("commands")
        if not isinstance(commands, list):
            return _error(400, 'Bad Request: field "commands" must be an Array')
        if len(commands) > 100:
            return _error(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        for c in commands:
            if not isinstance(c, dict) or not _BOT_COMMAND.fullmatch(str(c.get("command", ""))):
                return _error(400, "Bad Request: BOT_COMMAND_INVALID")
            if not isinstance(c.get("description"), str) or not 1 <= len(c["description"]) <= 256:
                return _error(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        scope = p.get("scope") or {"type": "default"}
        problem = _scope_problem(scope)
        if problem:
            return _error(400, f"Bad Request: {problem}")
        language = str(p.get("language_code") or "")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            return _error(400, "Bad Request: invalid language code specified")
        key = (json.dumps(scope, sort_keys=True), language)
        self.menus[key] = list(commands)
        if key == (json.dumps({"type": "default"}), ""):
            self.commands = list(commands)
        return _ok(True)

    def menu(self, scope: str, language: str = "") -> list[dict[str, Any]] | None:
        """The list set for a scope type without chat ids ("default", "all_private_chats", ...)."""
        return self.menus.get((json.dumps({"type": scope}), language))

    async def _api_deleteWebhook(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.webhook_url = self.webhook_secret = ""
        return _ok(True)

    async def _api_setWebhook(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = str(p.get("url", ""))
        if url and (problem := webhook_url_problem(url)):
            return _error(400, f"Bad Request: bad webhook: {problem}")
        self.webhook_url = url
        self.webhook_secret = str(p.get("secret_token", ""))
        self._remember_allowed(p)
        if self._poll:
            self._poll.terminated.set()
        if url and self._pusher is None:
            self._pusher = asyncio.get_running_loop().create_task(self._push_loop())
        self._pushed.set()
        return _ok(True)

    async def _api_getWebhookInfo(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.allowed_updates is not None:
            info["allowed_updates"] = self.allowed_updates
        if self._webhook_error:
            info |= {"last_error_date": self._webhook_error[0], "last_error_message": self._webhook_error[1]}
        return _ok(info)

    async def _api_getUpdates(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise AssertionError("dispatched through _get_updates")

    async def _get_updates(self, p: dict[str, Any], request: Request) -> tuple[int, dict[str, Any]]:
        if self.webhook_url:
            return _error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            )
        if self._pending_conflicts:
            self._pending_conflicts -= 1
            self.conflicts_served += 1
            return _error(
                409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
            )
        if self._poll is not None:
            # Like Telegram: a newer getUpdates terminates the one still waiting.
            self._poll.terminated.set()
        poll = self._poll = _Poll()
        self._remember_allowed(p)
        offset = int(p.get("offset") or 0)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = int(p.get("limit") or 100)
        deadline = time.monotonic() + float(p.get("timeout") or 0)
        try:
            while True:
                if poll.terminated.is_set():
                    if await request.is_disconnected():
                        return _error(499, "client went away")  # nobody hears it: not a conflict
                    self.conflicts_served += 1
                    return _error(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                    )
                # Updates of a kind not allowed are never sent (Telegram drops them).
                self._updates = [u for u in self._updates if self._allowed(u)]
                if self._updates:
                    return _ok(self._updates[:limit])
                left = deadline - time.monotonic()
                if left <= 0:
                    return _ok([])
                waiter = asyncio.ensure_future(self._wait_update())
                stopper = asyncio.ensure_future(poll.terminated.wait())
                await asyncio.wait({waiter, stopper}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
        finally:
            if self._poll is poll:
                self._poll = None

    async def _api_sendMessage(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = int(p["chat_id"])
        if chat_id in self.stall:
            await asyncio.sleep(self.stall[chat_id])
        refused = self._refuse(chat_id) or self._validate(p, chat_id)
        if refused:
            return refused
        flooded = self._throttle(chat_id)
        if flooded:
            return flooded
        message = self._store(chat_id, self.bot, p)
        if chat_id in self._fail_after:
            left, kind = self._fail_after[chat_id]
            if left <= 1:
                del self._fail_after[chat_id]
                self._failures[chat_id] = (kind, 0)
            else:
                self._fail_after[chat_id] = (left - 1, kind)
        return _ok(message)

    async def _api_sendPhoto(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """sendPhoto with an uploaded file (multipart); limits in `platform_fakes.uploads`."""
        chat_id = int(p["chat_id"])
        refused = self._refuse(chat_id)
        if refused:
            return refused
        problem = uploads.telegram_photo_problem(_photo_upload(p))
        if problem:
            return _error(400, problem)
        if problem := _keyboard_problem(p.get("reply_markup")):
            return _error(400, f"Bad Request: {problem}")
        try:
            caption = self._visible({"text": p.get("caption", ""), "parse_mode": p.get("parse_mode", "")})
        except ParseError as exc:
            return _error(400, f"Bad Request: can't parse entities: {exc}")
        if utf16_len(caption) > uploads.TELEGRAM_CAPTION_MAX:
            return _error(400, "Bad Request: message caption is too long")
        flooded = self._throttle(chat_id)
        if flooded:
            return flooded
        message = self._store(chat_id, self.bot, {**p, "text": ""})
        del message["text"]
        upload = _photo_upload(p)
        assert upload is not None
        message["photo"] = uploads.photo_sizes(upload, f"AgAC{chat_id}x{message['message_id']}")
        if caption:
            message["caption"] = caption
        return _ok(message)

    async def _api_editMessageText(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = int(p["chat_id"])
        refused = self._refuse(chat_id) or self._validate(p, chat_id)
        if refused:
            return refused
        old = self.messages.get((chat_id, int(p["message_id"])))
        if old is None or old["from"]["id"] != self.bot["id"]:
            return _error(400, "Bad Request: message to edit not found")
        text = self._visible(p)
        markup = p.get("reply_markup")
        if old.get("text") == text and old.get("reply_markup") == markup:
            return _error(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            )
        flooded = self._throttle(chat_id)
        if flooded:
            return flooded
        old["text"] = text
        old["edit_date"] = int(time.time())
        if markup:
            old["reply_markup"] = markup
        else:
            old.pop("reply_markup", None)
        return _ok(old)

    async def _api_answerCallbackQuery(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        query_id = str(p.get("callback_query_id"))
        pressed = self._open_queries.pop(query_id, None)
        # BAPI answerCallbackQuery: clients show a progress bar until it is called; an answer
        # after the (undocumented) window, or a second one, is refused.
        if pressed is None or time.monotonic() - pressed > self.callback_window:
            return _error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return _ok(True)

    async def _api_deleteMessage(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id, message_id = int(p["chat_id"]), int(p["message_id"])
        allowed = self.can_delete.get(chat_id, self.chats[chat_id]["type"] == "private")
        if not allowed or (chat_id, message_id) not in self.messages:
            return _error(400, "Bad Request: message can't be deleted")
        del self.messages[(chat_id, message_id)]
        return _ok(True)

    async def _api_getChatMember(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id, user_id = int(p["chat_id"]), int(p["user_id"])
        refused = self._refuse(chat_id)
        if refused:
            return refused
        chat = self.chats[chat_id]
        # BAPI getChatMember: "only guaranteed to work for other users if the bot is an
        # administrator in the chat". A channel's member list, and a supergroup's whose members
        # are hidden, are closed to a bot that is not an administrator.
        closed = chat["type"] == "channel" or chat.get("has_hidden_members")
        if closed and chat_id not in self.bot_admin and user_id != self.bot["id"]:
            return _error(400, "Bad Request: member list is inaccessible")
        return _ok(_member(self.user(user_id), self.members.get((chat_id, user_id), "member")))

    # --- internals ---------------------------------------------------------------------------

    def _refuse(self, chat_id: int) -> tuple[int, dict[str, Any]] | None:
        failure = self._failures.get(chat_id)
        if failure is None:
            return None
        kind, new_id = failure
        if kind == "blocked":
            return _error(403, "Forbidden: bot was blocked by the user")
        if kind == "kicked":
            return _error(403, "Forbidden: bot was kicked from the supergroup chat")
        if kind == "not_found":
            return _error(400, "Bad Request: chat not found")
        if kind == "no_rights":
            return _error(400, "Bad Request: not enough rights to send text messages to the chat")
        if kind == "bad_request":
            return _error(400, "Bad Request: wrong parameter action in request")
        if kind == "server_error":
            return _error(500, "Internal Server Error")
        return _error(400, "Bad Request: group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": new_id})

    def _missing(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """A chat the bot never met, or a thread that does not exist in it (BAPI: chat_id is the
        "unique identifier for the target chat"; message_thread_id "of the target message thread
        (topic) of the forum")."""
        try:
            chat_id = int(p["chat_id"])
        except (TypeError, ValueError):
            return _error(400, "Bad Request: chat not found")  # @username chats are not modelled
        if chat_id not in self.chats:
            return _error(400, "Bad Request: chat not found")
        if chat_id in self._failures:
            return None  # the chat's own state (blocked, migrated) answers first, in the handler
        thread = p.get("message_thread_id")
        if thread and int(thread) not in self.topics[chat_id]:
            return _error(400, "Bad Request: message thread not found")
        return None

    def _validate(self, p: dict[str, Any], chat_id: int) -> tuple[int, dict[str, Any]] | None:
        if problem := _keyboard_problem(p.get("reply_markup")):
            return _error(400, f"Bad Request: {problem}")
        try:
            if chat_id in self.reject_html and str(p.get("parse_mode", "")).upper() == "HTML":
                raise ParseError('Unsupported start tag "x" at byte offset 0')
            text = self._visible(p)
        except ParseError as exc:
            return _error(400, f"Bad Request: can't parse entities: {exc}")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        return None

    @staticmethod
    def _visible(p: dict[str, Any]) -> str:
        text = str(p.get("text", ""))
        return visible_text(text) if str(p.get("parse_mode", "")).upper() == "HTML" else text

    def _throttle(self, chat_id: int) -> tuple[int, dict[str, Any]] | None:
        now = time.monotonic()
        flood = self._flood.get(chat_id)
        if flood and flood[0] > now:
            return _error(429, f"Too Many Requests: retry after {flood[1]}", {"retry_after": flood[1]})
        if self.limits is None:
            return None
        lim = self.limits
        bucket = self._chat_buckets.setdefault(chat_id, _Bucket(lim.per_chat_burst, lim.per_chat_rate))
        waits = [bucket.wait_for_token(now)]
        window = self._group_windows[chat_id]
        if chat_id < 0 and lim.per_group:
            count, period = lim.per_group
            while window and window[0] <= now - period:
                window.popleft()
            waits.append(window[0] + period - now if len(window) >= count else 0.0)
        assert self._global is not None
        waits.append(self._global.wait_for_token(now))
        wait = max(waits)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            return _error(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})
        bucket.take()
        self._global.take()
        if chat_id < 0 and lim.per_group:
            window.append(now)
        return None

    def _store(self, chat_id: int, sender: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._msg_ids[chat_id]),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": sender,
            "text": self._visible(p),
        }
        markup = p.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        if p.get("message_thread_id"):
            message |= {"message_thread_id": int(p["message_thread_id"]), "is_topic_message": True}
        self.messages[(chat_id, message["message_id"])] = message
        return message

    def _message_update(
        self,
        chat_id: int,
        user: dict[str, Any],
        p: dict[str, Any] | None,
        *,
        extra: dict[str, Any],
        edited: bool = False,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._msg_ids[chat_id]),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": user,
            **extra,
        }
        self.messages[(chat_id, message["message_id"])] = message
        self.inject({"edited_message" if edited else "message": message})
        return message

    async def _wait_update(self) -> None:
        async with self._new_update:
            await self._new_update.wait()

    async def _notify(self) -> None:
        async with self._new_update:
            self._new_update.notify_all()

    async def _push_loop(self) -> None:
        """Deliver queued updates to the webhook in order. BAPI setWebhook: "In case of an
        unsuccessful request (a request with response HTTP status code different from 2XY), we
        will repeat the request and give up after a reasonable amount of attempts." """
        while True:
            await self._pushed.wait()
            self._pushed.clear()
            while self.webhook_url and self._updates:
                update = self._updates[0]
                for attempt in range(self.webhook_attempts):
                    if await self._push(update):
                        break
                    await asyncio.sleep(min(self.webhook_retry * 2**attempt, 30 * self.webhook_retry))
                else:
                    self.webhook_dropped.append(update["update_id"])
                self._updates = [u for u in self._updates if u["update_id"] != update["update_id"]]

    async def _push(self, update: dict[str, Any]) -> bool:
        assert self._http is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret} if self.webhook_secret else {}
        url = self.webhook_url
        if self.webhook_origin:
            parts = urlsplit(url)
            url = self.webhook_origin + parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            response = await self._http.post(url, json=update, headers=headers)
        except httpx.HTTPError as exc:
            self.webhook_deliveries.append(0)
            self._webhook_error = (int(time.time()), f"Connection failed: {type(exc).__name__}")
            return False
        self.webhook_deliveries.append(response.status_code)
        if 200 <= response.status_code < 300:
            return True
        self._webhook_error = (int(time.time()), f"Wrong response from the webhook: {response.status_code}")
        return False


_FLOODED = ("send", "edit", "copy", "forward")


def webhook_url_problem(url: str) -> str | None:
    """Why setWebhook refuses `url` (BAPI setWebhook: an HTTPS URL, ports 443, 80, 88 or 8443), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        return "invalid webhook URL specified"
    if parts.scheme != "https" or not parts.hostname:
        return "HTTPS url must be provided for webhook"
    if port not in WEBHOOK_PORTS:
        return "Webhook can be set up only on ports 80, 88, 443 or 8443"
    return None


def _keyboard_problem(markup: Any) -> str | None:
    """BAPI InlineKeyboardButton.callback_data: "Data to be sent in a callback query to the bot
    when the button is pressed, 1-64 bytes"; Telegram answers BUTTON_DATA_INVALID otherwise."""
    if not isinstance(markup, dict):
        return None
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                return "BUTTON_DATA_INVALID"
    return None


def _multipart_params(content_type: str, body: bytes) -> dict[str, Any]:
    """Form fields like the urlencoded path (nested objects are JSON strings) plus `_files`."""
    fields, files = uploads.parse_multipart(content_type, body)
    params: dict[str, Any] = {}
    for key, value in fields.items():
        if value[:1] in "[{":
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
                continue
        params[key] = value
    params["_files"] = files
    return params


def _photo_upload(p: dict[str, Any]) -> uploads.Upload | None:
    # A file goes either in its own part named after the parameter, or as "attach://<part>".
    files: dict[str, uploads.Upload] = p.get("_files") or {}
    ref = p.get("photo")
    if isinstance(ref, str) and ref.startswith("attach://"):
        return files.get(ref.removeprefix("attach://"))
    return files.get("photo")


_BOT_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
# https://core.telegram.org/bots/api#botcommandscope: the seven scope types and the ids each takes.
_SCOPES: dict[str, tuple[str, ...]] = {
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}


def _scope_problem(scope: object) -> str:
    if not isinstance(scope, dict) or scope.get("type") not in _SCOPES:
        return "can't parse BotCommandScope"
    wanted = _SCOPES[str(scope["type"])]
    if set(scope) - {"type", *wanted} or any(k not in scope for k in wanted):
        return "can't parse BotCommandScope"
    return ""


def _ok(result: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"ok": True, "result": result}


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return code, body


def _member(user: dict[str, Any], status: str) -> dict[str, Any]:
    """A ChatMember object with every field the Bot API requires for its status."""
    member: dict[str, Any] = {"user": user, "status": status}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member |= {
            key: False
            for key in (
                "can_be_edited",
                "is_anonymous",
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
            )
        }
    elif status == "restricted":
        member |= {"until_date": 0, "is_member": True} | {
            key: False
            for key in (
                "can_send_messages",
                "can_send_audios",
                "can_send_documents",
                "can_send_photos",
                "can_send_videos",
                "can_send_video_notes",
                "can_send_voice_notes",
                "can_send_polls",
                "can_send_other_messages",
                "can_add_web_page_previews",
                "can_change_info",
                "can_invite_users",
                "can_pin_messages",
                "can_manage_topics",
            )
        }
    elif status == "kicked":
        member["until_date"] = 0
    return member
