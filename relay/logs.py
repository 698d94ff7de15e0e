"""Logging set-up with secret redaction.

Bot tokens sit in Telegram's request URLs and httpx logs URLs at INFO; agent tokens travel in
headers. Every handler gets a filter that masks registered secrets and token-shaped strings in
the message, its arguments and any exception text, so a secret cannot reach a log line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

# Telegram bot tokens: "<digits>:<35 url-safe chars>"; Bearer headers; AI-Trader tokens are
# 43 url-safe characters but look like ordinary words to a regex, so those are masked by value.
_PATTERNS = (
    re.compile(r"\d{5,12}:[A-Za-z0-9_-]{30,}"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",]+"),
    re.compile(r"(?i)(x-claw-token['\"]?\s*[:=]\s*['\"]?)[^\s'\",]+"),
    # The doorbell's WebSocket URL carries the agent token as a query parameter (docs/upstream.md §6).
    re.compile(r"(?i)([?&]token=)[^\s&'\"]+"),
    # The argument of a /link command wherever a library prints the message text (PTB logs every raw
    # update at DEBUG before any handler runs), also as an escaped newline inside a repr or JSON.
    re.compile(r"(?i)(/link(?:@\w+)?(?:\s|\\[nrt])+)[^\s'\"\\,}]+"),
)
MASK = "***"


class Redactor(logging.Filter):
    """Masks registered secrets (exact values) and token-shaped text in every record."""

    def __init__(self) -> None:
        super().__init__("redactor")
        self._secrets: set[str] = set()
        self._matcher: re.Pattern[str] | None = None

    def add(self, *secrets: str | None) -> None:
        # Very short values would mask ordinary words; real tokens are long.
        self._secrets.update(s for s in secrets if s and len(s) >= 8)
        self._matcher = None

    def discard(self, *secrets: str | None) -> None:
        """Stop masking values no longer in use (a rejected or unlinked token): the list stays as
        long as the tokens actually linked, not as long as every attempt ever made."""
        for secret in secrets:
            if secret:
                self._secrets.discard(secret)
        self._matcher = None

    def __len__(self) -> int:
        return len(self._secrets)

    def __contains__(self, secret: object) -> bool:
        return secret in self._secrets

    def redact(self, text: str) -> str:
        if self._secrets:
            if self._matcher is None:
                # One alternation, longest first so a secret containing another is masked whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._matcher = re.compile("|".join(map(re.escape, ordered)))
            text = self._matcher.sub(MASK, text)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatting the traceback ourselves lets the text pass through the filter.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def configure(level: str | int = "INFO", redactor: Redactor | None = None, stream: TextIO | None = None) -> Redactor:
    """Install one redacting stream handler on the root logger; quiet URL-logging libraries."""
    redactor = redactor or Redactor()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_relay_handler", False):
            root.removeHandler(old)
    handler._relay_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("httpx", "httpcore", "websockets"):
        # They log full request URLs, which carry the Telegram bot token (httpx) or the agent
        # token (the doorbell's `?token=`, websockets at DEBUG).
        logging.getLogger(name).setLevel(logging.WARNING)
    # A tick skipped because the agent's previous poll still runs is normal, not a warning;
    # every job start and end at INFO would drown the relay's own lines.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    executor = logging.getLogger("apscheduler.executors.default")
    if not any(isinstance(f, CancelledJobFilter) for f in executor.filters):
        executor.addFilter(CancelledJobFilter())
    return redactor


class CancelledJobFilter(logging.Filter):
    """Drops APScheduler's "Job … raised an exception" for a job cancelled by the scheduler's
    shutdown (a poll claim or a brief check under way when the relay stops, e.g. after a platform
    refused to start): that is the stop the operator asked for, not an error with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def protect_handlers(redactor: Redactor, handlers: Iterable[logging.Handler]) -> None:
    """Attach the redactor to handlers created elsewhere (e.g. pytest's capture handler)."""
    for handler in handlers:
        handler.addFilter(redactor)
