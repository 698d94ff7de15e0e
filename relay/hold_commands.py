"""`/quiet`, `/snooze`, `/digest` and `/held`, and the lines `/status` shows for them.

The holding itself (what is held, released and when) is `relay.holding`; this module only parses
what a user typed and answers in one message, in the chat's language.
"""

from __future__ import annotations

import re
from datetime import datetime

from relay.errors import UsageError
from relay.holding import DIGEST_KINDS, Holding, Plan, Schedule, page, parse_digest, parse_duration, parse_quiet
from relay.i18n import ENGLISH, N_, Translator
from relay.models import Command, MessageField, Reply
from relay.words import split_words

# What relay.holding names batches: h<ms>[hex] for a summary, d<period end><HHMM|h|x..> for a digest.
_BATCH_ID = re.compile(r"[hd][0-9]{10,}[0-9a-fhx]*")


def _local(epoch: float, plan: Plan, now: float) -> str:
    at = datetime.fromtimestamp(epoch, plan.zone)
    return f"{at:%H:%M} {plan.zone.key}" if epoch - now < 86400 else f"{at:%Y-%m-%d %H:%M} {plan.zone.key}"


async def quiet(command: Command, holding: Holding, now: float, t: Translator = ENGLISH) -> Reply:
    raw = command.args.get("hours", "").strip()
    plan = await holding.plan(command.chat)
    if not raw:
        if plan.quiet is None:
            return Reply.text(
                t.gettext("No quiet hours in this chat. /quiet 22:00-07:00 sets them (this chat's time zone).")
            )
        if plan.quiet_now(now):
            text = t.gettext(
                "Quiet hours: {hours} {zone}, now. /quiet off ends them; /timezone sets the zone.",
                hours=str(plan.quiet),
                zone=plan.zone.key,
            )
        else:
            text = t.gettext(
                "Quiet hours: {hours} {zone}, not now. /quiet off ends them; /timezone sets the zone.",
                hours=str(plan.quiet),
                zone=plan.zone.key,
            )
        return Reply.text(text)
    if raw.lower() == "off":
        if plan.quiet is None:
            return Reply.text(t.gettext("This chat has no quiet hours."))
        await holding.set_quiet(command.chat, None)
        await holding.check_chat(command.chat)  # what was held comes now, as one summary
        return Reply.text(t.gettext("Quiet hours are off. Anything held comes now as one summary."))
    hours = parse_quiet(raw)  # a BadValue is a usage error
    await holding.set_quiet(command.chat, hours)
    return Reply.text(
        t.gettext(
            "Quiet hours {hours} {zone}: notifications arriving then are held and sent as one summary at {end}. "
            "Kinds set silent (/notify) still arrive, without sound.",
            hours=str(hours),
            zone=plan.zone.key,
            end=f"{hours.end:%H:%M}",
        )
    )


async def snooze(command: Command, holding: Holding, now: float, t: Translator = ENGLISH) -> Reply:
    raw = command.args.get("duration", "").strip()
    plan = await holding.plan(command.chat)
    if not raw:
        if plan.snooze_until is None or not plan.snoozed(now):
            return Reply.text(
                t.gettext("Not snoozed. /snooze 2h (or 30m, 1h30m; up to 7 days) holds everything until then.")
            )
        return Reply.text(
            t.gettext("Snoozed until {until}. /snooze off ends it now.", until=_local(plan.snooze_until, plan, now))
        )
    if raw.lower() == "off":
        if not plan.snoozed(now):
            return Reply.text(t.gettext("This chat is not snoozed."))
        await holding.set_snooze(command.chat, None)
        await holding.check_chat(command.chat)
        if plan.quiet is not None and plan.quiet_now(now):
            return Reply.text(
                t.gettext(
                    "Snooze ended, but these are quiet hours: what is held comes as one summary at {end}.",
                    end=_local(plan.quiet.next_end(datetime.fromtimestamp(now, plan.zone)).timestamp(), plan, now),
                )
            )
        return Reply.text(t.gettext("Snooze ended. Anything held comes now as one summary."))
    until = now + parse_duration(raw)  # a BadValue is a usage error
    await holding.set_snooze(command.chat, until)
    return Reply.text(
        t.gettext(
            "Snoozed until {until}: everything is held and summarised then. /snooze off ends it now.",
            until=_local(until, plan, now),
        )
    )


def _digests(plan: Plan, now: float, t: Translator) -> list[str]:
    by_schedule: dict[str, list[str]] = {}
    for kind, schedule in plan.digests.items():
        by_schedule.setdefault(schedule.code, []).append(kind)
    lines = []
    for code, kinds in sorted(by_schedule.items()):
        schedule = Schedule(code)
        nxt = schedule.next_boundary(now, plan.zone)
        lines.append(
            t.gettext(
                "{kinds}: {schedule} (next {at} {zone})",
                kinds=", ".join(k for k in DIGEST_KINDS if k in kinds),
                schedule=schedule.label(t),
                at=f"{nxt:%H:%M}",
                zone=plan.zone.key,
            )
        )
    return lines


async def digest(command: Command, holding: Holding, now: float, t: Translator = ENGLISH) -> Reply:
    words = split_words(command.args.get("what", ""))
    if not words:
        lines = _digests(await holding.plan(command.chat), now, t)
        if not lines:
            return Reply.text(
                t.gettext("No digests in this chat. /digest replies mentions hourly, or /digest followers daily 08:00.")
            )
        return Reply.text(t.gettext("Digests here:\n{lines}\n/digest <kinds…> off stops one.", lines="\n".join(lines)))
    kinds, schedule = parse_digest(words)  # a BadValue is a usage error
    await holding.set_digest(command.chat, kinds, schedule)
    if schedule is None:
        await holding.check_chat(command.chat)  # what was collected for them comes now
        return Reply.text(t.gettext("Digest off for {kinds}: they arrive one by one again.", kinds=", ".join(kinds)))
    plan = await holding.plan(command.chat)
    nxt = schedule.next_boundary(now, plan.zone)
    if schedule.at is not None:  # "one daily at 08:00 digest" read badly
        return Reply.text(
            t.gettext(
                "{kinds} now come as one daily digest at {at} {zone}; a day with none sends nothing.",
                kinds=", ".join(kinds),
                at=f"{nxt:%H:%M}",
                zone=plan.zone.key,
            )
        )
    return Reply.text(
        t.gettext(
            "{kinds} now come as one {schedule} digest (next at {at} {zone}); a period with none sends nothing.",
            kinds=", ".join(kinds),
            schedule=schedule.label(t),
            at=f"{nxt:%H:%M}",
            zone=plan.zone.key,
        )
    )


async def held(command: Command, holding: Holding, t: Translator = ENGLISH) -> Reply:
    batch = command.args.get("batch", "").strip()
    page_raw = command.args.get("page", "").strip()
    if batch.isascii() and batch.isdigit() and not page_raw:
        batch, page_raw = "", batch  # `/held 2`: page 2 of the last one (batch ids start with a letter)
    page_raw = page_raw or "1"
    if not page_raw.isascii() or not page_raw.isdigit() or not 1 <= int(page_raw) <= 1000:
        raise UsageError(N_("page must be a number from 1 to 1000"))
    if batch and (len(batch) > 40 or not _BATCH_ID.fullmatch(batch)):
        raise UsageError(N_("batch is the id a summary names, like h1735689600000"))
    if not batch:
        plan = await holding.plan(command.chat)
        batch = plan.last_batch
        if not batch and (plan.held or plan.digested):
            # Not "nothing was held" while /status counts what is held right now.
            return Reply.text(
                t.ngettext(
                    "{n} notification is held now; /held lists it once its summary or digest is sent.",
                    "{n} notifications are held now; /held lists them once their summary or digest is sent.",
                    plan.held + plan.digested,
                ),
                private=True,
            )
        if not batch:
            return Reply.text(t.gettext("Nothing was held in this chat yet."), private=True)
    items = await holding.batch(command.chat, batch)
    if not items:
        return Reply.text(t.gettext("That summary is gone: held notifications are kept 7 days."), private=True)
    return Reply((page(items, batch, int(page_raw), t),))


async def status_fields(command: Command, holding: Holding, now: float, t: Translator = ENGLISH) -> list[MessageField]:
    plan = await holding.plan(command.chat)
    quiet_text = t.gettext("none")
    if plan.quiet is not None:
        quiet_text = str(plan.quiet) + (t.gettext(" (now)") if plan.quiet_now(now) else "")
    snooze_text = t.gettext("no")
    if plan.snooze_until is not None and plan.snoozed(now):
        snooze_text = t.gettext("until {until}", until=_local(plan.snooze_until, plan, now))
    fields = [
        MessageField(t.gettext("Time zone"), plan.zone.key),
        MessageField(t.gettext("Quiet hours"), quiet_text),
        MessageField(t.gettext("Snoozed"), snooze_text),
        MessageField(t.gettext("Digests"), "; ".join(_digests(plan, now, t)) or t.gettext("none")),
    ]
    if plan.held or plan.digested:
        fields.append(
            MessageField(
                t.gettext("Held here"),
                t.gettext("{held} held, {digested} for digests", held=plan.held, digested=plan.digested),
            )
        )
    return fields
