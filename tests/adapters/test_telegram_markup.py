"""Rendering and splitting (adapters/telegram/markup.py): escaping, layout, the 4096-unit limit."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.telegram.markup import MAX_TEXT, Span, render, render_spans, safe_url, split_spans, utf16_len
from platform_fakes.telegram_api import visible_text
from relay.models import Message, MessageField

_ALLOWED = {"b", "i", "a", "pre"}  # pre: short fields as an aligned table (Bot API HTML style)


class _Checker(HTMLParser):
    """Parses one chunk back: tags must be known and balanced; collects the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED:
            self.errors.append(f"unknown tag {tag}")
        if tag == "a" and not any(
            k == "href" and v and v.startswith(("http://", "https://", "tg://")) for k, v in attrs
        ):
            self.errors.append("a without an http(s) href")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(chunk_html: str) -> str:
    checker = _Checker()
    checker.feed(chunk_html)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed {checker.stack}"
    return "".join(checker.text)


# Text that looks like markup, plus astral characters, combining marks, ZWJ emoji, surrogate-free.
_tricky = st.sampled_from(
    ["<b>", "</i>", "&amp;", "&", "<", ">", '"', "'", "<a href='x'>", "😀", "👩‍👩‍👧", "é", "\n", " ", "🇺🇦", "\u0301"]
)
_text = st.lists(st.one_of(st.text(st.characters(codec="utf-8"), max_size=30), _tricky), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(body=_text, title=_text, footer=_text, names=st.lists(_text, max_size=3), limit=st.integers(2, 300))
def test_every_chunk_is_valid_html_within_the_limit_and_the_text_survives(
    body: str, title: str, footer: str, names: list[str], limit: int
) -> None:
    message = Message(
        title=title,
        body=body,
        fields=tuple(MessageField(n, n[::-1]) for n in names),
        link="https://e.x/?a=1&b=<2>",
        footer=footer,
    )
    whole = render(message, limit=10**9)
    chunks = render(message, limit=limit)
    expected = whole[0].text if whole else ""
    assert "".join(c.text for c in chunks) == expected
    for chunk in chunks:
        assert 0 < utf16_len(chunk.text) <= limit
        assert _parse(chunk.html) == chunk.text
        assert visible_text(chunk.html) == chunk.text  # the fake's Telegram-like parser agrees


@settings(max_examples=200, deadline=None)
@given(body=_text.filter(bool), repeat=st.integers(1, 400))
def test_long_bodies_split_at_4096_units_and_concatenate_back(body: str, repeat: int) -> None:
    text = body * repeat
    chunks = render(Message(body=text))
    assert "".join(c.text for c in chunks) == text
    assert all(utf16_len(c.text) <= MAX_TEXT for c in chunks)
    assert all(visible_text(c.html) == c.text for c in chunks)
    # Greedy: every chunk but the last is at least half full (cuts look back at most half a window).
    assert all(utf16_len(c.text) >= MAX_TEXT // 2 - 1 for c in chunks[:-1])


def test_every_piece_is_escaped() -> None:
    message = Message(
        title="<b>Title</b> & co", body="1 < 2 > 0 &amp; <script>", fields=(MessageField("<i>", "a&b"),), footer="</i>"
    )
    (chunk,) = render(message)
    assert chunk.html == (
        "<b>&lt;b&gt;Title&lt;/b&gt; &amp; co</b>\n1 &lt; 2 &gt; 0 &amp;amp; &lt;script&gt;\n\n"
        "<b>&lt;i&gt;</b>: a&amp;b\n\n<i>&lt;/i&gt;</i>"
    )
    assert visible_text(chunk.html) == "<b>Title</b> & co\n1 < 2 > 0 &amp; <script>\n\n<i>: a&b\n\n</i>"


def test_links_only_for_http_urls_and_the_attribute_is_escaped() -> None:
    (chunk,) = render(Message(link='https://ai4trade.ai/s?id=1&x="y"'))
    assert (
        chunk.html
        == '<a href="https://ai4trade.ai/s?id=1&amp;x=&quot;y&quot;">https://ai4trade.ai/s?id=1&amp;x="y"</a>'
    )
    (chunk,) = render(Message(link="javascript:alert(1)"))
    assert "<a" not in chunk.html and chunk.text == "javascript:alert(1)"
    assert safe_url("http://e.x/a b") is None and safe_url("ftp://e.x") is None and safe_url("https://") is None


def test_a_style_that_straddles_a_cut_is_reopened_in_the_next_chunk() -> None:
    spans = [Span("ab"), Span("cdefgh", (("b", ""),)), Span("ij")]
    chunks = render_spans(spans, limit=4)
    assert [c.html for c in chunks] == ["ab<b>cd</b>", "<b>efgh</b>", "ij"]


def test_cuts_prefer_line_breaks_then_spaces_and_never_split_an_astral_character() -> None:
    assert [c.text for c in render(Message(body="aaaaaa\nbbb cccc"), limit=10)] == ["aaaaaa\n", "bbb cccc"]
    assert [c.text for c in render(Message(body="aaaa bbbb cccc"), limit=10)] == ["aaaa bbbb ", "cccc"]
    emoji = "😀" * 5  # 10 UTF-16 units
    assert [c.text for c in render(Message(body=emoji), limit=5)] == ["😀😀", "😀😀", "😀"]
    groups = split_spans([Span("e\u0301" * 4)], limit=3)  # a cut never strands the combining accent
    assert all(not g[0].text.startswith("\u0301") for g in groups)


def test_an_empty_message_renders_no_chunk() -> None:
    assert render(Message()) == []


def test_short_fields_are_an_aligned_table_and_long_ones_stay_lines() -> None:
    table = Message(fields=(MessageField("Side", "BUY"), MessageField("Quantity", "25"), MessageField("<x>", "a&b")))
    (chunk,) = render(table)
    assert chunk.html == "<pre>Side      BUY\nQuantity  25\n&lt;x&gt;       a&amp;b</pre>"
    assert visible_text(chunk.html) == "Side      BUY\nQuantity  25\n<x>       a&b"
    lines = Message(fields=(MessageField("Side", "BUY"), MessageField("Reply by bob", "x" * 41)))
    (chunk,) = render(lines)
    assert "<pre>" not in chunk.html and "<b>Side</b>: BUY" in chunk.html
