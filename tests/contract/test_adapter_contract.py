"""The adapter contract (relay/adapter.py), one set of cases run against every adapter.

What the core relies on, whatever the platform: a long message arrives whole and in order; a
button press reaches the core as the command the button carries; a paging button edits the
message it sits on; a chat that is gone raises ChatGone; a 429's retry_after is honoured (no
request to that chat before it ends, and the message then arrives once); stop ends within the
relay's grace period and the adapter takes no more events.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from relay.errors import ChatGone, RetryLater
from relay.models import Action, Message, Reply
from tests.contract.conftest import Harness

pytestmark = pytest.mark.timeout(120)

# relay.config's default SHUTDOWN_GRACE_SECONDS: Relay.stop cancels an adapter's stop after it.
GRACE_S = 8.0


async def eventually(harness: Harness, check: object, timeout: float = 10.0) -> None:
    """Wait until `check()` (sync or async) is true."""

    async def loop() -> None:
        while True:
            result = check()  # type: ignore[operator]
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), timeout)


async def test_a_long_message_arrives_whole_in_order_and_split_within_the_limit(harness: Harness) -> None:
    words = [f"w{i:04d}" for i in range(2000)]  # 10,000 characters: more than one message anywhere
    await harness.adapter.send(harness.chat, Message(title="Long", body=" ".join(words)), key="long-1")
    texts = await harness.texts()
    assert re.findall(r"w\d{4}", "\n".join(texts)) == words, "every word, once, in order"
    if harness.max_text:
        assert len(texts) >= 2, "split into several messages"
        assert all(len(t) <= harness.max_text for t in texts)


async def test_a_pressed_button_reaches_the_core_as_its_command(harness: Harness) -> None:
    actions = (Action("Show replies", "replies", {"signal_id": "4242"}),)
    await harness.adapter.send(harness.chat, Message(title="Signal", body="body", actions=actions), key="btn-1")
    await harness.press("Show replies")
    command = await harness.core.command(0, timeout=10)
    assert (command.name, dict(command.args), command.chat) == ("replies", {"signal_id": "4242"}, harness.chat)


async def test_a_paging_button_edits_the_message_it_sits_on(harness: Harness) -> None:
    if not harness.can_edit:
        pytest.skip(f"{harness.name} shows no message that could be edited")
    # Too long for Telegram's 64-byte callback_data and Discord's 100-character custom_id: the
    # action goes through the adapter's stored button data.
    keyword = "btc " + "x" * 120
    page = Message(
        title="Feed: btc", body="page one", actions=(Action("Next", "feed", {"keyword": keyword}, replace=True),)
    )
    await harness.adapter.send(harness.chat, page, key="page-1")
    harness.core.replies["feed"] = Reply((Message(title="Feed: btc", body="page two"),))
    await harness.press("Next")
    command = await harness.core.command(0, timeout=10)
    assert (command.name, dict(command.args)) == ("feed", {"keyword": keyword})
    assert await harness.shown_after_press("page two"), "edited in place, not posted anew"


async def test_a_gone_chat_raises_chat_gone(harness: Harness) -> None:
    if not harness.can_go:
        pytest.skip(f"a {harness.name} chat cannot go away")
    await harness.adapter.send(harness.chat, Message(body="before"), key="gone-0")
    harness.make_gone()
    with pytest.raises(ChatGone):
        await harness.adapter.send(harness.chat, Message(body="after"), key="gone-1")
    assert not any("after" in t for t in await harness.texts())


async def test_a_rate_limited_chat_waits_out_retry_after_then_gets_the_message_once(harness: Harness) -> None:
    if not harness.can_be_limited:
        pytest.skip(f"{harness.name} has no rate limit")
    retry_after = 1
    harness.rate_limit(retry_after)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        # As the core does: a RetryLater defers this chat by its seconds, then the same key again.
        try:
            await harness.adapter.send(harness.chat, Message(body="limited"), key="rl-1")
            break
        except RetryLater as exc:
            assert exc.seconds > 0
            assert loop.time() < deadline, "never delivered"
            await asyncio.sleep(exc.seconds)
    [limited, *_] = harness.limited_at()
    accepted = harness.accepted_at()
    assert [t for t in await harness.texts() if "limited" in t] == ["limited"], "delivered once"
    assert accepted and all(t >= limited + retry_after - 0.05 for t in accepted), "nothing before retry_after ended"


async def test_stop_ends_within_the_grace_period_and_takes_no_more_events(harness: Harness) -> None:
    await harness.adapter.send(harness.chat, Message(body="still here"), key="stop-0")
    await asyncio.wait_for(harness.adapter.stop(), GRACE_S)
    assert not await harness.still_taking_events()
    await asyncio.wait_for(harness.adapter.stop(), GRACE_S)  # idempotent
