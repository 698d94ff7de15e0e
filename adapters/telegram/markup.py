"""Renders a relay `Message` as Telegram HTML and splits it to Telegram's length limit.

Pure functions, no I/O and no PTB: every piece of plain text is escaped here and nowhere else.
Splitting works on styled spans (the visible text), so a chunk never cuts a tag, an HTML entity
or a surrogate pair, and a style that straddles a cut is closed and re-opened in the next chunk.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from relay.journal import REF_LENGTH
from relay.models import Message

# A tag is (name, href); href is empty except for "a". Only tags Telegram's HTML mode knows.
Tag = tuple[str, str]
BOLD: Tag = ("b", "")
ITALIC: Tag = ("i", "")
PRE: Tag = ("pre", "")

# Fields this short form a table: a monospace block with the values in one column.
TABLE_NAME_MAX = 16
TABLE_VALUE_MAX = 40

# Telegram counts message length after entity parsing, in UTF-16 code units (Bot API sendMessage).
MAX_TEXT = 4096


@dataclass(frozen=True, slots=True)
class Span:
    """A run of plain (unescaped) visible text with the tags around it, outermost first."""

    text: str
    tags: tuple[Tag, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    """One sendable piece: `html` for parse_mode HTML, `text` is what the reader sees."""

    html: str
    text: str


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: astral characters (most emoji) take two units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def safe_url(url: str) -> str | None:
    """The URL if it is an absolute http(s) URL without spaces or control characters, else None."""
    url = url.strip()
    if not url or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def link(text: str, href: str, *tags: Tag) -> Span:
    """A span that is a link; the caller vouches for `href` (see `safe_url`)."""
    return Span(text, (*tags, ("a", href)))


def message_spans(message: Message) -> list[Span]:
    """Lay out a Message: bold title, body, "name: value" fields, link, italic footer."""
    blocks: list[list[Span]] = []
    head: list[Span] = []
    if message.title:
        head.append(Span(message.title, (BOLD,)))
    if message.body:
        if head:
            head.append(Span("\n"))
        head.append(Span(message.body))
    if head:
        blocks.append(head)
    if message.fields and is_table(message):
        width = max(len(f.name) for f in message.fields)
        rows = "\n".join(f"{f.name.ljust(width)}  {f.value}" for f in message.fields)
        blocks.append([Span(rows, (PRE,))])
    elif message.fields:
        lines: list[Span] = []
        for i, field in enumerate(message.fields):
            if i:
                lines.append(Span("\n"))
            lines += [Span(field.name, (BOLD,)), Span(": " + field.value)]
        blocks.append(lines)
    tail: list[Span] = []
    if message.link:
        url = safe_url(message.link)
        # A URL we refuse to link still reaches the reader, as inert text.
        tail.append(link(url, url) if url else Span(message.link))
    if message.footer:
        if tail:
            tail.append(Span("\n"))
        tail.append(Span(tappable_why(message.footer), (ITALIC,)))
    if tail:
        blocks.append(tail)
    spans: list[Span] = []
    for i, block in enumerate(blocks):
        if i:
            spans.append(Span("\n\n"))
        spans += block
    return [s for s in spans if s.text]


def is_table(message: Message) -> bool:
    """Two or more short one-line fields (a trade, a quote) read best as aligned lines."""
    return len(message.fields) >= 2 and all(
        0 < len(f.name) <= TABLE_NAME_MAX
        and len(f.value) <= TABLE_VALUE_MAX
        and "\n" not in f.name + f.value
        and f.name.isprintable()
        and f.value.isprintable()
        for f in message.fields
    )


def to_html(spans: Iterable[Span]) -> str:
    """Serialize spans; each span opens and closes its own tags, so output is always balanced."""
    out: list[str] = []
    for span in spans:
        for name, href in span.tags:
            out.append(f'<a href="{html.escape(href, quote=True)}">' if name == "a" else f"<{name}>")
        out.append(html.escape(span.text, quote=False))
        for name, _ in reversed(span.tags):
            out.append(f"</{name}>")
    return "".join(out)


def split_spans(spans: Sequence[Span], limit: int = MAX_TEXT) -> list[list[Span]]:
    """Cut the spans into groups whose visible text is at most `limit` UTF-16 units each.

    Cuts prefer a line break, then a space, in the second half of the window; only a single word
    longer than the window is cut mid-word (never inside a surrogate pair or before a combining mark).
    """
    if limit < 2:
        raise ValueError("limit must allow one astral character (2 UTF-16 units)")
    text = "".join(s.text for s in spans)
    cuts = _cut_points(text, limit)
    groups: list[list[Span]] = [[] for _ in range(len(cuts) + 1)]
    bounds = [0, *cuts, len(text)]
    pos = 0
    for span in spans:
        start, end = pos, pos + len(span.text)
        pos = end
        for g in range(len(groups)):
            lo, hi = max(start, bounds[g]), min(end, bounds[g + 1])
            if lo < hi:
                groups[g].append(Span(span.text[lo - start : hi - start], span.tags))
    return [g for g in groups if g]


def render(message: Message, limit: int = MAX_TEXT) -> list[Chunk]:
    """The message as HTML chunks, in order. An empty message renders as no chunk."""
    return render_spans(message_spans(message), limit)


def render_spans(spans: Sequence[Span], limit: int = MAX_TEXT) -> list[Chunk]:
    return [Chunk(to_html(group), "".join(s.text for s in group)) for group in split_spans(spans, limit)]


def _cut_points(text: str, limit: int) -> list[int]:
    cum = [0]
    for ch in text:
        cum.append(cum[-1] + (2 if ord(ch) > 0xFFFF else 1))
    cuts: list[int] = []
    start = 0
    while cum[-1] - cum[start] > limit:
        end = bisect_right(cum, cum[start] + limit) - 1  # furthest index that still fits
        cut = _best_break(text, start, end)
        cuts.append(cut)
        start = cut
    return cuts


def _best_break(text: str, start: int, end: int) -> int:
    """A cut index in (start, end]: after a newline, else after a space, else mid-word."""
    floor = start + (end - start) // 2
    for seps in ("\n", " \t"):
        for i in range(end - 1, floor - 1, -1):
            if text[i] in seps:
                return i + 1
    cut = end
    # Do not strand a combining mark, variation selector or joiner at the start of a chunk.
    for _ in range(8):
        if cut - 1 <= start or not _clings(text, cut):
            break
        cut -= 1
    return cut


def _clings(text: str, i: int) -> bool:
    """True when text[i] belongs to the character before it (so a cut before i splits a glyph)."""
    if i >= len(text):
        return False
    ch, prev = text[i], text[i - 1]
    return bool(unicodedata.combining(ch)) or "\ufe00" <= ch <= "\ufe0f" or ch == "\u200d" or prev == "\u200d"


_WHY_REF = re.compile(rf"/why ([a-z2-7]{{{REF_LENGTH}}})\b")


def tappable_why(footer: str) -> str:
    """Telegram sends a tapped command alone ("/why <ref>" would arrive as a bare "/why"), so the
    footer's reference is written as one command word, `/why_<ref>`, which `Inbound` reads back."""
    return _WHY_REF.sub(r"/why_\1", footer)
