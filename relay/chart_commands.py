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
from relay.models import Command, Reply
from relay.store import ActingAgent

Linked = Callable[[Command], Awaitable[ActingAgent]]

BUSY = "Many charts are being drawn right now; try again in a minute."


def _agent_id(raw: str) -> int:
    try:
        return checked_id(raw.lstrip("#"), "agent_id")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


async def chart(command: Command, charts: ChartService, linked: Linked) -> Reply:
    what = command.args.get("what", "").strip()
    option = command.args.get("option", "").strip()
    days_raw = command.args.get("days", "").strip()
    kind = what.lower()
    try:
        if kind == "profit":
            days = parse_days(days_raw)
            agent_id = _agent_id(option) if option else (await linked(command)).agent_id
            message = await charts.profit(agent_id, days)
        elif kind == "positions":
            if option or days_raw:
                raise UsageError("/chart positions takes no arguments")
            agent = await linked(command)
            message = await charts.positions(agent.agent_id, agent.name, agent.token)
        else:
            if days_raw:
                raise UsageError("days goes only with /chart profit")
            market = (option or "us-stock").lower()
            if market not in MARKETS:
                raise UsageError(f"market must be one of {', '.join(MARKETS)}")
            message = await charts.price(what, market)
    except RenderBusy:
        return Reply.text(BUSY, private=True)
    return Reply((message,))


async def timezone(command: Command, settings: ChatSettings) -> Reply:
    name = command.args.get("zone", "").strip()
    if not name:
        zone = await settings.timezone(command.chat)
        return Reply.text(f"This chat's time zone is {zone.key}. /timezone <IANA name> changes it, e.g. Europe/Berlin.")
    try:
        zone = await settings.set_timezone(command.chat, name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Reply.text(f"This chat's time zone is now {zone.key}; daily briefs follow it.")


async def subscribe_brief(command: Command, words: Sequence[str], briefs: DailyBriefs, settings: ChatSettings) -> Reply:
    """`/subscribe intel daily <HH:MM> [sections]` (words after "intel")."""
    if len(words) < 2 or words[0].lower() != "daily":
        raise UsageError(f"intel daily <HH:MM> [{' '.join(SECTIONS)}]")
    try:
        at = parse_time(words[1])
        sections = parse_sections(words[2:])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    brief = await briefs.add(command.chat, at, sections, command.user.key)
    zone = await settings.timezone(command.chat)
    return Reply.text(
        f"Subscribed #{brief.sub_id}: a daily market brief ({', '.join(sections)}) at {at:%H:%M} {zone.key}"
        " in this chat. /timezone changes the zone; /unsubscribe "
        f"{brief.sub_id} stops it."
    )
