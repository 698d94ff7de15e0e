"""The command table: every command the relay understands, declared once.

Adapters register commands from this table (Telegram's menu, Discord's slash commands, the
console's help), and `/help` is rendered from it. Handlers live in `relay.commands`.
Descriptions are English marked with `N_()`; whoever shows one translates it (`Translator.gettext`).
"""

from __future__ import annotations

from relay.i18n import LANGUAGES, N_
from relay.models import CommandSpec, Param

KINDS: tuple[str, ...] = (
    "replies",
    "mentions",
    "accepted",
    "followers",
    "strategies",
    "discussions",
    "messages",
    "tasks",
)
KIND_MODES: tuple[str, ...] = ("on", "silent", "off")
FEED_TYPES: tuple[str, ...] = ("operation", "strategy", "discussion")
LINK_MODES: tuple[str, ...] = ("consume", "observe")
MARKETS: tuple[str, ...] = ("us-stock", "crypto", "polymarket")
TRADE_SIDES: tuple[str, ...] = ("buy", "sell", "short", "cover")
POST_KINDS: tuple[str, ...] = ("strategy", "discussion")

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("start", N_("What this bot does and how to begin")),
    CommandSpec("help", N_("List the commands")),
    CommandSpec(
        "link",
        N_("Link your AI-Trader agent (private chat only)"),
        (
            Param("token", N_("your agent token")),
            Param("mode", N_("consume (default) or observe"), required=False, choices=LINK_MODES),
        ),
        private_only=True,
    ),
    CommandSpec("unlink", N_("Unlink your agent and remove its routes")),
    CommandSpec(
        "subscribe",
        N_("Route notifications here: kinds, feed <keyword> [type], trader <agent_id>, or intel daily <HH:MM>"),
        (
            Param(
                "what",
                N_("kinds (replies … all), feed <keyword> [type], trader <agent_id>, intel daily <HH:MM> [sections]"),
                required=False,
                rest=True,
            ),
        ),
        admin_in_groups=True,
    ),
    CommandSpec(
        "unsubscribe",
        N_("Remove a subscription by its id"),
        (Param("id", N_("subscription id from /subscriptions")),),
        admin_in_groups=True,
    ),
    CommandSpec("subscriptions", N_("List this chat's subscriptions")),
    CommandSpec(
        "notify",
        N_("Set a kind on, silent or off in this chat"),
        (
            Param("kind", N_("notification kind"), required=False, choices=KINDS),
            Param("mode", N_("on, silent or off"), required=False, choices=KIND_MODES),
        ),
        admin_in_groups=True,
    ),
    CommandSpec(
        "feed",
        N_("Search the public feed"),
        (
            Param("keyword", N_("word to search for")),
            Param("type", N_("operation, strategy or discussion"), required=False, choices=FEED_TYPES),
            Param("page", N_("page number"), required=False),
        ),
    ),
    CommandSpec("replies", N_("Show the replies to a signal, with their ids"), (Param("signal_id", N_("signal id")),)),
    CommandSpec(
        "accept",
        N_("Accept a reply to your agent's signal"),
        (Param("signal_id", N_("signal id")), Param("reply_id", N_("reply id from /replies"))),
    ),
    CommandSpec(
        "reply",
        N_("Reply to a signal as your agent"),
        (Param("signal_id", N_("signal id")), Param("text", N_("your reply"), rest=True)),
    ),
    CommandSpec(
        "send",
        N_("Send a message to an agent"),
        (Param("agent_id", N_("agent id")), Param("text", N_("message"), rest=True)),
    ),
    CommandSpec(
        "task",
        N_("Create a task for an agent"),
        (
            Param("agent_id", N_("agent id")),
            Param("type", N_("task type")),
            Param("json", N_("input data as a JSON object"), required=False, rest=True),
        ),
    ),
    CommandSpec(
        "discussions", N_("Your agent's discussions and strategies"), (Param("keyword", N_("filter"), required=False),)
    ),
    CommandSpec("follow", N_("Follow a trader"), (Param("agent_id", N_("trader's agent id")),)),
    CommandSpec("unfollow", N_("Stop following a trader"), (Param("agent_id", N_("trader's agent id")),)),
    CommandSpec("following", N_("Traders your agent follows")),
    CommandSpec("status", N_("Linked agent, last poll, queued and failed deliveries")),
    CommandSpec(
        "why",
        N_("What happened to a notification in this chat: fetched, routed, held, sent or not, and why"),
        (Param("ref", N_("the reference at the end of a notification, or a signal id")),),
    ),
    CommandSpec(
        "chart",
        N_("A chart: profit [agent_id] [days], positions, or <symbol> [market]"),
        (
            Param("what", N_("profit, positions, or a symbol such as NVDA")),
            Param(
                "option", N_("profit: an agent id; a symbol: its market (us-stock, crypto, polymarket)"), required=False
            ),
            Param("days", N_("profit: days to show, 1-365 (default 30)"), required=False),
        ),
    ),
    CommandSpec(
        "timezone",
        N_("Show or set this chat's time zone (for the daily brief, quiet hours and digests)"),
        (Param("zone", N_("an IANA time zone such as Europe/Berlin (default UTC)"), required=False),),
        admin_in_groups=True,
    ),
    CommandSpec(
        "language",
        N_("Show or set this chat's language: en, zh, or auto (each user's own)"),
        (Param("language", N_("en (English), zh (简体中文) or auto"), required=False, choices=(*LANGUAGES, "auto")),),
        admin_in_groups=True,
    ),
    # --- when a chat hears about things (relay.holding) ---
    CommandSpec(
        "quiet",
        N_("Quiet hours: hold notifications then and send one summary after"),
        (Param("hours", N_("HH:MM-HH:MM in this chat's time zone, or off"), required=False, rest=True),),
        admin_in_groups=True,
    ),
    CommandSpec(
        "snooze",
        N_("Hold every notification for a while, then send one summary"),
        (Param("duration", N_("e.g. 30m, 2h, 1h30m (up to 7 days), or off"), required=False),),
        admin_in_groups=True,
    ),
    CommandSpec(
        "digest",
        N_("Collect kinds into one message per period: <kinds…> hourly | daily HH:MM | off"),
        (
            Param(
                "what", N_("kinds (replies … watches, all) then hourly, daily HH:MM or off"), required=False, rest=True
            ),
        ),
        admin_in_groups=True,
    ),
    CommandSpec(
        "held",
        N_("List the notifications of the last summary or digest"),
        (
            Param("batch", N_("the id a summary names (default: the last one)"), required=False),
            Param("page", N_("page number"), required=False),
        ),
    ),
    # --- the trader's cockpit (relay.trading) ---
    CommandSpec("positions", N_("Your agent's open positions, PnL and cash")),
    CommandSpec(
        "trader", N_("A trader's summary, recent signals and positions"), (Param("agent_id", N_("trader's agent id")),)
    ),
    CommandSpec(
        "price",
        N_("Current price of a symbol (Polymarket: <slug>:<outcome> or a token id)"),
        (
            Param("symbol", N_("symbol, e.g. AAPL, BTC, or slug:Yes")),
            Param("market", N_("us-stock (default), crypto or polymarket"), required=False, choices=MARKETS),
        ),
    ),
    CommandSpec("points", N_("Your agent's points and cash")),
    CommandSpec(
        "leaderboard", N_("Top traders by profit"), (Param("days", N_("period in days, 1-365"), required=False),)
    ),
    CommandSpec("trending", N_("Symbols held by the most agents")),
    CommandSpec(
        "post",
        N_("Publish a strategy or discussion: [market] <title> | <text>"),
        (
            Param("kind", N_("strategy or discussion"), choices=POST_KINDS),
            Param("text", N_("[market] title | text"), rest=True),
        ),
    ),
    CommandSpec(
        "trade",
        N_("Publish a trade as your agent, after you press Confirm"),
        (
            Param("side", N_("buy, sell, short or cover"), choices=TRADE_SIDES),
            Param("symbol", N_("symbol, e.g. AAPL, BTC, or slug:Yes")),
            Param("quantity", N_("how many")),
            Param("market", N_("us-stock (default), crypto or polymarket"), required=False, choices=MARKETS),
            Param("price", N_("price (us-stock); default: the current price"), required=False),
        ),
    ),
    CommandSpec(
        "confirm",
        N_("Confirm or cancel a pending /trade (its buttons do this)"),
        (
            Param("id", N_("order id")),
            Param("decision", N_("confirm or cancel"), required=False, choices=("confirm", "cancel")),
        ),
    ),
    CommandSpec(
        "intel",
        N_("Market intelligence: overview, macro, etf, news [category], stock <symbol>"),
        (Param("what", N_("overview, macro, etf, news [category] or stock <symbol>"), required=False, rest=True),),
    ),
)

# For the users in OWNER_IDS only, in a private chat; everyone else is told it is unknown.
ADMIN = CommandSpec(
    "admin",
    N_("Operator commands: stats, deadletters, replay [chat|all]"),
    (Param("what", N_("stats, deadletters, or replay [chat|all]"), required=False, rest=True),),
    private_only=True,
    hidden=True,
)

BY_NAME: dict[str, CommandSpec] = {c.name: c for c in (*COMMANDS, ADMIN)}
