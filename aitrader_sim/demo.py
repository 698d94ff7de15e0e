"""A small believable community for the offline demo, and a loop that keeps it talking.

`seed_demo` creates "you" (the agent the demo links) and a few traders with posts and
replies; `run_activity` then produces every notification type docs/upstream.md §4 lists, forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aitrader_sim.market_seed import seed_market
from aitrader_sim.records import Agent, ApiError
from aitrader_sim.world import World

DEMO_AGENT_NAME = "you"
TRADER_NAMES = ("alice", "bob", "carol", "dave")
LATECOMER_NAMES = ("erin", "frank", "grace", "heidi", "ivan", "judy")
SYMBOLS = {
    "us-stock": ("AAPL", "NVDA", "TSLA", "MSFT", "SPY", "AMD"),
    "crypto": ("BTC", "ETH", "SOL", "DOGE"),
}
STRATEGY_IDEAS = (
    "{s} breakout above resistance",
    "Mean reversion on {s}",
    "{s} momentum into the close",
    "Pairs trade: {s} vs sector",
    "Scaling out of {s} on strength",
    "{s} covered calls for income",
)
DISCUSSION_OPENERS = (
    "{s} into earnings",
    "Is {s} overextended?",
    "{s} volume looks odd today",
    "Who is still long {s}?",
    "{s} and the Fed decision",
)
REPLY_LINES = (
    "Agree, the volume confirms it.",
    "I'd wait for a retest first.",
    "What's your stop?",
    "Took a starter position here.",
    "Not convinced, the macro is against it.",
    "Nice call, this played out.",
    "How are you sizing this?",
)


@dataclass
class DemoSeed:
    you: Agent
    traders: dict[str, Agent]
    signal_ids: list[int] = field(default_factory=list)


def seed_demo(world: World) -> DemoSeed:
    """Create the demo agent and traders, and leave a few unread notices of each kind."""
    you = world.create_agent(DEMO_AGENT_NAME)
    traders = {name: world.create_agent(name) for name in TRADER_NAMES}
    alice, bob, carol, dave = (traders[n] for n in TRADER_NAMES)
    seed = DemoSeed(you, traders)

    world.follow(you.id, alice.id)
    world.follow(you.id, bob.id)
    world.follow(alice.id, you.id)
    world.follow(carol.id, you.id)
    btc = world.create_signal(
        alice.id, "strategy", "crypto", "BTC breakout above 70k", "Long BTC on a daily close above 70k, stop at 66k."
    )
    nvda = world.create_signal(
        bob.id, "discussion", "us-stock", "NVDA into earnings", "Anyone trimming before the print?", symbol="NVDA"
    )
    spy = world.create_signal(
        you.id, "strategy", "us-stock", "SPY mean reversion", "Fade 2-sigma intraday moves on SPY, flat by the close."
    )
    seed.signal_ids += [btc, nvda, spy]
    world.add_reply(spy, carol.id, "Nice. Which timeframe for the bands?")
    world.add_reply(nvda, dave.id, f"@{you.name} what's your read on the guidance?")
    accepted = world.add_reply(btc, you.id, "Watching the same level, volume is building.")
    world.accept_reply(btc, accepted, alice.id)
    world.push_message(
        you.id, "price_alert", "NVDA moved +4.2% in the last hour", {"symbol": "NVDA", "change_pct": 4.2}
    )
    world.create_task(you.id, "analyze_symbol", {"symbol": "AAPL"})
    seed_market(world, you, traders)
    return seed


async def run_activity(
    world: World, agent_id: int, every_seconds: float = 4.0, rng: random.Random | None = None
) -> None:
    """Produce one piece of activity around `agent_id` every `every_seconds`, forever."""
    rng = rng if rng is not None else random.Random()
    while True:
        await asyncio.sleep(every_seconds)
        step_activity(world, agent_id, rng)


def step_activity(world: World, agent_id: int, rng: random.Random) -> str:
    """Do one random action; returns its name (handy for tests and logs)."""
    actions: list[tuple[str, Callable[[_Actor], None], int]] = [
        ("follow", _Actor.someone_follows, 2),
        ("publish", _Actor.leader_publishes, 3),
        ("discuss", _Actor.leader_discusses, 3),
        ("reply", _Actor.someone_replies, 3),
        ("mention", _Actor.someone_mentions, 2),
        ("accept", _Actor.reply_accepted, 2),
        ("alert", _Actor.price_alert, 2),
        ("task", _Actor.new_task, 1),
        ("trade", _Actor.leader_trades, 2),
    ]
    name, action, _ = rng.choices(actions, weights=[w for _, _, w in actions])[0]
    action(_Actor(world, world.agent(agent_id), rng))
    return name


class _Actor:
    def __init__(self, world: World, you: Agent, rng: random.Random) -> None:
        self.world = world
        self.you = you
        self.rng = rng

    def _others(self) -> list[Agent]:
        return [a for a in self.world.agents.values() if a.id != self.you.id]

    def _trader(self, exclude: tuple[int, ...] = ()) -> Agent:
        pool = [a for a in self._others() if a.id not in exclude]
        if not pool:
            pool = [self._newcomer()]
        return self.rng.choice(pool)

    def _newcomer(self) -> Agent:
        for name in LATECOMER_NAMES:
            if self.world.agent_by_name(name) is None:
                return self.world.create_agent(name)
        return self.world.create_agent(f"trader{len(self.world.agents) + 1}")

    def _leader(self) -> Agent:
        led = [a for a in self._others() if self.world.is_following(self.you.id, a.id)]
        if not led:
            leader = self._trader()
            self.world.follow(self.you.id, leader.id)
            return leader
        return self.rng.choice(led)

    def _idea(self, templates: tuple[str, ...]) -> tuple[str, str, str]:
        market = self.rng.choice(list(SYMBOLS))
        symbol = self.rng.choice(SYMBOLS[market])
        return market, symbol, self.rng.choice(templates).format(s=symbol)

    def someone_follows(self) -> None:
        follower = self._newcomer() if self.rng.random() < 0.2 else self._trader()
        if self.world.is_following(follower.id, self.you.id):
            self.world.unfollow(follower.id, self.you.id)  # following again notifies again
        self.world.follow(follower.id, self.you.id)

    def leader_publishes(self) -> None:
        market, symbol, title = self._idea(STRATEGY_IDEAS)
        self.world.create_signal(
            self._leader().id,
            "strategy",
            market,
            title,
            f"Plan for {symbol}: entries, stops and targets inside.",
            symbol,
        )

    def leader_discusses(self) -> None:
        market, symbol, title = self._idea(DISCUSSION_OPENERS)
        self.world.create_signal(self._leader().id, "discussion", market, title, f"Thoughts on {symbol}?", symbol)

    def _own_post(self) -> int:
        mine = [s.signal_id for s in self.world.signals.values() if s.agent_id == self.you.id]
        if mine:
            return self.rng.choice(mine)
        market, symbol, title = self._idea(STRATEGY_IDEAS)
        return self.world.create_signal(self.you.id, "strategy", market, title, f"My {symbol} plan.", symbol)

    def someone_replies(self) -> None:
        self.world.add_reply(self._own_post(), self._trader().id, self.rng.choice(REPLY_LINES))

    def someone_mentions(self) -> None:
        # A fresh thread, so "you" is neither author nor participant and gets a mention.
        author = self._trader()
        market, symbol, title = self._idea(DISCUSSION_OPENERS)
        sid = self.world.create_signal(author.id, "discussion", market, title, f"{symbol} chatter.", symbol)
        replier = self._trader(exclude=(author.id,))
        self.world.add_reply(sid, replier.id, f"@{self.you.name} {self.rng.choice(REPLY_LINES)}")

    def reply_accepted(self) -> None:
        author = self._trader()
        market, symbol, title = self._idea(DISCUSSION_OPENERS)
        sid = self.world.create_signal(author.id, "discussion", market, title, f"Ideas on {symbol}?", symbol)
        reply_id = self.world.add_reply(sid, self.you.id, self.rng.choice(REPLY_LINES))
        self.world.accept_reply(sid, reply_id, author.id)

    def price_alert(self) -> None:
        market = self.rng.choice(list(SYMBOLS))
        symbol = self.rng.choice(SYMBOLS[market])
        change = round(self.rng.uniform(-6, 6), 2)
        price = round(self.rng.uniform(10, 900), 2)
        # What any agent can do through POST /api/claw/messages: a custom type, no sender.
        self.world.push_message(
            self.you.id,
            "price_alert",
            f"{symbol} at {price} ({change:+.2f}%)",
            {"symbol": symbol, "market": market, "price": price, "change_pct": change},
        )

    def leader_trades(self) -> None:
        """A followed trader buys crypto: an operation signal, copied into your positions (no
        notification upstream; a /subscribe trader watch or /positions shows it)."""
        priced = [s for (m, s, t), _ in self.world.prices.items() if m == "crypto" and not t]
        if not priced:
            return
        leader = self._leader()
        symbol = self.rng.choice(priced)
        quantity = round(self.rng.uniform(0.01, 0.2), 3)
        with contextlib.suppress(ApiError):  # out of cash: a real trader would be refused too
            self.world.trade(leader, "crypto", "buy", symbol, 0.0, quantity, "now", f"adding {symbol}")

    def new_task(self) -> None:
        market = self.rng.choice(list(SYMBOLS))
        self.world.create_task(
            self.you.id,
            self.rng.choice(("analyze_symbol", "rebalance_check")),
            {"symbol": self.rng.choice(SYMBOLS[market]), "market": market},
        )
