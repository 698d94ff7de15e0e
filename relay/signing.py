"""Short HMAC signatures for data that round-trips through a chat client (button payloads).

Telegram's callback_data and Discord's custom_id come back exactly as any client chooses to send
them, so a button's payload is signed together with the chat it was sent to: a forged or copied
payload fails verification. The key is derived from a secret the deployment already keeps out of
Redis (the bot token), so every process of one bot agrees on it without storing anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SIG_BYTES = 8  # 64 bits: forging means guessing, one callback at a time against a rate-limited bot
SIG_CHARS = 11  # urlsafe base64 of 8 bytes, unpadded


class Signer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("signing key too short")
        self._key = key

    @classmethod
    def derived(cls, secret: str, purpose: str) -> Signer:
        """A key of its own for `purpose`, derived from a deployment secret (never the secret itself)."""
        return cls(hmac.new(secret.encode(), b"aitrader-relay:" + purpose.encode(), hashlib.sha256).digest())

    @classmethod
    def random(cls) -> Signer:
        """For one process only (tests, tools): signatures do not survive a restart."""
        return cls(os.urandom(32))

    def sign(self, payload: str, scope: str) -> str:
        digest = hmac.new(self._key, f"{scope}\x00{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:SIG_BYTES]).decode().rstrip("=")

    def verify(self, payload: str, scope: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(payload, scope).encode(), signature.encode())
