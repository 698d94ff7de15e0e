"""Operator commands of `aitrader-relay`: dead letters, export and import.

Each opens Redis as `run` does (REDIS_URL, or the embedded store under RELAY_DATA_DIR, which may
be shared with a running relay: the embedded server is reused), does its one job and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from relay import logs
from relay.admin import normalize_chat
from relay.backup import ImportRefused, export, import_
from relay.config import RelaySettings
from relay.deadletters import DeadLetters
from relay.embedded_redis import open_configured
from relay.errors import ConfigError
from relay.journal import Journal
from relay.tokens import TokenBox, load_or_create_key

MAX_IMPORT_BYTES = 512 * 1024 * 1024  # an export of a very large relay is tens of MB; more is not one


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dead = sub.add_parser("dead-letters", help="list dead-lettered deliveries, or put them back into their queues")
    dead_sub = dead.add_subparsers(dest="dead_command", required=True)
    listing = dead_sub.add_parser("list", help="one line per dead letter, oldest first")
    listing.add_argument("--chat", metavar="ID", help="only this chat (e.g. telegram:42, as the list shows it)")
    replay = dead_sub.add_parser(
        "replay", help="append dead letters to their chats' queues in order; skips any delivered since"
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--chat", metavar="ID", help="this chat's dead letters")
    which.add_argument("--all", action="store_true", help="every dead letter")

    exp = sub.add_parser("export", help="subscriptions, chat settings and linked agents as JSON")
    exp.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    exp.add_argument(
        "--without-tokens", action="store_true", help="leave agent tokens out (their users /link again after import)"
    )
    imp = sub.add_parser("import", help="load an export (idempotent: importing twice changes nothing)")
    imp.add_argument("file", metavar="FILE", help="an export file, or - for standard input")


async def dead_letters(settings: RelaySettings, args: argparse.Namespace) -> int:
    logs.configure("WARNING")
    chat = normalize_chat(args.chat) if args.chat else None
    async with open_configured(settings) as handle:
        keys = settings.keys()
        dead = DeadLetters(handle.redis, keys, clock=time.time, journal=Journal(handle.redis, keys))
        if args.dead_command == "list":
            letters = await dead.list(chat)
            for d in letters:
                at = datetime.fromtimestamp(d.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
                print(f"{d.entry_id}\t{at}\t{d.chat}\t{d.key}\t{_one_line(d.cause, 200)}\t{_one_line(d.title, 80)}")
            print(f"{len(letters)} dead letter(s)", file=sys.stderr)
            return 0
        done = await dead.replay(None if args.all else chat)
    print(f"replayed {done.queued} into their chats' queues; skipped {done.skipped} delivered since")
    return 0


async def export_command(settings: RelaySettings, args: argparse.Namespace) -> int:
    logs.configure("WARNING")
    async with open_configured(settings) as handle:
        box = _box(settings, handle.embedded)
        data = await export(handle.redis, settings.keys(), box, with_tokens=not args.without_tokens)
    text = json.dumps(data, indent=1, ensure_ascii=False)
    if args.output:
        _write_private(Path(args.output), text + "\n")
        print(f"exported {len(data['keys'])} keys to {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


async def import_command(settings: RelaySettings, args: argparse.Namespace) -> int:
    logs.configure("WARNING")
    try:
        raw = sys.stdin.read(MAX_IMPORT_BYTES + 1) if args.file == "-" else _read_file(Path(args.file))
    except OSError as exc:
        raise ConfigError(f"FILE: {(exc.strerror or str(exc)).lower()} ({args.file})") from None
    if len(raw) > MAX_IMPORT_BYTES:
        raise ConfigError(f"FILE: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB; not an export")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"FILE: not JSON ({exc})") from None
    async with open_configured(settings) as handle:
        box = _box(settings, handle.embedded)
        try:
            result = await import_(handle.redis, settings.keys(), box, data)
        except ImportRefused as exc:
            raise ConfigError(f"import refused: {exc}") from None
    line = f"imported {result.keys} keys"
    if result.agents_without_token:
        line += f"; {result.agents_without_token} agent(s) without a token are paused until their users /link again"
    print(line)
    return 0


def _write_private(path: Path, text: str) -> None:
    """Created 0600 from the start: sealed tokens and chat ids are not for other users."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise ConfigError(f"--output: {(exc.strerror or str(exc)).lower()} ({path})") from None


def _read_file(path: Path) -> str:
    with path.open("r", encoding="utf-8") as f:
        return f.read(MAX_IMPORT_BYTES + 1)


def _box(settings: RelaySettings, embedded: bool) -> TokenBox:
    return load_or_create_key(
        settings.relay_secret_key.get_secret_value() if settings.relay_secret_key else None,
        settings.relay_data_dir,
        embedded=embedded,
    )


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]
