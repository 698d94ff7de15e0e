"""Authorization matrix on Telegram, through the real adapter and the real Relay router:
every privileged command x {private chat, group member, group admin, anonymous admin, message
from a linked channel}."""

from __future__ import annotations

from typing import Any

import pytest

from platform_fakes.telegram_api import FakeTelegram, visible_text
from tests.adapters import test_telegram_e2e as e2e
from tests.adapters.test_telegram_e2e import ANN, BOB, Telegram

# pytest finds fixtures among a module's attributes: the end-to-end relay, its world and the group are reused as they are.
tg = e2e.tg
world = e2e.world
group = e2e.group

ANONYMOUS = FakeTelegram.user(1087968824, "Group", "GroupAnonymousBot")  # Telegram's stand-in for anonymous admins
CHANNEL = {"id": -100777, "type": "channel", "title": "Linked channel"}
PRIVILEGED = [("subscribe", "/subscribe"), ("unsubscribe", "/unsubscribe 1"), ("notify", "/notify tasks off")]
REFUSAL = "Only chat administrators"


async def answer(
    tg: Telegram,
    fake: FakeTelegram,
    chat_id: int,
    user: dict[str, Any],
    text: str,
    sender_chat: dict[str, Any] | None = None,
) -> str:
    before = {id(c) for c in fake.calls}
    fake.user_says(chat_id, user, text, sender_chat=sender_chat)
    call = await fake.wait_for("sendMessage", lambda c: id(c) not in before and int(c.params["chat_id"]) == chat_id, 10)
    return visible_text(call.params["text"])


@pytest.mark.parametrize(("name", "text"), PRIVILEGED)
async def test_privileged_commands_are_refused_exactly_to_non_admins(
    tg: Telegram, fake: FakeTelegram, group: int, name: str, text: str
) -> None:
    cases = {
        "private chat": (ANN["id"], ANN, None, True),
        "group member": (group, BOB, None, False),
        "group admin": (group, ANN, None, True),
        "anonymous admin": (group, ANONYMOUS, fake.chat(group), True),
        "linked channel post": (group, ANONYMOUS, CHANNEL, False),
    }
    outcomes = {}
    for case, (chat_id, user, sender_chat, allowed) in cases.items():
        reply = await answer(tg, fake, chat_id, user, text, sender_chat)
        outcomes[case] = (REFUSAL not in reply) == allowed
    print(f"\nauthz telegram /{name}: {sum(outcomes.values())} of {len(outcomes)} as specified")
    assert outcomes == dict.fromkeys(cases, True)
