"""Reconciliation's metrics, in the relay's registry (one process reconciles at a time)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReconcileMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "relay_reconciled_events",
            "Events recovered from the API and written (new in at least one stream), by event.",
            ["event"],
            registry=r,
        )
        self.sweeps = Counter(
            "relay_reconcile_sweeps",
            "Reconciliation sweeps, by outcome (ok, failed).",
            ["outcome"],
            registry=r,
        )
        self.last_success = Gauge(
            "relay_reconcile_last_success_timestamp_seconds",
            "Unix time the last successful sweep ended.",
            registry=r,
            multiprocess_mode="max",
        )
