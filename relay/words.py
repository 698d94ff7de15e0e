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

    A double-quoted phrase is one word. A `rest` parameter takes the remainder of the line
    verbatim (line breaks and quotes kept); words beyond
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
        word, _, after = _next_word(remaining)
        if param.choices and not param.required and word.lstrip("+-").isdecimal():
            # A number never names a choice: "/feed btc 2" leaves the type out and means page 2
            # ("/feed btc -1" is a bad page, not a bad type).
            continue
        args[param.name] = word
        remaining = after.lstrip()
    if remaining:
        args["_extra"] = remaining
    return args


# Phones type curly quotes; a keyword may be "rate cut", “rate cut” or „rate cut“. Single quotes
# are left alone: they are apostrophes far more often ("don't").
_OPENING = '"“”„«'
_CLOSING = '"“”»'


def split_words(text: str) -> list[str]:
    """Whitespace-separated words, a double-quoted phrase counting as one word (quotes removed)."""
    words: list[str] = []
    remaining = text.strip()
    while remaining:
        word, _, remaining = _next_word(remaining)
        words.append(word)
        remaining = remaining.lstrip()
    return words


def unquote(word: str) -> str:
    """'"rate cut"' -> 'rate cut': for a phrase that arrives quoted in a named option (Discord)."""
    word = word.strip()
    if len(word) >= 2 and word[0] in _OPENING and word[-1] in _CLOSING:
        return word[1:-1].strip()
    return word


def _next_word(text: str) -> tuple[str, str, str]:
    if text[:1] == "-" and text[1:2] in _OPENING:
        # -"rate cut": an exclusion of a phrase (watch filters) is one word too.
        word, sep, after = _next_word(text[1:])
        if sep:
            return "-" + word, sep, after
    if text[:1] in _OPENING:
        end = next((i for i, ch in enumerate(text[1:], 1) if ch in _CLOSING), -1)
        if end > 1:  # an unclosed or empty quote is an ordinary character
            return text[1:end].strip(), text[end], text[end + 1 :]
    for i, ch in enumerate(text):
        if ch.isspace():
            return text[:i], ch, text[i + 1 :]
    return text, "", ""
