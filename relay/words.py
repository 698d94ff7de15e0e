"""Turns a typed command line into named arguments, for platforms that send plain text.

Telegram and the console hand the core "/feed btc strategy"; Discord sends named options and
skips this. The words are not validated here, only assigned to parameters in order.
"""

from __future__ import annotations

from relay.models import CommandSpec


def split_command(line: str) -> tuple[str, str]:
    """'/Feed@MyBot btc x' -> ('feed', 'btc x'). A line that is not a command gives ('', line)."""
    line = line.strip()
    if not line.startswith("/"):
        return "", line
    head, _, rest = line[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    return name, rest.strip()


def parse_words(spec: CommandSpec, text: str) -> dict[str, str]:
    """Assign whitespace-separated words to the spec's parameters in order.

    A `rest` parameter takes the remainder of the line verbatim (line breaks kept); words beyond
    the last parameter are joined into it so nothing the user typed is dropped, and the router
    reports them as a usage error when the spec has no room for them.
    """
    args: dict[str, str] = {}
    remaining = text.strip()
    for param in spec.params:
        if not remaining:
            break
        if param.rest:
            args[param.name] = remaining
            remaining = ""
            break
        word, _, remaining = _next_word(remaining)
        args[param.name] = word
        remaining = remaining.lstrip()
    if remaining:
        args["_extra"] = remaining
    return args


def _next_word(text: str) -> tuple[str, str, str]:
    for i, ch in enumerate(text):
        if ch.isspace():
            return text[:i], ch, text[i + 1 :]
    return text, "", ""
