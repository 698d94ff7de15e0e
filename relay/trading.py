"""The trader's commands: positions, traders, prices, points, rankings, posting, trading, intel.

Each handler parses its arguments (raising `UsageError` with a short reason), calls AI-Trader
through the client, and renders with `relay.cards` / `relay.intel`. `/trade` only opens an order;
`/confirm` (the Confirm button) publishes it through `relay.trades`.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from relay import cards
from relay.aitrader import AITraderClient, checked_id
from relay.errors import NotFound, NotLinked, RateLimited, UsageError
from relay.i18n import N_, Catalogues, Translator
from relay.intel import Intel
from relay.models import Action, Command, Message, Reply, TradeOrder
from relay.names import AgentDirectory, NoSuchAgent
from relay.render import clip
from relay.store import ActingAgent, Store
from relay.trades import CONFIRM_WINDOW, TradeDesk

MARKETS: tuple[str, ...] = ("us-stock", "crypto", "polymarket")
SIDES: tuple[str, ...] = ("buy", "sell", "short", "cover")
POST_KINDS: tuple[str, ...] = ("strategy", "discussion")
DEFAULT_POST_MARKET = "general"
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$")
_TOKEN_ID = re.compile(r"^\d{6,100}$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9_\-]{8,40}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TITLE_LIMIT = 200
POST_LIMIT = 4000


def _id(value: str, name: str) -> int:
    return checked_id(value, name)  # a BadId is a UsageError


def _positive(value: str, name: str) -> float:
    try:
        number = float(value.replace(",", ""))
    except ValueError:
        raise UsageError(N_("{name} must be a number like 10 or 0.5"), name=name) from None
    if not math.isfinite(number) or number <= 0:
        raise UsageError(N_("{name} must be greater than 0"), name=name)
    return number


def _market(value: str) -> str:
    market = value.lower()
    if market not in MARKETS:
        raise UsageError(N_("{name} must be one of {choices}"), name="market", choices=", ".join(MARKETS))
    return market


def instrument(symbol: str, market: str) -> tuple[str, str, str]:
    """(symbol, token_id, outcome). Polymarket takes `<slug>:<outcome>` or an outcome token id."""
    if market == "polymarket":
        if _TOKEN_ID.match(symbol):
            return symbol, symbol, ""
        slug, sep, outcome = symbol.partition(":")
        if not sep or not slug or not outcome or not _SYMBOL.match(slug) or len(outcome) > 40:
            raise UsageError(
                N_("a Polymarket symbol is <market-slug>:<outcome> (e.g. will-btc-hit-120k:Yes) or a token id")
            )
        return slug, "", outcome
    if not _SYMBOL.match(symbol):
        raise UsageError(N_("symbol is letters and digits, like AAPL or BTC"))
    return symbol.upper(), "", ""


def _clean(text: str) -> str:
    return _CONTROL.sub("", text).strip()


class Cockpit:
    def __init__(
        self,
        store: Store,
        client: AITraderClient,
        names: AgentDirectory,
        desk: TradeDesk,
        *,
        linked: Callable[[Command], Awaitable[ActingAgent]],
        clock: Callable[[], float] = time.time,
        catalogues: Catalogues | None = None,
    ) -> None:
        self._catalogues = catalogues or Catalogues.load()
        self._store = store
        self._client = client
        self._names = names
        self._desk = desk
        self._intel = Intel(client)
        self._linked = linked  # the caller's agent, or the "link first" usage error
        self._clock = clock

    def _t(self, command: Command) -> Translator:
        return self._catalogues.translator(command.language)

    async def _token_for(self, user: str, agent_id: int) -> str:
        agent = await self._store.agent_for_user(user)
        if agent is None or agent.token is None:
            raise NotLinked()
        if agent.agent_id != agent_id:
            raise UsageError(
                N_("you linked another agent since; run /trade again as #{agent_id}"), agent_id=agent.agent_id
            )
        return agent.token

    # --- reading -------------------------------------------------------------------------------
    async def positions(self, command: Command) -> Reply:
        t = self._t(command)
        agent = await self._linked(command)
        book = await self._client.positions(agent.token)
        leaders = await self._names.names(p.leader_id for p in book.positions if p.leader_id is not None)
        at = datetime.fromtimestamp(self._clock(), UTC).strftime("%H:%M:%S UTC")
        stamp = t.gettext("updated {time}", time=at)
        refresh = Action(t.gettext("Refresh"), "positions", {}, replace=True)
        title = t.gettext(
            "Positions: {name} (#{agent_id})", name=agent.name or t.gettext("your agent"), agent_id=agent.agent_id
        )
        return Reply((cards.positions(title, book, leaders, refresh=refresh, as_of=stamp, t=t),))

    async def trader(self, command: Command) -> Reply:
        agent_id = _id(command.args["agent_id"], "agent_id")
        summary = await self._names.summary(agent_id)
        if summary is None:
            raise NoSuchAgent(agent_id)
        recent = await self._client.agent_signals(agent_id, limit=5)
        book = await self._client.agent_positions(agent_id)
        t = self._t(command)
        ref = {"agent_id": str(agent_id)}
        actions = (
            Action(t.gettext("Follow"), "follow", ref),
            Action(t.gettext("Unfollow"), "unfollow", ref),
            Action(t.gettext("Watch"), "subscribe", {"what": f"trader {agent_id}"}),
        )
        return Reply((cards.trader(summary, recent, book, actions=actions, t=t),))

    async def price(self, command: Command) -> Reply:
        market = _market(command.args.get("market") or "us-stock")
        symbol, token_id, outcome = instrument(command.args["symbol"].strip(), market)
        agent = await self._linked(command)  # /api/price is authenticated
        try:
            quote = await self._client.price(agent.token, symbol, market, token_id=token_id, outcome=outcome)
        except NotFound:
            return Reply.text(
                self._t(command).gettext(
                    "AI-Trader has no current price for {symbol} ({market}): nobody holds it yet.",
                    symbol=symbol,
                    market=market,
                )
            )
        return Reply((cards.quote(quote, symbol, self._t(command)),))

    async def points(self, command: Command) -> Reply:
        agent = await self._linked(command)
        me = await self._client.me(agent.token)
        card = cards.points(me.name or agent.name, me.agent_id, me.points, me.cash, self._t(command))
        return Reply((card,), private=True)

    async def leaderboard(self, command: Command) -> Reply:
        raw = command.args.get("days", "") or "30"
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 365:
            raise UsageError(N_("days must be a number from 1 to 365"))
        days = int(raw)
        rows = await self._client.leaderboard(days=days, limit=10)
        return Reply((cards.leaderboard(rows, days, self._t(command)),))

    async def trending(self, command: Command) -> Reply:
        return Reply((cards.trending(await self._client.trending(10), self._t(command)),))

    async def intel(self, command: Command) -> Reply:
        return Reply((await self._intel.show(command.args.get("what", "").split(), self._t(command)),))

    # --- writing -------------------------------------------------------------------------------
    async def post(self, command: Command) -> Reply:
        kind = command.args["kind"].lower()
        text = _clean(command.args.get("text", ""))
        head, sep, body = text.partition("|")
        words = head.split()
        market = DEFAULT_POST_MARKET
        if words and words[0].lower() in MARKETS:
            market = words.pop(0).lower()
        title, body = " ".join(words), body.strip()
        if not sep or not title or not body:
            raise UsageError(N_("write a title, a |, then the text: /post strategy BTC breakout | Long above 70k"))
        if len(title) > TITLE_LIMIT or len(body) > POST_LIMIT:
            raise UsageError(
                N_("the title is at most {title_limit} characters and the text {text_limit}"),
                title_limit=TITLE_LIMIT,
                text_limit=POST_LIMIT,
            )
        agent = await self._linked(command)
        if kind == "strategy":
            signal_id = await self._client.post_strategy(agent.token, market, title, body)
        else:
            signal_id = await self._client.post_discussion(agent.token, market, title, body)
        t = self._t(command)
        heading = (
            t.gettext("Published {kind} as signal {signal_id}", kind=kind, signal_id=signal_id)
            if signal_id
            else t.gettext("Published {kind}", kind=kind)
        )
        return Reply(
            (
                Message(
                    title=heading,
                    body=f"{title}\n{clip(body, 300)}",
                    footer=t.gettext(
                        "{name} · {market} · your followers are notified",
                        name=agent.name or t.gettext("your agent"),
                        market=market,
                    ),
                ),
            )
        )

    async def accept(self, command: Command) -> Reply:
        signal_id = _id(command.args["signal_id"], "signal_id")
        reply_id = _id(command.args["reply_id"], "reply_id")
        agent = await self._linked(command)
        await self._client.accept_reply(agent.token, signal_id, reply_id)
        return Reply.text(
            self._t(command).gettext(
                "Accepted reply {reply_id} on signal {signal_id}; its author is notified.",
                reply_id=reply_id,
                signal_id=signal_id,
            )
        )

    async def trade(self, command: Command) -> Reply:
        side = command.args["side"].lower()
        if side not in SIDES:
            raise UsageError(N_("{name} must be one of {choices}"), name="side", choices=", ".join(SIDES))
        price_word = command.args.get("price", "")
        market = _market(command.args.get("market") or "us-stock")
        symbol, token_id, outcome = instrument(command.args["symbol"].strip(), market)
        quantity = _positive(command.args["quantity"], "quantity")
        if market == "polymarket" and side in ("short", "cover"):
            raise UsageError(N_("Polymarket trades are buy or sell of an outcome"))
        price = _positive(price_word, "price") if price_word else None
        agent = await self._linked(command)
        quoted: float | None = None
        if price is None:
            with contextlib.suppress(NotFound, RateLimited):  # no quote: the card says "market price"
                quote = await self._client.price(agent.token, symbol, market, token_id=token_id, outcome=outcome)
                quoted = quote.price
            if market == "us-stock" and quoted is None:
                raise UsageError(
                    N_("AI-Trader has no current price for {symbol}; give one as the last word"), symbol=symbol
                )
        t = self._t(command)
        if market != "us-stock":
            # AI-Trader prices crypto and Polymarket itself at execution; a price sent is ignored.
            note = (
                t.gettext("market, priced by AI-Trader (about {price})", price=cards.num(quoted))
                if quoted
                else t.gettext("market, priced by AI-Trader")
            )
        elif price is not None:
            note = t.gettext("{price} (yours)", price=cards.num(price))
        else:
            note = t.gettext("market, about {price}", price=cards.num(quoted or 0.0))
        price = price if price is not None else quoted or 0.0
        order = TradeOrder(side, symbol, quantity, market, price, token_id, outcome)
        order_id = await self._desk.open(command.user.key, command.user.display, agent.agent_id, order)
        actions = (
            Action(t.gettext("Confirm"), "confirm", {"id": order_id}, replace=True),
            Action(t.gettext("Cancel"), "confirm", {"id": order_id, "decision": "cancel"}, replace=True),
        )
        card = cards.pending_trade(order, price_note=note, actions=actions, seconds=CONFIRM_WINDOW, t=t)
        return Reply((card,))

    async def confirm(self, command: Command) -> Reply:
        order_id = command.args["id"].strip()
        if not _ORDER_ID.match(order_id):
            raise UsageError(N_("that is not an order id from /trade"))
        t = self._t(command)
        if (command.args.get("decision") or "").lower() == "cancel":
            return await self._desk.cancel(order_id, command.user.key, t)
        return await self._desk.confirm(order_id, command.user.key, self._token_for, t)
