"""`/quiet`, `/snooze`, `/digest` and `/held`, and the lines `/status` shows for them.

The holding itself (what is held, released and when) is `relay.holding`; this module only parses
what a user typed and answers in one message.
"""

from __future__ import annotations

from datetime import datetime

from relay.errors import UsageError
from relay.holding import DIGEST_KINDS, Holding, Plan, Schedule, page, parse_digest, parse_duration, parse_quiet
from relay.models import Command, MessageField, Reply
from relay.words import split_words


def _local(epoch: float, plan: Plan, now: float) -> str:
    at = datetime.fromtimestamp(epoch, plan.zone)
    return f"{at:%H:%M} {plan.zone.key}" if epoch - now < 86400 else f"{at:%a %d %b %H:%M} {plan.zone.key}"


async def quiet(command: Command, holding: Holding, now: float) -> Reply:
    raw = command.args.get("hours", "").strip()
    plan = await holding.plan(command.chat)
    if not raw:
        if plan.quiet is None:
            return Reply.text("No quiet hours in this chat. /quiet 22:00-07:00 sets them (this chat's time zone).")
        state = "now" if plan.quiet_now(now) else "not now"
        return Reply.text(
            f"Quiet hours: {plan.quiet} {plan.zone.key} ({state}). /quiet off ends them; /timezone sets the zone."
        )
    if raw.lower() == "off":
        if plan.quiet is None:
            return Reply.text("This chat has no quiet hours.")
        await holding.set_quiet(command.chat, None)
        await holding.check_chat(command.chat)  # what was held comes now, as one summary
        return Reply.text("Quiet hours are off. Anything held comes now as one summary.")
    try:
        hours = parse_quiet(raw)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    await holding.set_quiet(command.chat, hours)
    return Reply.text(
        f"Quiet hours {hours} {plan.zone.key}: notifications arriving then are held and sent as one summary "
        f"at {hours.end:%H:%M}. Kinds set silent (/notify) still arrive, without sound."
    )


async def snooze(command: Command, holding: Holding, now: float) -> Reply:
    raw = command.args.get("duration", "").strip()
    plan = await holding.plan(command.chat)
    if not raw:
        if not plan.snoozed(now):
            return Reply.text("Not snoozed. /snooze 2h (or 30m, 1h30m; up to 7 days) holds everything until then.")
        assert plan.snooze_until is not None
        return Reply.text(f"Snoozed until {_local(plan.snooze_until, plan, now)}. /snooze off ends it now.")
    if raw.lower() == "off":
        if not plan.snoozed(now):
            return Reply.text("This chat is not snoozed.")
        await holding.set_snooze(command.chat, None)
        await holding.check_chat(command.chat)
        return Reply.text("Snooze ended. Anything held comes now as one summary.")
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    until = now + seconds
    await holding.set_snooze(command.chat, until)
    return Reply.text(
        f"Snoozed until {_local(until, plan, now)}: everything is held and summarised then. /snooze off ends it now."
    )


def _digests(plan: Plan, now: float) -> list[str]:
    by_schedule: dict[str, list[str]] = {}
    for kind, schedule in plan.digests.items():
        by_schedule.setdefault(schedule.code, []).append(kind)
    lines = []
    for code, kinds in sorted(by_schedule.items()):
        schedule = Schedule(code)
        nxt = schedule.next_boundary(now, plan.zone)
        ordered = [k for k in DIGEST_KINDS if k in kinds]
        lines.append(f"{', '.join(ordered)}: {schedule.label()} (next {nxt:%H:%M} {plan.zone.key})")
    return lines


async def digest(command: Command, holding: Holding, now: float) -> Reply:
    words = split_words(command.args.get("what", ""))
    if not words:
        plan = await holding.plan(command.chat)
        lines = _digests(plan, now)
        if not lines:
            return Reply.text(
                "No digests in this chat. /digest replies mentions hourly, or /digest followers daily 08:00."
            )
        return Reply.text("Digests here:\n" + "\n".join(lines) + "\n/digest <kinds…> off stops one.")
    try:
        kinds, schedule = parse_digest(words)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    await holding.set_digest(command.chat, kinds, schedule)
    if schedule is None:
        await holding.check_chat(command.chat)  # what was collected for them comes now
        return Reply.text(f"Digest off for {', '.join(kinds)}: they arrive one by one again.")
    plan = await holding.plan(command.chat)
    nxt = schedule.next_boundary(now, plan.zone)
    return Reply.text(
        f"{', '.join(kinds).capitalize()} now come as one {schedule.label()} digest (next at {nxt:%H:%M} "
        f"{plan.zone.key}); a period with none sends nothing."
    )


async def held(command: Command, holding: Holding) -> Reply:
    batch = command.args.get("batch", "").strip()
    page_raw = command.args.get("page", "").strip() or "1"
    if not page_raw.isascii() or not page_raw.isdigit() or not 1 <= int(page_raw) <= 1000:
        raise UsageError("page must be a number from 1 to 1000")
    if batch and (len(batch) > 40 or not batch.isascii() or not batch.isalnum()):
        raise UsageError("batch is the id a summary names, like h1735689600000")
    if not batch:
        batch = (await holding.plan(command.chat)).last_batch
        if not batch:
            return Reply.text("Nothing was held in this chat yet.", private=True)
    items = await holding.batch(command.chat, batch)
    if not items:
        return Reply.text("That summary is gone: held notifications are kept 7 days.", private=True)
    return Reply((page(items, batch, int(page_raw)),))


async def status_fields(command: Command, holding: Holding, now: float) -> list[MessageField]:
    plan = await holding.plan(command.chat)
    quiet_text = "none"
    if plan.quiet is not None:
        quiet_text = f"{plan.quiet}" + (" (now)" if plan.quiet_now(now) else "")
    snooze_text = "no"
    if plan.snoozed(now) and plan.snooze_until is not None:
        snooze_text = f"until {_local(plan.snooze_until, plan, now)}"
    fields = [
        MessageField("Time zone", plan.zone.key),
        MessageField("Quiet hours", quiet_text),
        MessageField("Snoozed", snooze_text),
        MessageField("Digests", "; ".join(_digests(plan, now)) or "none"),
    ]
    if plan.held or plan.digested:
        fields.append(MessageField("Held here", f"{plan.held} held, {plan.digested} for digests"))
    return fields
