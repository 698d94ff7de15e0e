"""The daily brief's text: the `/intel` views of its sections (relay.intel), one after another.

One section keeps /intel's own layout (fields stay fields); several are joined as text, each
under its /intel title, so the brief reads exactly like the commands a trader already knows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from relay.i18n import Translator
from relay.models import Message

Show = Callable[[list[str], Translator], Awaitable[Message]]


def brief_composer(show: Show) -> Callable[[Sequence[str], Translator], Awaitable[Message]]:
    """`show` is `relay.intel.Intel.show`: the words after /intel, answered as a Message."""

    async def compose(sections: Sequence[str], t: Translator) -> Message:
        parts = [await show([section], t) for section in sections]
        if len(parts) == 1:
            return parts[0]
        footers = [p.footer for p in parts if p.footer]
        return Message(body="\n\n".join(_as_text(p) for p in parts), footer=footers[0] if footers else "")

    return compose


def _as_text(message: Message) -> str:
    lines = [s for s in (message.title, message.body) if s]
    lines += [f"{f.name}: {f.value}" for f in message.fields]
    return "\n".join(lines)
