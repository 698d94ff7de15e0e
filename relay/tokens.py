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


class TokenBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("RELAY_SECRET_KEY: expects 32 bytes in urlsafe base64 (or 64 hex characters)")
        self._aead = AESGCM(key)

    @classmethod
    def from_text(cls, text: str) -> TokenBox:
        stripped = text.strip()
        if re.fullmatch(r"[0-9a-fA-F]{64}", stripped):
            # 32 bytes as hex: what PaaS secret generators make (app.json's "generator": "secret").
            # As base64 the same text would be 48 bytes, never a valid key, so nothing is ambiguous.
            return cls(bytes.fromhex(stripped))
        try:
            key = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
        except (binascii.Error, ValueError):
            raise ConfigError("RELAY_SECRET_KEY: expects 32 bytes in urlsafe base64 (or 64 hex characters)") from None
        return cls(key)

    def seal(self, token: str, agent_id: int) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, token.encode(), _aad(agent_id))
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode()

    def open(self, sealed: str, agent_id: int) -> str | None:
        """The token, or None when the record is damaged or belongs to another agent/key."""
        try:
            raw = base64.urlsafe_b64decode(sealed)
            if raw[:2] != _VERSION:
                return None
            return self._aead.decrypt(raw[2:14], raw[14:], _aad(agent_id)).decode()
        except (InvalidTag, ValueError, binascii.Error):
            return None


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
    data_dir.mkdir(parents=True, exist_ok=True)
    text = new_key_text()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return TokenBox.from_text(text)


def new_key_text() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
