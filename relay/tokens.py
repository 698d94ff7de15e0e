"""Encrypts linked agent tokens at rest (AES-256-GCM, cryptography).

Redis is treated as readable by an attacker (docs/architecture.md, "Security"). The associated data binds a
ciphertext to its agent, so a record copied onto another agent fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relay.errors import ConfigError

_VERSION = b"v1"


_KEY_ERROR = "RELAY_SECRET_KEY: expects 32 bytes in urlsafe base64 (or 64 hex characters)"


class TokenBox:
    """Seals with the newest key; opens with any of the keys (newest first), so a key can be
    rotated: put the new key in front, run `aitrader-relay rekey`, then drop the old one."""

    def __init__(self, key: bytes, *older: bytes) -> None:
        for k in (key, *older):
            if len(k) != 32:
                raise ConfigError(_KEY_ERROR)
        self._aeads = [AESGCM(k) for k in (key, *older)]

    @classmethod
    def from_text(cls, text: str) -> TokenBox:
        """One key, or a list separated by commas or whitespace: the newest first."""
        parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
        if not parts:
            raise ConfigError(_KEY_ERROR)
        keys = [_key_bytes(p) for p in parts]
        return cls(keys[0], *keys[1:])

    @property
    def key_count(self) -> int:
        return len(self._aeads)

    def seal(self, token: str, agent_id: int) -> str:
        nonce = os.urandom(12)
        sealed = self._aeads[0].encrypt(nonce, token.encode(), _aad(agent_id))
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode()

    def open(self, sealed: str, agent_id: int) -> str | None:
        """The token, or None when the record is damaged or belongs to another agent/key."""
        opened = self.open_with_index(sealed, agent_id)
        return opened[0] if opened else None

    def open_with_index(self, sealed: str, agent_id: int) -> tuple[str, int] | None:
        """The token and the position of the key that opened it (0: the newest), or None."""
        try:
            raw = base64.urlsafe_b64decode(sealed)
        except (ValueError, binascii.Error):
            return None
        if raw[:2] != _VERSION:
            return None
        for index, aead in enumerate(self._aeads):
            try:
                return aead.decrypt(raw[2:14], raw[14:], _aad(agent_id)).decode(), index
            except (InvalidTag, ValueError):
                continue
        return None


def _key_bytes(text: str) -> bytes:
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        # 32 bytes as hex: what PaaS secret generators make (app.json's "generator": "secret").
        # As base64 the same text would be 48 bytes, never a valid key, so nothing is ambiguous.
        return bytes.fromhex(text)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ConfigError(_KEY_ERROR) from None


def fingerprint(token: str) -> str:
    """A short, non-reversible label for a token (safe to log and to key a notice on)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _aad(agent_id: int) -> bytes:
    return f"aitrader-agent:{agent_id}".encode()


def load_or_create_key(configured: str | None, data_dir: Path, *, embedded: bool) -> TokenBox:
    """The configured key; in embedded mode a generated one kept beside the data (mode 0600)."""
    if configured:
        return TokenBox.from_text(configured)
    if not embedded:
        raise ConfigError(
            "RELAY_SECRET_KEY: required when REDIS_URL is set (generate one with `aitrader-relay keygen`)"
        )
    path = data_dir / "secret.key"
    if path.exists():
        return TokenBox.from_text(path.read_text())
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = new_key_text()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return TokenBox.from_text(text)


def exposure_warnings(data_dir: Path) -> list[str]:
    """One line for each of the data directory and the key file that other users can read or
    enter (the key opens every stored token; the AOF holds the sealed tokens and chat ids)."""
    out = []
    for path, what in ((data_dir, "data directory"), (data_dir / "secret.key", "key file")):
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            continue
        if mode & 0o077:
            out.append(
                f"RELAY_DATA_DIR: the {what} {path} is open to other users (mode {mode:o}); "
                f"run: chmod {'700' if path.is_dir() else '600'} {path}"
            )
    return out


def new_key_text() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
