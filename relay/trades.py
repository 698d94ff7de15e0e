"""The Confirm step of `/trade`: an order waits in Redis until the user who asked presses Confirm.

`POST /api/signals/realtime` is not idempotent (a retry is a second trade), so one order is
published at most once whoever presses, however often, in whichever process: the press that wins
`SET trade:<id>:claim NX` publishes; every other press reads how it ended (`trade:<id>:done`).
The 60-second window is measured with the injected clock against the order's creation time.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from relay import cards
from relay.aitrader import AITraderClient
from relay.errors import OutcomeUnknown, RateLimited, TokenRejected, UpstreamError, UpstreamUnavailable
from relay.i18n import ENGLISH, Translator
from relay.keys import ORDER_RESULT_TTL, ORDER_TTL, Keys
from relay.models import Message, Reply, TradeOrder

log = logging.getLogger(__name__)

CONFIRM_WINDOW = 60  # seconds the user has to press Confirm; the stored order lives ORDER_TTL (longer)


@dataclass(frozen=True, slots=True)
class PendingTrade:
    user: str  # UserRef.key of who asked: the only one who may confirm
    display: str
    agent_id: int
    order: TradeOrder
    created: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> PendingTrade:
        d = json.loads(raw)
        return cls(d["user"], d["display"], int(d["agent_id"]), TradeOrder(**d["order"]), float(d["created"]))


TokenFor = Callable[[str, int], Awaitable[str]]  # (user key, agent id) -> token, or UsageError


class TradeDesk:
    def __init__(
        self, redis: Redis, keys: Keys, client: AITraderClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._r = redis
        self._k = keys
        self._client = client
        self._clock = clock

    async def open(self, user: str, display: str, agent_id: int, order: TradeOrder) -> str:
        order_id = secrets.token_urlsafe(12)
        pending = PendingTrade(user, display, agent_id, order, self._clock())
        await self._r.set(self._k.trade(order_id), pending.to_json(), ex=ORDER_TTL)
        return order_id

    async def confirm(self, order_id: str, user: str, token_for: TokenFor, t: Translator = ENGLISH) -> Reply:
        raw = await self._r.get(self._k.trade(order_id))
        if raw is None:
            return await self._settled(order_id) or _expired(t)
        pending = PendingTrade.from_json(raw)
        if pending.user != user:
            who = pending.display or t.gettext("the user who asked")
            return Reply.text(t.gettext("Only {name} can confirm this trade.", name=who), private=True)
        if self._clock() - pending.created > CONFIRM_WINDOW:
            await self._r.delete(self._k.trade(order_id))
            return _expired(t)
        if not await self._r.set(self._k.trade_claim(order_id), "publish", nx=True, ex=ORDER_RESULT_TTL):
            # Private: this answer must not replace the card, which the winning press will settle.
            busy = Reply.text(t.gettext("This trade is being published right now."), private=True)
            return await self._settled(order_id) or busy
        try:
            token = await token_for(user, pending.agent_id)
            result = await self._client.trade(token, pending.order)
        except (RateLimited, UpstreamUnavailable) as exc:
            if isinstance(exc, OutcomeUnknown):
                # The request left and no answer came: publishing again could trade twice.
                return await self._finish(
                    order_id,
                    Message(
                        title=t.gettext("Trade outcome unknown"),
                        body=exc.localised(t) + " " + t.gettext("/positions shows whether it went through."),
                    ),
                )
            # Nothing was recorded upstream: the same press may be tried again within the window.
            await self._r.delete(self._k.trade_claim(order_id))
            return Reply.text(exc.localised(t) + " " + t.gettext("Press Confirm again to retry."), private=True)
        except TokenRejected:
            await self._r.delete(self._k.trade_claim(order_id))
            raise
        except UpstreamError as exc:
            reason = str(exc.params.get("reason") or exc.localised(t))
            return await self._finish(
                order_id,
                Message(
                    title=t.gettext("Not published: {order}", order=cards.order_line(pending.order)),
                    body=t.gettext("AI-Trader refused the trade: {reason}", reason=reason),
                ),
            )
        except BaseException:
            await self._r.delete(self._k.trade_claim(order_id))  # e.g. no linked agent any more
            raise
        log.info("trades: published order=%s signal=%s", order_id, result.signal_id)
        return await self._finish(order_id, cards.published_trade(pending.order, result, t))

    async def cancel(self, order_id: str, user: str, t: Translator = ENGLISH) -> Reply:
        raw = await self._r.get(self._k.trade(order_id))
        if raw is None:
            return await self._settled(order_id) or _expired(t)
        pending = PendingTrade.from_json(raw)
        if pending.user != user:
            who = pending.display or t.gettext("the user who asked")
            return Reply.text(t.gettext("Only {name} can cancel this trade.", name=who), private=True)
        if not await self._r.set(self._k.trade_claim(order_id), "cancel", nx=True, ex=ORDER_RESULT_TTL):
            busy = Reply.text(t.gettext("This trade is being published right now."), private=True)
            return await self._settled(order_id) or busy
        return await self._finish(
            order_id,
            Message(
                title=t.gettext("Cancelled: {order}", order=cards.order_line(pending.order)),
                body=t.gettext("Nothing was published."),
            ),
        )

    async def _finish(self, order_id: str, message: Message) -> Reply:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(self._k.trade_done(order_id), message.to_json(), ex=ORDER_RESULT_TTL)
            pipe.delete(self._k.trade(order_id))
            await pipe.execute()
        return Reply((message,))

    async def _settled(self, order_id: str) -> Reply | None:
        """How an order ended, for every press after the one that settled it."""
        raw = await self._r.get(self._k.trade_done(order_id))
        return Reply((Message.from_json(raw),)) if raw is not None else None


def _expired(t: Translator) -> Reply:
    return Reply.text(
        t.gettext(
            "This trade was not confirmed within {seconds} s; nothing was published. Run /trade again.",
            seconds=CONFIRM_WINDOW,
        )
    )
