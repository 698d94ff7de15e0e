"""What the translation catalogues must hold, read from the code itself (an AST scan).

Used by `tests/relay/test_i18n.py` and by `scripts/i18n.py` (which updates the .po files and
compiles the .mo files). Babel reads and writes the catalogues; the scan is ours because the
relay's conventions are narrower than Babel's extractor knows: `t.gettext("...", name=...)`,
`t.ngettext("...", "...", n)` and `N_("...")`, and a list of places where English text must never
appear bare (a reply, a message's title, body or footer, a field, a button label, a usage error).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("relay", "adapters")
PO = ROOT / "relay" / "locale" / "zh_Hans" / "LC_MESSAGES" / "relay.po"

# Modules whose text is not for chat users: operators (CLI, logs, /admin, which stays English),
# configuration errors, the console's own prompts.
NOT_USER_FACING = frozenset(
    {
        "relay/admin.py",
        "relay/config.py",
        "relay/logs.py",
        "relay/preflight.py",
        "relay/backup.py",
        "adapters/cli_operator.py",
        "adapters/configuration.py",
        "adapters/main.py",
        "adapters/console_input.py",
    }
)

# Calls whose literal English arguments would reach a chat user untranslated.
_USER_TEXT_CALLS = {
    "Message": ("title", "body", "footer"),
    "MessageField": ("name", "value"),
    "Action": ("label",),
    "UsageError": (),
    "LimitReached": (),
    "NotLinked": (),
    "BadValue": (),
    "BadId": (),
    "Span": (),  # Telegram's formatted text
    "_print": (),
    "CommandSpec": ("summary",),  # /help, menus, slash-command descriptions
    # Discord's forms (discord.ui): what a user reads in a modal.
    "Modal": ("title",),
    "Label": ("text", "description"),
    "TextInput": ("label", "placeholder"),
    "SelectOption": ("label", "description"),
    "Param": ("description",),
}
# Only these positions of these calls are text (the first argument is a command or option name).
_TEXT_POSITIONS = {"CommandSpec": (1,), "Param": (1,)}
_POSITIONAL_TEXT = {
    "MessageField": 2,
    "Action": 1,
    "UsageError": 1,
    "LimitReached": 1,
    "NotLinked": 1,
    "BadValue": 1,
    "BadId": 1,
    "Span": 1,
    "_print": 1,  # the console's own lines
}
# Exceptions whose message reaches a chat (the router shows their `localised` text).
_USER_FACING_ERRORS = frozenset({"UsageError", "NotLinked", "LimitReached", "BadValue", "BadId", "UpstreamError"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WORDS = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True, slots=True)
class Found:
    msgid: str
    plural: str | None
    where: str


def _files() -> Iterator[Path]:
    for top in SCANNED:
        yield from sorted((ROOT / top).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def extract() -> list[Found]:
    """Every msgid the code translates or marks, with where it is (file:line)."""
    found: list[Found] = []
    for path in _files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = _call_name(node)
            where = f"{_rel(path)}:{node.lineno}"
            if name in ("gettext", "N_"):
                text = _literal(node.args[0])
                if text is not None:
                    found.append(Found(text, None, where))
            elif name == "ngettext" and len(node.args) >= 2:
                one, many = _literal(node.args[0]), _literal(node.args[1])
                if one is not None and many is not None:
                    found.append(Found(one, many, where))
    return found


def _has_words(node: ast.AST) -> bool:
    """A literal (or an f-string's literal parts) with English words in it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(_WORDS.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(_has_words(v) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp):
        return _has_words(node.left) or _has_words(node.right)
    return False


def _sources() -> Iterator[tuple[str, str]]:
    for path in _files():
        yield _rel(path), path.read_text(encoding="utf-8")


def hard_coded(sources: Iterable[tuple[str, str]] | None = None) -> list[str]:
    """Places where English text goes to a chat user without a translation call (file:line: text).
    `sources`: (path, code) pairs to scan instead of relay/ and adapters/ (the scan's own test)."""
    problems: list[str] = []
    for rel, code in sources if sources is not None else _sources():
        if rel in NOT_USER_FACING:
            continue
        tree = ast.parse(code, rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _call_name(node)
                suspects: list[ast.expr] = []
                if name == "text" and isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "Reply":
                    suspects += node.args[:1]
                if name in _USER_TEXT_CALLS:
                    suspects += node.args[: _POSITIONAL_TEXT.get(name, 0)]
                    suspects += [node.args[i] for i in _TEXT_POSITIONS.get(name, ()) if i < len(node.args)]
                    suspects += [k.value for k in node.keywords if k.arg in _USER_TEXT_CALLS[name]]
                problems += [f"{rel}:{s.lineno}: {ast.unparse(s)[:80]}" for s in suspects if _has_words(s)]
                if name in ("gettext", "ngettext", "N_") and any(isinstance(a, ast.JoinedStr) for a in node.args[:2]):
                    # An f-string cannot be looked up: its text differs with every value.
                    problems.append(f"{rel}:{node.lineno}: f-string in {name}(): use named placeholders")
            elif isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                if bases & _USER_FACING_ERRORS:
                    # `super().__init__("...")` in an exception whose text a chat shows.
                    for call in ast.walk(node):
                        if (
                            isinstance(call, ast.Call)
                            and _call_name(call) == "__init__"
                            and call.args
                            and _has_words(call.args[0])
                        ):
                            problems.append(f"{rel}:{call.lineno}: {ast.unparse(call.args[0])[:80]}")
                # Exception sentences shown to users (UpstreamError.sentence and friends) must be marked.
                for stmt in node.body:
                    if (
                        isinstance(stmt, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "sentence" for t in stmt.targets)
                        and _has_words(stmt.value)
                    ):
                        problems.append(f"{rel}:{stmt.lineno}: sentence = {ast.unparse(stmt.value)[:80]}")
    return problems


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def read_catalogue(path: Path = PO) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)
