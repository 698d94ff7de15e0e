"""Hostile input: every command's arguments fuzzed through the router, and both renderers fed
random hostile text. No crash, a usage reply, no request outside the known URL templates, and
every rendered chunk within its platform's limits."""

from __future__ import annotations

import random
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.discord import embeds
from adapters.telegram import markup
from aitrader_sim.world import World
from relay.app import Relay
from relay.models import Action, Command, Message, MessageField, UserRef
from relay.specs import COMMANDS
from tests.fakes.recording import RecordingAdapter

KNOWN_ROUTES = {
    "/api/claw/agents/me",
    "/api/claw/agents/heartbeat",
    "/api/claw/messages/recent",
    "/api/claw/messages",
    "/api/claw/tasks",
    "/api/signals/feed",
    "/api/signals/{signal_id}/replies",
    "/api/signals/{agent_id}",
    "/api/signals/reply",
    "/api/signals/follow",
    "/api/signals/unfollow",
    "/api/signals/following",
    "/api/signals/my/discussions",  # documented; the server's catch-all answers, the client falls back
    # The trader's cockpit (/positions, /trader, /price, /points, /leaderboard, /trending, /post,
    # /trade + /confirm, /accept, /intel, /chart): each of the server's own routes, nothing else.
    "/api/agents/{agent_id}/summary",
    "/api/agents/{agent_id}/positions",
    "/api/positions",
    "/api/price",
    "/api/profit/history",
    "/api/trending",
    "/api/signals/strategy",
    "/api/signals/discussion",
    "/api/signals/realtime",
    "/api/signals/{signal_id}/replies/{reply_id}/accept",
    "/api/market-intel/overview",
    "/api/market-intel/macro-signals",
    "/api/market-intel/etf-flows",
    "/api/market-intel/news",
    "/api/market-intel/stocks/{symbol}/latest",
    "/api/market-intel/stocks/{symbol}/history",
}

HOSTILE = st.one_of(
    st.sampled_from(
        [
            "../1",
            "1/../../claw/agents/me",
            "١٢",
            "99999999999999999999999",
            "-1",
            "0",
            "1e3",
            " 7",
            "7#x",
            "%2e%2e/1",
            "<b>x</b>",
            "@everyone",
            "*_`[](javascript:alert(1))",
            "\x00\x1b[31m",
            "🙂" * 50,
            "a" * 10_000,
        ]
    ),
    st.text(max_size=300),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from([c.name for c in COMMANDS]),
    values=st.lists(HOSTILE, min_size=0, max_size=4),
    group=st.booleans(),
)
async def test_fuzzed_command_arguments_never_crash_or_leave_the_known_routes(
    relay: Relay, world: World, adapter: RecordingAdapter, name: str, values: list[str], group: bool
) -> None:
    spec = next(c for c in COMMANDS if c.name == name)
    args = {p.name: v for p, v in zip(spec.params, values, strict=False)}
    before = len(world.requests)
    reply = await relay.router.dispatch(
        Command(name, args, adapter.chat("-9" if group else "9"), UserRef("rec", "9", "z"), is_private=not group)
    )
    text = "\n".join(m.plain_text() for m in reply.messages)
    assert text.strip() and "Traceback" not in text
    assert "went wrong on our side" not in text  # a bug, not a bad argument
    routes = {r.route for r in list(world.requests)[before:]}
    assert routes <= KNOWN_ROUTES, routes - KNOWN_ROUTES


def hostile_text(rng: random.Random, size: int) -> str:
    pieces = [
        "<b>",
        "</i>",
        "&amp;",
        "&",
        "<",
        ">",
        "**",
        "__",
        "`",
        "```",
        "~~",
        "||",
        "@everyone",
        "@here",
        "<@&123>",
        "<@1>",
        "https://example.com/x?a=1&b=<2>",
        "\n",
        "\n\n",
        " ",
        "🙂",
        "👨‍👩‍👧",
        "\u202e",
        "\u200b",
        "é",
        "𝕏",
        "\\",
        "[a](b)",
        "# ",
        "> ",
    ]
    out: list[str] = []
    while sum(map(len, out)) < size:
        out.append(
            rng.choice(pieces)
            if rng.random() < 0.5
            else "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 12)))
        )
    return "".join(out)[:size]


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ok = True
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.ok = self.ok and bool(self.stack) and self.stack.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize(
    "count",
    [
        pytest.param(400, id="short"),
        pytest.param(100_000, id="long", marks=[pytest.mark.faults, pytest.mark.timeout(3600)]),
    ],
)
def test_renderers_keep_every_chunk_valid_and_within_limits(count: int) -> None:
    rng = random.Random(20261125)
    for i in range(count):
        size = rng.choice([10, 200, 1500, 5000]) if i % 50 else 12000  # a long one now and then
        many_fields = i % 97 == 0  # over Discord's 25 fields and 6,000 characters now and then
        message = Message(
            title=hostile_text(rng, rng.randint(0, 300)),
            body=hostile_text(rng, size),
            fields=tuple(
                MessageField(hostile_text(rng, 40), hostile_text(rng, rng.randint(0, 1500 if many_fields else 200)))
                for _ in range(rng.randint(20, 30) if many_fields else rng.randint(0, 3))
            ),
            footer=hostile_text(rng, 100),
            actions=(Action(hostile_text(rng, 100), "replies", {"signal_id": "1"}),),
        )
        for chunk in markup.render(message):
            assert markup.utf16_len(chunk.text) <= 4096
            parser = _Balance()
            parser.feed(chunk.html)
            parser.close()
            assert parser.ok and not parser.stack, chunk.html[:200]
            assert "".join(parser.text) == chunk.text  # entities decoded once, as Telegram does
        parts = embeds.render(message)
        assert parts
        for part in parts:
            assert len(part.embeds) <= embeds.EMBEDS_MAX
            total = 0
            for e in part.embeds:
                assert len(e.title or "") <= embeds.TITLE_MAX and len(e.description or "") <= embeds.DESCRIPTION_MAX
                assert len(e.fields) <= embeds.FIELDS_MAX
                assert all(
                    len(f.name or "") <= embeds.FIELD_NAME_MAX and len(f.value or "") <= embeds.FIELD_VALUE_MAX
                    for f in e.fields
                )
                total += len(e)
            assert total <= embeds.EMBED_TOTAL_MAX
            rendered = "".join(str(e.to_dict()) for e in part.embeds)
            assert "@everyone" not in rendered and "@here" not in rendered
