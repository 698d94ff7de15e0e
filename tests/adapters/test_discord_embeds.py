"""Discord rendering: limits, splitting and escaping of hostile text (pure, no network)."""

from __future__ import annotations

import re

import discord
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord import embeds
from adapters.discord.embeds import render, take
from relay.models import Action, Message, MessageField

# discord.utils' link pattern: escape_markdown leaves URLs verbatim so they stay clickable.
_URL = re.compile(r"<[^: >]+:\/[^ >]+>|(?:https?|steam):\/\/[^\s<]+[^<.,:;\"\'\]\s]")
_LINE_START = re.compile(r"^[ \t]*(?:[#>-]|\d+\.)", re.MULTILINE)
_INLINE = re.compile(r"[*_~|`\\]|\[.+\]\(.+\)")


def active_markdown(text: str) -> list[str]:
    """Markdown Discord would act on: line-start markers, and inline markers that are left
    once URLs and escaped characters are taken out."""
    text = _URL.sub("u", text)
    return _LINE_START.findall(text) + _INLINE.findall(re.sub(r"\\.", "", text, flags=re.DOTALL))


def squash(text: str) -> str:
    """Text without whitespace, escapes and the zero-width spaces that break mentions."""
    return re.sub(r"\s+", "", text.replace("\u200b", "").replace("\\", ""))


def texts(part: embeds.RenderedPart) -> list[str]:
    """Every markdown-rendered string of a part (footers are shown literally and not escaped)."""
    out = []
    for e in part.embeds:
        out += [e.title or "", e.description or ""]
        out += [x for f in e.fields for x in (f.name or "", f.value or "")]
    return [t for t in out if t and t != embeds.EMPTY]


def assert_within_limits(parts: list[embeds.RenderedPart]) -> None:
    assert parts
    for part in parts:
        assert 1 <= len(part.embeds) <= 10
        assert sum(len(e) for e in part.embeds) <= 6000
        for e in part.embeds:
            d = e.to_dict()
            assert len(d.get("title", "")) <= 256
            assert len(d.get("description", "")) <= 4096
            assert d.get("description") is None or d["description"].strip()
            assert len(d.get("fields", [])) <= 25
            for f in d.get("fields", []):
                assert 1 <= len(f["name"]) <= 256 and 1 <= len(f["value"]) <= 1024
            assert len(d.get("footer", {}).get("text", "")) <= 2048
    assert all(not p.actions for p in parts[:-1]), "buttons go on the last part only"


HOSTILE = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("*_~`|>#-[]()<@&!:\\\n ")),
    ),
    max_size=200,
)
TOKENS = st.sampled_from(
    [
        "@everyone",
        "@here",
        "<@&123456789012345678>",
        "<@!123456789012345678>",
        "<@123>",
        "[click](https://evil.example/x_y)",
        "https://example.com/a_b*c",
        "```",
        "||spoiler||",
        "# heading",
        "> quote",
        "-# small",
        "**bold**",
        "\\",
        "\n\n",
        " " * 30,
    ]
)
UNTRUSTED = st.lists(st.one_of(HOSTILE, TOKENS), max_size=20).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    title=UNTRUSTED,
    body=st.one_of(UNTRUSTED, UNTRUSTED.map(lambda s: s * 6)),
    fields=st.lists(st.tuples(UNTRUSTED, UNTRUSTED), max_size=30),
    footer=UNTRUSTED,
)
def test_any_message_renders_within_limits_escaped_and_lossless(
    title: str, body: str, fields: list[tuple[str, str]], footer: str
) -> None:
    message = Message(
        title=title,
        body=body,
        fields=tuple(MessageField(n, v) for n, v in fields),
        footer=footer,
        actions=(Action("Show replies", "replies", {"signal_id": "1"}),),
    )
    parts = render(message)
    assert_within_limits(parts)
    assert parts[-1].actions == message.actions
    rendered = [t for p in parts for t in texts(p)]
    for text in rendered:
        assert active_markdown(text) == []
        assert not re.search(r"@(everyone|here)", text)
        assert not re.search(r"<[@#][!&]?\d", text)
    for e in (e for p in parts for e in p.embeds):
        assert not re.search(r"@(everyone|here)|<[@#][!&]?\d", e.footer.text or ""), "footers are neutralised too"
    # Nothing is lost but whitespace at the cuts (a field name is repeated on its continuations).
    descriptions = "".join(e.description or "" for p in parts for e in p.embeds)
    assert squash(descriptions) == squash(body)
    values = "".join(f.value or "" for p in parts for e in p.embeds for f in e.fields if f.value != embeds.EMPTY)
    assert squash(values) == squash("".join(v for _, v in fields))


def test_hostile_text_is_shown_literally() -> None:
    [part] = render(
        Message(title="**Free** @everyone", body="<@&123456789012345678> [click](https://evil.example) `x` ||s||")
    )
    embed = part.embeds[0]
    assert embed.title == "\\*\\*Free\\*\\* @\u200beveryone"
    assert embed.description == "<\u200b@&123456789012345678> \\[click\\](https://evil.example) \\`x\\` \\|\\|s\\|\\|"


def test_escaping_fixes_the_gaps_in_discord_py_escape_markdown() -> None:
    # escape_markdown leaves the inside of a masked link active and escapes the wrong line
    # when a list marker follows a blank line; both were found by the property test.
    assert discord.utils.escape_markdown("[**x**](y)") == "\\[**x**](y)"
    assert discord.utils.escape_markdown("a\n\n- item").endswith("\n- item")
    [part] = render(Message(body="[**x**](y)\n\n- item\n  1. two\n# h\n> q"))
    assert part.embeds[0].description == "\\[\\*\\*x\\*\\*\\](y)\n\n\\- item\n  1\\. two\n\\# h\n\\> q"


def test_urls_stay_clickable_and_the_link_becomes_the_title_url() -> None:
    [part] = render(Message(title="Signal", body="see https://example.com/a_b_c", link="https://ai4trade.ai/s/1_2"))
    embed = part.embeds[0]
    assert embed.url == "https://ai4trade.ai/s/1_2"
    assert embed.description == "see https://example.com/a_b_c"


def test_a_link_that_discord_would_reject_is_shown_as_text_instead() -> None:
    [part] = render(Message(title="T", body="b", link="javascript:alert(1)"))
    assert part.embeds[0].url is None
    assert (part.embeds[0].description or "").endswith("javascript:alert(1)")


def test_long_body_splits_at_paragraphs_and_packs_messages_to_6000() -> None:
    paragraphs = [f"paragraph {i} " + "word " * 150 for i in range(40)]  # ~30,000 characters
    parts = render(Message(title="Long", body="\n\n".join(paragraphs)))
    assert_within_limits(parts)
    assert len(parts) == 6  # 30,000 / 6,000, rounded up: packing fills messages, not just embeds
    pieces = [e.description or "" for part in parts for e in part.embeds]
    assert all(re.fullmatch(r"(paragraph \d+ |word ?|\s)+", p) for p in pieces), "cuts fall between words"
    assert sum(p.startswith("paragraph") for p in pieces) > len(pieces) // 2, "mostly between paragraphs"


def test_take_never_cuts_an_escape_in_two() -> None:
    text = "*" * 5000
    head, rest = take(text, 4096)
    assert len(head) <= 4096 and head.endswith("\\*") and not head.endswith("\\\\")
    assert len(head) // 2 + len(rest) == 5000


def test_footer_is_literal_and_fields_never_empty() -> None:
    [part] = render(Message(body="b", fields=(MessageField("", ""),), footer="a_b *c*"))
    embed = part.embeds[-1]
    assert embed.footer.text == "a_b *c*"
    assert embed.fields[0].name == embeds.EMPTY and embed.fields[0].value == embeds.EMPTY


def test_footer_mentions_are_neutralised_but_not_escaped() -> None:
    [part] = render(Message(body="b", footer="@everyone and @here see <@&123456789012345678> a_b"))
    assert part.embeds[-1].footer.text == "@\u200beveryone and @\u200bhere see <\u200b@&123456789012345678> a_b"
    # A footer at the limit stays within it once the zero-width spaces are added.
    [part] = render(Message(body="b", footer="@everyone " * 300))
    footer = part.embeds[-1].footer.text or ""
    assert len(footer) <= embeds.FOOTER_MAX and "@everyone" not in footer


def test_an_empty_message_is_still_a_valid_discord_message() -> None:
    [part] = render(Message())
    assert part.embeds[0].description == embeds.EMPTY


def test_many_actions_are_capped_at_25_buttons() -> None:
    actions = tuple(Action(f"b{i}", "replies", {"signal_id": str(i)}) for i in range(40))
    [part] = render(Message(body="x", actions=actions))
    assert len(part.actions) == 25
    assert embeds.button_label(Action("x" * 200, "replies")) == "x" * 79 + "…"


def test_embed_colour_is_set() -> None:
    [part] = render(Message(body="x"))
    assert part.embeds[0].colour == discord.Colour(0x3B82F6)
