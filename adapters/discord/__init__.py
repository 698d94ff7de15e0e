"""Discord adapter: slash commands, buttons and modals in; embeds out (discord.py 2.x).

Import `DiscordAdapter` and `DiscordSettings` from here; the modules behind them are private.
"""

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.gateway import GatewayTiming
from adapters.discord.settings import DiscordSettings

__all__ = ["DiscordAdapter", "DiscordSettings", "GatewayTiming"]
