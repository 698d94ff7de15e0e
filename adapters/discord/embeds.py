"""Renders a core `Message` as Discord embeds within Discord's limits, splitting long text.

Pure: no I/O and no client objects beyond `discord.Embed`. Every untrusted string that Discord
renders as markdown is escaped here (markdown and mentions); the adapter still sends every
message with `AllowedMentions.none()`, so a missed escape can never ping anyone.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import discord

from relay.models import Action, Image, Message

# Discord's limits (discord-api-docs resources/message.mdx). Discord
# counts characters as code points, which is what len() measures.
CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000  # title + description + fields + footer of ALL embeds of one message
EMBEDS_MAX = 10
BUTTONS_MAX = 25  # 5 action rows of 5 buttons
BUTTON_LABEL_MAX = 80
URL_MAX = 2048

COLOUR = discord.Colour(0x3B82F6)
EMPTY = "\u200b"  # Discord rejects empty field names/values; a zero-width space renders as nothing
ELLIPSIS = "…"
# A description piece shorter than this is not worth an embed of its own: start a new message.
_MIN_PIECE = 256

# "@everyone"/"@here" and the start of user, role, channel and slash-command mentions. A zero-width
# space after "@" or "<" keeps the text readable and stops Discord from parsing a mention.
_MENTION = re.compile(r"@(?=everyone|here)|<(?=@[!&]?\d|#\d|/[^\s>]+:\d)")
_URL = re.compile(r"https?://[^\s<>\"]+")
# discord.utils' link pattern: what Discord autolinks, left verbatim so it stays clickable.
_LINK = r"<[^: >]+:\/[^ >]+>|(?:https?|steam):\/\/[^\s<]+[^<.,:;\"\'\]\s]"
_INLINE = re.compile(rf"(?P<url>{_LINK})|(?P<md>[\\*_~|`\[\]])")
# Headings, quotes, list items and subtext ("-#") act only at the start of a line.
_LINE_START = re.compile(r"^([ \t]*)(#|>|-|\d+\.)")
# Every line break Python's str.splitlines knows; escape_markdown's line-start patterns use \s*,
# which would otherwise run across a line break and leave the next line's "-" or "#" active.
_LINE_BREAK = re.compile(r"(\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029])")


@dataclass(frozen=True, slots=True)
class RenderedPart:
    """One Discord message: up to ten embeds, and the buttons if it is the last part."""

    embeds: tuple[discord.Embed, ...]
    actions: tuple[Action, ...] = ()
    image: Image | None = None  # upload with this part; its first embed shows it (attachment://)

    def files(self) -> list[discord.File]:
        """A fresh `discord.File` per call: a File's stream is consumed by one request."""
        if self.image is None:
            return []
        return [discord.File(io.BytesIO(self.image.data), filename=attachment_name(self.image))]


def attachment_name(image: Image) -> str:
    """A file name `attachment://` can refer to: Discord matches it literally, so keep it plain."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", image.filename)[:100]
    return name if "." in name else f"{name or 'image'}.png"


def neutralise_mentions(text: str) -> str:
    return _MENTION.sub(lambda m: m.group(0) + EMPTY, text)


def escape(text: str) -> str:
    """Untrusted plain text -> markdown that Discord shows literally; URLs stay clickable.

    Follows `discord.utils.escape_markdown` (same characters, same link pattern) with two fixes
    the property test found: it escapes "[text](url)" as a whole, leaving markdown *inside*
    active ("[**x**](y)" still renders bold), and its line-start pattern `^\\s*-` runs across
    a blank line, escaping the wrong line. Here brackets are escaped one by one and each line
    is escaped on its own.
    """
    pieces = _LINE_BREAK.split(neutralise_mentions(text))
    # Odd indexes are the line breaks themselves.
    return "".join(p if i % 2 else _escape_line(p) for i, p in enumerate(pieces))


def _escape_line(line: str) -> str:
    line = _INLINE.sub(lambda m: m.group("url") or "\\" + m.group("md"), line)
    return _LINE_START.sub(_escape_marker, line, count=1)


def _escape_marker(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    if marker[-1] == "." and marker[:-1].isdigit():
        return indent + marker[:-1] + "\\."  # "1. " starts a numbered list
    return indent + "\\" + marker


def is_embed_url(link: str) -> bool:
    """Discord rejects the whole message (400) when an embed URL is not a plain http(s) URL."""
    return len(link) <= URL_MAX and _URL.fullmatch(link) is not None


def take(text: str, budget: int) -> tuple[str, str]:
    """Split plain `text` into (escaped head of at most `budget` characters, plain rest).

    The cut falls on a paragraph, line or word boundary when one lies in the second half of the
    window, and the separator at the cut is dropped. Each head is escaped on its own, so an
    escape sequence, a mention or a line-start marker is never cut in two.
    """
    limit = budget
    while True:
        cut, skip = _cut_point(text, limit)
        head = escape(text[:cut])
        if len(head) <= budget or cut <= 1:
            return head, text[cut + skip :]
        # Escaping only adds characters: shrink the window by the overshoot and try again.
        limit = max(1, min(cut - 1, limit - (len(head) - budget)))


def _cut_point(text: str, limit: int) -> tuple[int, int]:
    if len(text) <= limit:
        return len(text), 0
    for sep in ("\n\n", "\n", " "):
        i = text.rfind(sep, 0, limit + 1)
        if i >= max(1, limit // 2):
            return i, len(sep)
    return limit, 0


def truncate(escaped_or_plain: str, limit: int) -> str:
    return escaped_or_plain if len(escaped_or_plain) <= limit else escaped_or_plain[: limit - 1] + ELLIPSIS


def one_line(text: str, limit: int) -> str:
    """Escaped single-line text (titles, field names), cut with an ellipsis when too long."""
    flat = " ".join(text.split())
    head, rest = take(flat, limit)
    if not rest:
        return head
    head, _ = take(flat, limit - 1)
    return head + ELLIPSIS


class _Packer:
    """Fills messages with embeds while the per-message total and count allow."""

    def __init__(self) -> None:
        self.parts: list[list[discord.Embed]] = []
        self._embeds: list[discord.Embed] = []
        self._total = 0

    def room(self) -> int:
        return 0 if len(self._embeds) >= EMBEDS_MAX else EMBED_TOTAL_MAX - self._total

    @property
    def last(self) -> discord.Embed | None:
        return self._embeds[-1] if self._embeds else None

    def add(self, embed: discord.Embed) -> None:
        if len(embed) > self.room():
            self.flush()
        self._embeds.append(embed)
        self._total += len(embed)

    def grow(self, size: int) -> None:
        """Account for text added to `last` after it was packed."""
        self._total += size

    def flush(self) -> None:
        if self._embeds:
            self.parts.append(self._embeds)
        self._embeds, self._total = [], 0


def render(message: Message) -> list[RenderedPart]:
    """The message as one or more Discord messages; buttons go on the last one."""
    packer = _Packer()
    title = one_line(message.title, TITLE_MAX) if message.title.strip() else ""
    body = message.body
    url = message.link if title and is_embed_url(message.link) else ""
    if message.link and not url:
        # No title to hang the link on (or not a URL Discord accepts): show it as text.
        body = f"{body}\n{message.link}" if body else message.link

    pending_title = title
    while body:
        room = min(DESCRIPTION_MAX, packer.room() - len(pending_title))
        if room < _MIN_PIECE:
            packer.flush()
            continue
        description, body = take(body, room)
        if not description.strip():
            continue  # Discord rejects a whitespace-only description
        embed = discord.Embed(colour=COLOUR, title=pending_title or None, url=url or None, description=description)
        packer.add(embed)
        pending_title, url = "", ""
    if pending_title:
        packer.add(discord.Embed(colour=COLOUR, title=pending_title, url=url or None))

    for name, value in _fields(message):
        size = len(name) + len(value)
        last = packer.last
        if last is not None and len(last.fields) < FIELDS_MAX and size <= packer.room():
            last.add_field(name=name, value=value, inline=len(value) <= 40)
            packer.grow(size)
        else:
            embed = discord.Embed(colour=COLOUR)
            embed.add_field(name=name, value=value, inline=len(value) <= 40)
            packer.add(embed)

    # Discord shows footer text literally (no markdown, no mentions), so it is not escaped:
    # backslashes would be visible. Mentions are still broken up, like everywhere else, so no
    # rendered text of ours ever contains a live-looking "@everyone" (and a future Discord that
    # parsed footers could not ping). Neutralised before the cut, so the limit still holds.
    footer = truncate(neutralise_mentions(" ".join(message.footer.split())), FOOTER_MAX)
    if footer:
        last = packer.last
        if last is not None and len(footer) <= packer.room():
            last.set_footer(text=footer)
            packer.grow(len(footer))
        else:
            packer.add(discord.Embed(colour=COLOUR).set_footer(text=footer))

    if packer.last is None and not packer.parts:
        packer.add(discord.Embed(colour=COLOUR, description=EMPTY))
    packer.flush()
    actions = tuple(message.actions[:BUTTONS_MAX])
    final = len(packer.parts) - 1
    if message.image is not None:
        # The picture sits in the first embed, under its title and fields (the caption).
        packer.parts[0][0].set_image(url=f"attachment://{attachment_name(message.image)}")
    return [
        RenderedPart(tuple(embeds), actions if i == final else (), message.image if i == 0 else None)
        for i, embeds in enumerate(packer.parts)
    ]


def _fields(message: Message) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for field in message.fields:
        name = one_line(field.name, FIELD_NAME_MAX - 6) or EMPTY  # room for a " (12)" suffix
        rest = field.value.strip()
        if not rest:
            out.append((name, EMPTY))
            continue
        piece = 1
        while rest:
            value, rest = take(rest, FIELD_VALUE_MAX)
            if value.strip():
                out.append((name if piece == 1 else f"{name} ({piece})", value))
                piece += 1
    return out


def button_label(action: Action) -> str:
    """Button labels are plain text (no markdown), 1 to 80 characters."""
    label = " ".join(action.label.split()) or action.command
    return truncate(label, BUTTON_LABEL_MAX)
