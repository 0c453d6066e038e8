"""The worker runtime's metrics: the shared set plus what held entries, outages and lost
entries need to be watched by."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relay.observability import WorkerMetrics as BaseWorkerMetrics


class WorkerMetrics(BaseWorkerMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        labels = ["stream", "group"]
        self.lost = Counter(
            "relay_worker_entries_lost",
            "Entries of the group gone (trimmed, deleted) before their handler succeeded.",
            labels,
            registry=r,
        )
        self.rejected = Counter(
            "relay_worker_rejected", "Entries a handler rejected (sent to the DLQ).", labels,
            registry=r,
        )  # fmt: skip
        self.held = Gauge(
            "relay_worker_held",
            "Entries held: running, waiting for a slot or for a retry (capped by max held).",
            labels,
            registry=r,
        )
        self.paused = Gauge(
            "relay_worker_paused",
            "1 while consumption is paused: reason=outage (every call failing), "
            "reason=operator (relay pause, or the operator API).",
            [*labels, "reason"],
            registry=r,
        )

    def series(self, stream: str, group: str) -> WorkerSeries:
        """The children for one stream and group, created now (so every series exists from
        the start and alerts see a 0) and looked up once, not per entry."""
        labels = (stream, group)
        return WorkerSeries(
            handled=self.handled.labels(*labels),
            failed=self.failed.labels(*labels),
            retried=self.retried.labels(*labels),
            dead_lettered=self.dead_lettered.labels(*labels),
            rejected=self.rejected.labels(*labels),
            taken_over=self.taken_over.labels(*labels),
            lost=self.lost.labels(*labels),
            in_flight=self.in_flight.labels(*labels),
            held=self.held.labels(*labels),
            paused=self.paused.labels(*labels, "outage"),
            paused_by_operator=self.paused.labels(*labels, "operator"),
            latency={
                outcome: self.latency.labels(*labels, outcome)
                for outcome in ("handled", "failed", "rejected")
            },
        )


@dataclass(frozen=True)
class WorkerSeries:
    handled: Counter
    failed: Counter
    retried: Counter
    dead_lettered: Counter
    rejected: Counter
    taken_over: Counter
    lost: Counter
    in_flight: Gauge
    held: Gauge
    paused: Gauge  # by an outage
    paused_by_operator: Gauge
    latency: dict[str, Histogram]
