"""The /chart, /timezone and `/subscribe intel daily` handlers, kept apart from `relay.commands`
(which only delegates) so the trader's commands can grow without one file holding them all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from relay.aitrader import checked_id
from relay.charts.renderer import RenderBusy
from relay.charts.service import ChartService, parse_days
from relay.charts.upstream import MARKETS
from relay.chat_settings import ChatSettings
from relay.daily_brief import SECTIONS, DailyBriefs, parse_sections, parse_time
from relay.errors import UsageError
from relay.i18n import ENGLISH, N_, Translator
from relay.models import Command, Reply
from relay.store import ActingAgent

Linked = Callable[[Command], Awaitable[ActingAgent]]

BUSY = N_("Many charts are being drawn right now; try again in a minute.")


def _agent_id(raw: str) -> int:
    return checked_id(raw.lstrip("#"), "agent_id")  # a BadId is a UsageError


async def chart(command: Command, charts: ChartService, linked: Linked, t: Translator = ENGLISH) -> Reply:
    what = command.args.get("what", "").strip()
    option = command.args.get("option", "").strip()
    days_raw = command.args.get("days", "").strip()
    kind = what.lower()
    try:
        if kind == "profit":
            days = parse_days(days_raw)
            agent_id = _agent_id(option) if option else (await linked(command)).agent_id
            message = await charts.profit(agent_id, days, t)
        elif kind == "positions":
            if option or days_raw:
                raise UsageError(N_("/chart positions takes no arguments"))
            agent = await linked(command)
            message = await charts.positions(agent.agent_id, agent.name, agent.token, t)
        else:
            if days_raw:
                raise UsageError(N_("days goes only with /chart profit"))
            market = (option or "us-stock").lower()
            if market not in MARKETS:
                raise UsageError(N_("{name} must be one of {choices}"), name="market", choices=", ".join(MARKETS))
            message = await charts.price(what, market, t)
    except RenderBusy:
        return Reply.text(t.gettext(BUSY), private=True)
    return Reply((message,))


async def timezone(command: Command, settings: ChatSettings, t: Translator = ENGLISH) -> Reply:
    name = command.args.get("zone", "").strip()
    if not name:
        zone = await settings.timezone(command.chat)
        return Reply.text(
            t.gettext(
                "This chat's time zone is {zone}. /timezone <IANA name> changes it, e.g. Europe/Berlin.", zone=zone.key
            )
        )
    zone = await settings.set_timezone(command.chat, name)  # a BadValue is a UsageError
    return Reply.text(
        t.gettext(
            "This chat's time zone is now {zone}; daily briefs, quiet hours and digests follow it.", zone=zone.key
        )
    )


async def subscribe_brief(
    command: Command, words: Sequence[str], briefs: DailyBriefs, settings: ChatSettings, t: Translator = ENGLISH
) -> Reply:
    """`/subscribe intel daily <HH:MM> [sections]` (words after "intel")."""
    if len(words) < 2 or words[0].lower() != "daily":
        raise UsageError(N_("intel daily <HH:MM> [{sections}]"), sections=" ".join(SECTIONS))
    at = parse_time(words[1])  # a BadValue is a UsageError
    sections = parse_sections(words[2:])
    brief = await briefs.add(command.chat, at, sections, command.user.key)
    zone = await settings.timezone(command.chat)
    return Reply.text(
        t.gettext(
            "Subscribed #{sub_id}: a daily market brief ({sections}) at {at} {zone} in this chat. "
            "/timezone changes the zone; /unsubscribe {sub_id} stops it.",
            sub_id=brief.sub_id,
            sections=", ".join(sections),
            at=f"{at:%H:%M}",
            zone=zone.key,
        )
    )
