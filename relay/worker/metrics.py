"""The worker runtime's metrics: the shared set plus what held entries, outages and lost
entries need to be watched by."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

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
            "1 while a downstream outage (every call failing) pauses consumption.",
            labels,
            registry=r,
        )
