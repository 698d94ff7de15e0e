"""Turns Telegram updates into core calls: commands, button presses, prompt answers, chat changes.

Handlers only translate and hand over (`dispatch`, `on_chat_change`); business rules, including
refusing non-admins, live in the core. Replies go out through `Sender`, like every other send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from telegram import CallbackQuery, Chat, ChatMember, ForceReply, Update, User
from telegram import Message as TgMessage
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from adapters.telegram.buttons import ButtonStore
from adapters.telegram.markup import BOLD, Span, link
from adapters.telegram.sender import Sender
from relay.adapter import AdapterServices, ChatChange, Dispatch, OnChatChange
from relay.errors import DeliveryError, RetryLater, StoreUnavailable
from relay.i18n import N_, Catalogues, Translator, language_of
from relay.journal import is_reference
from relay.keys import TELEGRAM_ADMINS
from relay.models import Action, ChatRef, Command, CommandSpec, Message, Reply, UserRef
from relay.router import help_hint, unknown_command
from relay.words import parse_words, split_command

log = logging.getLogger(__name__)

REPLY_ATTEMPTS = 3
REPLY_MAX_WAIT = 30.0  # seconds a command's reply may wait for a chat's retry_after
_ADMIN_STATUSES = (ChatMember.OWNER, ChatMember.ADMINISTRATOR)
FAILED = N_("Something went wrong; try again in a minute.")
EXPIRED = N_("This button has expired; run the command again.")


def chat_ref(chat: Chat, message: TgMessage | None) -> ChatRef:
    """A forum topic is its own ChatRef; a reply thread in an ordinary group is not."""
    thread = None
    if message is not None and message.is_topic_message and message.message_thread_id:
        thread = str(message.message_thread_id)
    return ChatRef("telegram", str(chat.id), thread)


class Inbound:
    """PTB callbacks; one instance per started adapter."""

    def __init__(
        self,
        sender: Sender,
        buttons: ButtonStore,
        services: AdapterServices,
        specs: Mapping[str, CommandSpec],
        dispatch: Dispatch,
        on_chat_change: OnChatChange,
        catalogues: Catalogues | None = None,
    ) -> None:
        # For the adapter's own few words (expired buttons, prompts); the core localises its replies.
        self._catalogues = catalogues or Catalogues.load()
        self._sender = sender
        self._buttons = buttons
        self._services = services
        self._admins = services.store(TELEGRAM_ADMINS)  # a role may be stale 60 s (docs/architecture.md, "Security")
        self._specs = specs
        self._dispatch = dispatch
        self._on_chat_change = on_chat_change

    async def drop_replays(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Runs first: an update seen before (redelivered after a crash or a poller handover) stops here."""
        try:
            first = await self._services.first_time(str(update.update_id))
        except StoreUnavailable as exc:
            log.warning("replay check unavailable, handling update anyway error=%s", exc)
            return
        if not first:
            log.debug("update already handled update_id=%s", update.update_id)
            raise ApplicationHandlerStop

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A new message or channel post: migration notice, command or prompt answer."""
        message = update.message or update.channel_post
        if message is None:
            return
        chat = message.chat
        if message.migrate_to_chat_id:
            old = ChatRef("telegram", str(chat.id))
            new = ChatRef("telegram", str(message.migrate_to_chat_id))
            log.info("chat migrated chat=%s new=%s", old.key, new.key)
            await self._on_chat_change(ChatChange(old, "moved", new_chat=new, reason="group upgraded to a supergroup"))
            return
        text = message.text
        if not text:
            return
        if text.startswith("/"):
            await self._on_command(update, message, text, context.bot.username)
            return
        prompt_for = message.reply_to_message
        if prompt_for and prompt_for.from_user and prompt_for.from_user.id == context.bot.id and message.from_user:
            action = await self._buttons.take_prompt(str(chat.id), prompt_for.message_id, str(message.from_user.id))
            if action is not None:
                args = {**action.args, action.text_param: text}
                await self._run(update, action.command, args, message, delete_id=message.message_id)

    async def on_edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An edited message. Only /link is acted on: whoever edits a message into "/link <token>"
        has just shown the token, which must be deleted (and in a private chat, linked) like a new
        one; re-running any other command on an edit (/send, /reply) would repeat its effect."""
        message = update.edited_message or update.edited_channel_post
        if message is None or not message.text or not message.text.startswith("/"):
            return
        name, _ = split_command(message.text)
        if name == "link":
            await self._on_command(update, message, message.text, context.bot.username)

    async def _on_command(self, update: Update, message: TgMessage, text: str, bot_username: str) -> None:
        head = text.split(maxsplit=1)[0]
        addressed = "@" in head
        if addressed and head.partition("@")[2].lower() != (bot_username or "").lower():
            return  # meant for another bot in the group
        name, rest = split_command(text)
        if name.startswith("why_") and is_reference(name[4:]) and not rest.strip():
            name, rest = "why", name[4:]  # a tapped footer reference (markup.tappable_why)
        spec = self._specs.get(name)
        if spec is None:
            # In a group an unaddressed unknown command may belong to another bot: stay quiet there.
            if message.chat.type == ChatType.PRIVATE or addressed:
                ref = chat_ref(message.chat, message)
                t = self._t(message.from_user)
                answer = unknown_command(name, t) if name else help_hint(t)
                await self._reply(ref, answer, f"unknown:{update.update_id}")
            return
        await self._run(update, name, parse_words(spec, rest), message, delete_id=message.message_id)

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button press: answerCallbackQuery first, then authorise and dispatch.

        The client spins until the query is answered, and Telegram refuses an answer a few
        seconds after the press ("query is too old"), so nothing slow (the core, AI-Trader, a
        chat's rate limit) may come before it. Only decoding the button (one Redis read) does,
        so an expired button still says so in the answer. A failure after the answer is told
        in the chat, as any command's failure is."""
        query = update.callback_query
        if query is None:
            return
        origin = query.message
        if origin is None:  # a button on an inline-mode message: not ours
            await self._answer(query, None)
            return
        data = query.data or ""
        on_message = _on_keyboard(origin, data)
        if on_message is False:
            # Telegram sends the pressed message as it stored it: data that is not one of its
            # buttons was crafted by the client (e.g. a feed page's "replace" copied elsewhere).
            await self._answer(query, self._t(query.from_user).gettext(EXPIRED))
            return
        try:
            action = await self._buttons.decode(data, str(origin.chat.id), _label_of(origin, data))
        except Exception:
            log.exception("button data unreadable")
            await self._answer(query, self._t(query.from_user).gettext(FAILED))
            return
        if action is None or action.command not in self._specs:
            await self._answer(query, self._t(query.from_user).gettext(EXPIRED))
            return
        await self._answer(query, None)
        ref = chat_ref(origin.chat, origin if isinstance(origin, TgMessage) else None)
        try:
            if action.kind == "prompt":
                await self._prompt(ref, origin.chat, query.from_user, action)
                return
            user = await self._user(origin.chat, query.from_user, None, self._specs[action.command])
            command = Command(
                action.command,
                dict(action.args),
                ref,
                user,
                origin.chat.type == ChatType.PRIVATE,
                locale=query.from_user.language_code or "",
            )
            reply = await self._call(command)
            messages = reply.messages
            # An answer meant for the presser alone (e.g. "only Ann can confirm this trade") must not
            # replace a message the whole group sees: it goes below it instead.
            for_all = not (reply.private and origin.chat.type != ChatType.PRIVATE)
            replace = action.replace and for_all and on_message and messages and isinstance(origin, TgMessage)
            if replace and await self._edit(ref, origin.message_id, messages[0]):
                messages = messages[1:]
            await self._reply(ref, Reply(messages), f"cb:{update.update_id}")
        except Exception:
            log.exception("button press failed")
            await self._reply(
                ref, Reply.text(self._t(query.from_user).gettext(FAILED)), f"cb-failed:{update.update_id}"
            )

    @staticmethod
    async def _answer(query: CallbackQuery, note: str | None) -> None:
        try:
            await query.answer(text=note)
        except TelegramError as exc:
            log.info("answerCallbackQuery failed error=%s", type(exc).__name__)

    async def on_my_chat_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The bot's own membership changed: left or kicked means the chat is gone for us."""
        change = update.my_chat_member
        if change is None:
            return
        status = change.new_chat_member.status
        if status not in (ChatMember.LEFT, ChatMember.BANNED):
            return
        ref = ChatRef("telegram", str(change.chat.id))
        if change.chat.type == ChatType.PRIVATE:
            reason = "the user blocked the bot" if status == ChatMember.BANNED else "the user left"
        else:
            reason = "the bot was removed from the chat" if status == ChatMember.BANNED else "the bot left the chat"
        log.info("chat gone chat=%s status=%s", ref.key, status)
        await self._on_chat_change(ChatChange(ref, "gone", reason=reason))

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("update handling failed error=%s", type(context.error).__name__, exc_info=context.error)

    # --- helpers -------------------------------------------------------------------------

    async def _run(
        self, update: Update, name: str, args: Mapping[str, str], message: TgMessage, *, delete_id: int
    ) -> None:
        chat = message.chat
        user = message.from_user
        ref = chat_ref(chat, message)
        if user is None:
            if chat.type != ChatType.CHANNEL:
                return
            # A channel post has no author, only the channel, and only its administrators can post.
            who = UserRef("telegram", str(chat.id), chat.title or str(chat.id), is_chat_admin=True)
        else:
            who = await self._user(chat, user, message.sender_chat, self._specs.get(name))
        locale = (user.language_code if user is not None else None) or ""
        reply = await self._call(Command(name, dict(args), ref, who, chat.type == ChatType.PRIVATE, locale=locale))
        if reply.delete_command:
            # The command carried a secret: remove it first, then answer (failure is fine: no rights).
            await self._sender.delete(chat.id, delete_id)
        await self._reply(ref, reply, f"reply:{update.update_id}")

    async def _call(self, command: Command) -> Reply:
        try:
            return await self._dispatch(command)
        except Exception:
            log.exception("dispatch failed command=%s chat=%s", command.name, command.chat.key)
            return Reply.text(self._catalogues.translator(language_of(command.locale)).gettext(FAILED))

    def _t(self, user: User | None) -> Translator:
        """The adapter's own words in the user's Telegram language (`language_code`)."""
        return self._catalogues.translator(language_of(user.language_code if user is not None else None))

    async def _user(self, chat: Chat, user: User, sender_chat: Chat | None, spec: CommandSpec | None) -> UserRef:
        display = user.full_name or user.username or str(user.id)
        if sender_chat is not None:
            display = sender_chat.title or display
        is_admin = await self._is_admin(chat, user, sender_chat, spec)
        return UserRef("telegram", str(user.id), display, is_chat_admin=is_admin)

    async def _is_admin(self, chat: Chat, user: User, sender_chat: Chat | None, spec: CommandSpec | None) -> bool:
        if chat.type == ChatType.PRIVATE:
            return True  # the user owns a private chat with the bot
        if sender_chat is not None:
            # An anonymous admin posts as the group itself (from = GroupAnonymousBot); a linked
            # channel's auto-forward has sender_chat = the channel and is not an admin (docs/architecture.md, "Security").
            return sender_chat.id == chat.id
        if spec is None or not spec.admin_in_groups:
            return False  # only asked where the core needs it: each check costs an API call
        return await self._member_is_admin(chat.id, user.id)

    async def _member_is_admin(self, chat_id: int, user_id: int) -> bool:
        try:
            cached = await self._admins.get(chat_id, user_id)
        except StoreUnavailable:
            cached = None
        if cached is not None:
            return cached == "1"
        try:
            member = await self._sender.bot.get_chat_member(chat_id, user_id)
        except TelegramError as exc:
            log.info("getChatMember failed, treating as non-admin chat=%s error=%s", chat_id, type(exc).__name__)
            return False
        is_admin = member.status in _ADMIN_STATUSES
        with contextlib.suppress(StoreUnavailable):  # the cache only saves a call; the answer stands without it
            await self._admins.put(chat_id, user_id, value="1" if is_admin else "0")
        return is_admin

    async def _prompt(self, ref: ChatRef, chat: Chat, user: User, action: Action) -> None:
        """Ask for the free text with a ForceReply; the answer becomes the command (see on_message)."""
        t = self._t(user)
        spec = self._specs[action.command]
        param = next((p for p in spec.params if p.name == action.text_param), None)
        wanted = t.gettext(param.description) if param else action.text_param
        words = " ".join(action.args[p.name] for p in spec.params if p.name in action.args)
        spans: list[Span] = []
        if chat.type != ChatType.PRIVATE:
            # selective ForceReply shows the reply box only to users mentioned in the text.
            spans += [link(user.full_name or str(user.id), f"tg://user?id={user.id}"), Span(" ")]
        spans += [
            Span(f"{action.label}: /{action.command} {words}".rstrip(), (BOLD,)),
            Span("\n" + t.gettext("Write {what} as a reply to this message.", what=wanted)),
        ]
        markup = ForceReply(selective=True, input_field_placeholder=wanted[:64] or None)
        try:
            sent = await self._sender.post_spans(ref, spans, markup)
        except DeliveryError as exc:
            log.info("prompt not sent chat=%s error=%s", ref.key, type(exc).__name__)
            return
        await self._buttons.remember_prompt(str(chat.id), sent.message_id, action, str(user.id))

    async def _edit(self, ref: ChatRef, message_id: int, message: Message) -> bool:
        try:
            return await self._sender.edit(ref, message_id, message)
        except DeliveryError as exc:
            log.info("edit not possible chat=%s error=%s", ref.key, type(exc).__name__)
            return False

    async def _reply(self, ref: ChatRef, reply: Reply, key: str) -> None:
        """Send a command's reply; a short retry_after is waited out, other failures are logged."""
        for i, message in enumerate(reply.messages):
            for attempt in range(REPLY_ATTEMPTS):
                try:
                    await self._sender.send(ref, message, key=f"{key}:{i}")
                    break
                except RetryLater as exc:
                    if exc.seconds > REPLY_MAX_WAIT or attempt == REPLY_ATTEMPTS - 1:
                        log.info("reply dropped chat=%s retry_after=%s", ref.key, exc.seconds)
                        return
                    await asyncio.sleep(exc.seconds)
                except DeliveryError as exc:
                    log.info("reply not delivered chat=%s error=%s", ref.key, type(exc).__name__)
                    return


def _on_keyboard(origin: object, data: str) -> bool | None:
    """Whether `data` is one of the pressed message's buttons; None when Telegram no longer sends
    that message's content (older than 48 hours), so only the signature can vouch for it."""
    if not isinstance(origin, TgMessage):
        return None
    markup = origin.reply_markup
    return any(button.callback_data == data for row in (markup.inline_keyboard if markup else ()) for button in row)


def _label_of(origin: object, data: str | None) -> str:
    """The pressed button's label, read back from the message's keyboard (for logs and prompts)."""
    markup = getattr(origin, "reply_markup", None)
    for row in getattr(markup, "inline_keyboard", ()) or ():
        for button in row:
            if button.callback_data == data:
                return str(button.text)
    return ""
