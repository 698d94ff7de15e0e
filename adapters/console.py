"""A terminal chat for trying the relay: type commands, see notifications as plain text.

One chat ("console:local"), one user who is its administrator. Lines starting with "/" become
commands; buttons are shown as the commands they would run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from adapters.console_input import MAX_LINE, TOO_LONG, StdinLines, stdin_lines
from relay.adapter import Dispatch, OnChatChange
from relay.i18n import Catalogues, language_of
from relay.models import Action, ChatRef, Command, CommandSpec, Image, Message, UserRef
from relay.specs import BY_NAME
from relay.words import parse_words, split_command

log = logging.getLogger(__name__)


class LineSource(Protocol):
    async def readline(self) -> bytes: ...


class TextSink(Protocol):
    def write(self, text: str, /) -> object: ...
    def flush(self) -> object: ...


def action_hint(action: Action) -> str:
    """The command a button would run, in the spec's parameter order."""
    spec = BY_NAME.get(action.command)
    names = [p.name for p in spec.params] if spec else list(action.args)
    words = [action.args[n] for n in names if action.args.get(n)]
    if action.kind == "prompt" and action.text_param:
        words.append(f"<{action.text_param}>")
    return " ".join([f"/{action.command}", *words])


def plain(message: Message) -> str:
    lines = []
    if message.title:
        lines.append(f"== {message.title} ==")
    if message.body:
        lines.append(message.body)
    lines += [f"  {f.name}: {f.value}" for f in message.fields]
    if message.link:
        lines.append(message.link)
    if message.footer:
        lines.append(f"  ({message.footer})")
    if message.actions:
        lines.append("  → " + " · ".join(f"{a.label}: {action_hint(a)}" for a in message.actions))
    return "\n".join(lines)


class ConsoleAdapter:
    platform = "console"

    def __init__(
        self,
        reader: LineSource,
        out: TextSink,
        *,
        chat_id: str = "local",
        user_id: str = "you",
        image_dir: Path | None = None,
        locale: str = "",
    ) -> None:
        # The terminal's language (LC_ALL, LC_MESSAGES or LANG, as the composition root read it),
        # handed to the core like a platform's; and the console's own few words in it.
        self.locale = locale
        self._t = Catalogues.load().translator(language_of(locale))
        self._reader = reader
        self._out = out
        # A terminal cannot show a picture: it is saved here and its path printed under the caption.
        self.image_dir = image_dir or Path(tempfile.gettempdir()) / "aitrader-relay-images"
        self._image_seq = itertools.count(1)
        self.chat = ChatRef(self.platform, chat_id)
        self.user = UserRef(self.platform, user_id, "you", is_chat_admin=True)
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()  # set when the input ends (Ctrl-D)
        self._dispatch: Dispatch | None = None

    async def start(self, commands: Sequence[CommandSpec], dispatch: Dispatch, on_chat_change: OnChatChange) -> None:
        self._dispatch = dispatch
        self._task = asyncio.create_task(self._read(), name="console input")

    async def run_line(self, line: str) -> None:
        """Handle one typed line as the console user."""
        assert self._dispatch is not None
        name, rest = split_command(line)
        if not name:
            if line.strip() == "/":
                reply = await self._dispatch(Command("", {}, self.chat, self.user, True, locale=self.locale))
                for message in reply.messages:
                    await self._show(message)
            elif line.strip():
                self._print(self._t.gettext("Commands start with /. Try /help."))
            return
        spec = BY_NAME.get(name)
        args = parse_words(spec, rest) if spec else {}
        reply = await self._dispatch(Command(name, args, self.chat, self.user, True, locale=self.locale))
        for message in reply.messages:
            await self._show(message)

    async def _read(self) -> None:
        try:
            while True:
                try:
                    raw = await self._reader.readline()
                except ValueError:  # an asyncio StreamReader's line over its limit
                    raw = TOO_LONG
                if not raw:
                    return
                if raw == TOO_LONG:
                    self._print(
                        self._t.gettext("That line is longer than {n} KiB; it was ignored.", n=MAX_LINE // 1024)
                    )
                    continue
                try:
                    await self.run_line(raw.decode(errors="replace"))
                except Exception:
                    log.exception("console: command failed")
        finally:
            self.closed.set()  # end of input, or the reader failed: either way the user is gone

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        await self._show(message, prefix="(silent) " if silent else "")

    async def _show(self, message: Message, prefix: str = "") -> None:
        text = prefix + plain(message)
        if message.image is not None:
            path = await asyncio.to_thread(self._save, message.image)
            text += f"\n  [image: {path}]"
        self._print(text)

    def _save(self, image: Image) -> Path:
        self.image_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", image.filename)[:80] or "image.png"
        path = self.image_dir / f"{next(self._image_seq):04d}-{safe}"
        path.write_bytes(image.data)
        return path

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _print(self, text: str) -> None:
        try:
            self._out.write(text + "\n\n")
            self._out.flush()
        except (OSError, ValueError):  # stdout closed or a broken pipe: nobody is reading any more
            pass


async def stdin_reader() -> StdinLines:
    """Standard input as lines, whatever it is: a terminal, a pipe, a file, /dev/null or closed."""
    return await stdin_lines()


__all__ = ["ConsoleAdapter", "action_hint", "plain", "stdin_reader"]
