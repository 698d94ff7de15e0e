"""Prometheus metrics of one relay process, on a registry of its own (no global state).

`aitrader-relay run` serves them on PORT (with the gauges of `relay.health`); `/status` and the benchmarks
read the same counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("relay_polls", "Heartbeat or recent polls", ["mode", "outcome"], registry=r)
        self.persisted = Counter("relay_notifications_persisted", "New notifications stored", registry=r)
        self.reconciled = Counter(
            "relay_notifications_recovered", "Notifications recovered through messages/recent", registry=r
        )
        self.possible_losses = Counter(
            "relay_possible_losses",
            "Lost heartbeat responses that messages/recent could not prove recovered",
            registry=r,
        )
        self.enqueued = Counter("relay_deliveries_enqueued", "Deliveries written to outboxes", registry=r)
        self.delivered = Counter("relay_deliveries", "Deliveries accepted by a platform", ["platform"], registry=r)
        self.retry_later = Counter(
            "relay_delivery_retry_later", "Sends deferred by a platform (429 and the like)", ["platform"], registry=r
        )
        self.dead_letters = Counter("relay_dead_letters", "Deliveries given up", ["platform"], registry=r)
        self.uncertain_resends = Counter(
            "relay_uncertain_resends", "Resends whose first attempt may have arrived", registry=r
        )
        self.upstream_errors = Counter("relay_upstream_errors", "AI-Trader errors by class", ["error"], registry=r)
        self.delivery_latency = Histogram(
            "relay_delivery_seconds",
            "Outbox enqueue to platform acceptance",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.held = Counter(
            "relay_notifications_held",
            "Notifications held for quiet hours, a snooze or a digest",
            ["reason"],
            registry=r,
        )
        self.released = Counter(
            "relay_hold_summaries", "Summaries and digests queued for held notifications", ["reason"], registry=r
        )
        # The WebSocket doorbell (relay.doorbell): sockets held, pushes heard, polls they caused.
        self.doorbell_held = Gauge("relay_doorbell_agents", "Agents whose doorbell this process holds", registry=r)
        self.doorbell_sockets = Gauge("relay_doorbell_sockets", "Doorbell sockets open now", registry=r)
        self.doorbell_connects = Counter(
            "relay_doorbell_connects", "Doorbell connection attempts by outcome", ["outcome"], registry=r
        )
        self.doorbell_pushes = Counter("relay_doorbell_pushes", "Pushes heard on doorbell sockets", registry=r)
        self.doorbell_polls = Counter(
            "relay_doorbell_polls",
            "Polls asked for by pushes: polled, or busy (a poll already ran)",
            ["outcome"],
            registry=r,
        )
        self.agents = Gauge("relay_agents_polled", "Agents in the shared poll queue", registry=r)
        self.poll_lateness = Histogram(
            "relay_poll_lateness_seconds",
            "From an agent's due time to its claim by this process",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
