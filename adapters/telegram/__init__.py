"""Telegram adapter (python-telegram-bot 22): commands in, notifications out.

Import `TelegramAdapter` and `TelegramSettings` from here; the modules behind them are private.
"""

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.settings import TelegramSettings

__all__ = ["TelegramAdapter", "TelegramSettings"]
