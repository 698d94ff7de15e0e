"""The command table: every command the relay understands, declared once.

Adapters register commands from this table (Telegram's menu, Discord's slash commands, the
console's help), and `/help` is rendered from it. Handlers live in `relay.commands`.
"""

from __future__ import annotations

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
    CommandSpec("start", "What this bot does and how to begin"),
    CommandSpec("help", "List the commands"),
    CommandSpec(
        "link",
        "Link your AI-Trader agent (private chat only)",
        (
            Param("token", "your agent token"),
            Param("mode", "consume (default) or observe", required=False, choices=LINK_MODES),
        ),
        private_only=True,
    ),
    CommandSpec("unlink", "Unlink your agent and remove its routes"),
    CommandSpec(
        "subscribe",
        "Route notifications here: kinds, feed <keyword> [type], trader <agent_id>, or intel daily <HH:MM>",
        (
            Param(
                "what",
                "kinds (replies … all), feed <keyword> [type], trader <agent_id>, intel daily <HH:MM> [sections]",
                required=False,
                rest=True,
            ),
        ),
        admin_in_groups=True,
    ),
    CommandSpec(
        "unsubscribe",
        "Remove a subscription by its id",
        (Param("id", "subscription id from /subscriptions"),),
        admin_in_groups=True,
    ),
    CommandSpec("subscriptions", "List this chat's subscriptions"),
    CommandSpec(
        "notify",
        "Set a kind on, silent or off in this chat",
        (
            Param("kind", "notification kind", required=False, choices=KINDS),
            Param("mode", "on, silent or off", required=False, choices=KIND_MODES),
        ),
        admin_in_groups=True,
    ),
    CommandSpec(
        "feed",
        "Search the public feed",
        (
            Param("keyword", "word to search for"),
            Param("type", "operation, strategy or discussion", required=False, choices=FEED_TYPES),
            Param("page", "page number", required=False),
        ),
    ),
    CommandSpec("replies", "Show the replies to a signal, with their ids", (Param("signal_id", "signal id"),)),
    CommandSpec(
        "accept",
        "Accept a reply to your agent's signal",
        (Param("signal_id", "signal id"), Param("reply_id", "reply id from /replies")),
    ),
    CommandSpec(
        "reply",
        "Reply to a signal as your agent",
        (Param("signal_id", "signal id"), Param("text", "your reply", rest=True)),
    ),
    CommandSpec(
        "send", "Send a message to an agent", (Param("agent_id", "agent id"), Param("text", "message", rest=True))
    ),
    CommandSpec(
        "task",
        "Create a task for an agent",
        (
            Param("agent_id", "agent id"),
            Param("type", "task type"),
            Param("json", "input data as a JSON object", required=False, rest=True),
        ),
    ),
    CommandSpec(
        "discussions", "Your agent's discussions and strategies", (Param("keyword", "filter", required=False),)
    ),
    CommandSpec("follow", "Follow a trader", (Param("agent_id", "trader's agent id"),)),
    CommandSpec("unfollow", "Stop following a trader", (Param("agent_id", "trader's agent id"),)),
    CommandSpec("following", "Traders your agent follows"),
    CommandSpec("status", "Linked agent, last poll, queued and failed deliveries"),
    CommandSpec(
        "why",
        "What happened to a notification in this chat: fetched, routed, held, sent or not, and why",
        (Param("ref", "the reference at the end of a notification, or a signal id"),),
    ),
    CommandSpec(
        "chart",
        "A chart: profit [agent_id] [days], positions, or <symbol> [market]",
        (
            Param("what", "profit, positions, or a symbol such as NVDA"),
            Param("option", "profit: an agent id; a symbol: its market (us-stock, crypto, polymarket)", required=False),
            Param("days", "profit: days to show, 1-365 (default 30)", required=False),
        ),
    ),
    CommandSpec(
        "timezone",
        "Show or set this chat's time zone (for the daily brief, quiet hours and digests)",
        (Param("zone", "an IANA time zone such as Europe/Berlin (default UTC)", required=False),),
        admin_in_groups=True,
    ),
    # --- when a chat hears about things (relay.holding) ---
    CommandSpec(
        "quiet",
        "Quiet hours: hold notifications then and send one summary after",
        (Param("hours", "HH:MM-HH:MM in this chat's time zone, or off", required=False, rest=True),),
        admin_in_groups=True,
    ),
    CommandSpec(
        "snooze",
        "Hold every notification for a while, then send one summary",
        (Param("duration", "e.g. 30m, 2h, 1h30m (up to 7 days), or off", required=False),),
        admin_in_groups=True,
    ),
    CommandSpec(
        "digest",
        "Collect kinds into one message per period: <kinds…> hourly | daily HH:MM | off",
        (Param("what", "kinds (replies … watches, all) then hourly, daily HH:MM or off", required=False, rest=True),),
        admin_in_groups=True,
    ),
    CommandSpec(
        "held",
        "List the notifications of the last summary or digest",
        (
            Param("batch", "the id a summary names (default: the last one)", required=False),
            Param("page", "page number", required=False),
        ),
    ),
    # --- the trader's cockpit (relay.trading) ---
    CommandSpec("positions", "Your agent's open positions, PnL and cash"),
    CommandSpec(
        "trader", "A trader's summary, recent signals and positions", (Param("agent_id", "trader's agent id"),)
    ),
    CommandSpec(
        "price",
        "Current price of a symbol (Polymarket: <slug>:<outcome> or a token id)",
        (
            Param("symbol", "symbol, e.g. AAPL, BTC, or slug:Yes"),
            Param("market", "us-stock (default), crypto or polymarket", required=False, choices=MARKETS),
        ),
    ),
    CommandSpec("points", "Your agent's points and cash"),
    CommandSpec("leaderboard", "Top traders by profit", (Param("days", "period in days, 1-365", required=False),)),
    CommandSpec("trending", "Symbols held by the most agents"),
    CommandSpec(
        "post",
        "Publish a strategy or discussion: [market] <title> | <text>",
        (
            Param("kind", "strategy or discussion", choices=POST_KINDS),
            Param("text", "[market] title | text", rest=True),
        ),
    ),
    CommandSpec(
        "trade",
        "Publish a trade as your agent, after you press Confirm",
        (
            Param("side", "buy, sell, short or cover", choices=TRADE_SIDES),
            Param("symbol", "symbol, e.g. AAPL, BTC, or slug:Yes"),
            Param("quantity", "how many"),
            Param("market", "us-stock (default), crypto or polymarket", required=False, choices=MARKETS),
            Param("price", "price (us-stock); default: the current price", required=False),
        ),
    ),
    CommandSpec(
        "confirm",
        "Confirm or cancel a pending /trade (its buttons do this)",
        (
            Param("id", "order id"),
            Param("decision", "confirm or cancel", required=False, choices=("confirm", "cancel")),
        ),
    ),
    CommandSpec(
        "intel",
        "Market intelligence: overview, macro, etf, news [category], stock <symbol>",
        (Param("what", "overview, macro, etf, news [category] or stock <symbol>", required=False, rest=True),),
    ),
)

# For the users in OWNER_IDS only, in a private chat; everyone else is told it is unknown.
ADMIN = CommandSpec(
    "admin",
    "Operator commands: stats, deadletters, replay [chat|all]",
    (Param("what", "stats, deadletters, or replay [chat|all]", required=False, rest=True),),
    private_only=True,
    hidden=True,
)

BY_NAME: dict[str, CommandSpec] = {c.name: c for c in (*COMMANDS, ADMIN)}
