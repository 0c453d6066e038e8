"""The long-lived parts of one relay process, built once from the settings and shared by
every request, the admin app and the background services."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest, multiprocess

from relay.ingest.body import BodyBudget
from relay.ingest.connections import PublicServer
from relay.ingest.handler import IngestHandler
from relay.ingest.remote import ClientAddress
from relay.ingest.secrets import SecretSource
from relay.ingest.signatures import Verifier, verifier_for
from relay.observability import IngestMetrics, TaskCollector
from relay.redis.client import REDIS_DOWN, Redis, check_version, redis_from_settings
from relay.redis.functions import load_library
from relay.redis.replication import ReplicaAck
from relay.registration.keeper import RegistrationStatus
from relay.registration.record import SecretCodec
from relay.settings import Settings
from relay.streams.health import StreamHealthCollector
from relay.streams.routes import Router, router_for
from relay.streams.writer import FanoutWriter
from relay.version import __version__

log = structlog.get_logger("relay.server")


def multiprocess_metrics() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


@dataclass
class Relay:
    """The long-lived parts of one relay process, built once and shared by every request."""

    settings: Settings
    redis: Redis
    secrets: SecretSource
    verifier: Verifier
    router: Router
    writer: FanoutWriter
    metrics: IngestMetrics
    ingest: IngestHandler
    # What senders' bytes may hold of this process's memory (relay.memory): taken by the
    # public connections as bytes arrive.
    body_budget: BodyBudget
    draining: bool = False
    health: StreamHealthCollector = field(default_factory=StreamHealthCollector)
    version_checked: bool = False
    public: PublicServer | None = None  # built with the listener: it needs the loop
    registration: RegistrationStatus = field(default_factory=RegistrationStatus)

    @classmethod
    def from_settings(cls, settings: Settings) -> Relay:
        redis = redis_from_settings(settings)
        verifier = verifier_for(settings)
        codec = SecretCodec(settings.secret_encryption_key)
        metrics = IngestMetrics()
        if not multiprocess_metrics():
            ProcessCollector(registry=metrics.registry)
            metrics.registry.register(TaskCollector())
        secrets = SecretSource(
            settings.webhook_secrets,
            verifier.key_for,
            redis=redis,
            prefix=settings.stream_prefix,
            public_url=settings.public_url,
            codec=codec,
        )
        router = router_for(settings)
        ack = None
        if settings.redis_wait_replicas:
            ack = ReplicaAck(settings.redis_wait_replicas, settings.redis_wait_timeout)
        writer = FanoutWriter(redis, dedupe_ttl=settings.dedupe_ttl, ack=ack)
        ingest = IngestHandler(
            verifier=verifier,
            secrets=secrets,
            router=router,
            writer=writer,
            metrics=metrics,
            max_body_bytes=settings.max_body_bytes,
            max_in_flight=settings.max_in_flight,
            client_address=ClientAddress(settings.trusted_proxies),
        )
        budget = BodyBudget(settings.memory.body_budget)
        relay = cls(settings, redis, secrets, verifier, router, writer, metrics, ingest, budget)
        metrics.registry.register(relay.health)
        metrics.build_info.labels(__version__).set(1)
        metrics.request_bytes_budget.set(budget.limit)
        return relay

    def streams(self) -> list[str]:
        """The streams the routes can write: trimmed, and reported on in /metrics."""
        return self.router.known_streams(self.settings.events)

    async def warm_up(self) -> None:
        """Check the server's version, load the script and the stored secrets. Redis being
        down here is not fatal (the version is checked once it answers); a server too old
        (:class:`RedisTooOld`) or a stored secret the encryption key cannot read is."""
        try:
            await check_version(self.redis)
            self.version_checked = True
            await self.writer.load_script()
            await load_library(self.redis)  # the FCALLs of workers in any language
        except REDIS_DOWN as exc:
            log.warning("redis_unavailable_at_start", error=type(exc).__name__)
        await self.secrets.refresh(strict=True)

    def sample_in_flight(self) -> None:
        """Copy the deliveries in flight and the open public connections to their gauges:
        done on each scrape and once a second (other processes' scrapes read them with
        RELAY_WORKERS > 1), which is cheaper than gauge updates per delivery. The signing keys
        ride along."""
        self.metrics.in_flight.set(self.ingest.in_flight)
        self.metrics.request_bytes.set(self.body_budget.held)
        self.metrics.signing_keys.set(len(self.secrets.keys))
        if self.public is not None:
            self.metrics.connections.set(self.public.open_connections)

    async def readiness(self) -> dict[str, str]:
        problems = {}
        if self.draining:
            problems["shutdown"] = "draining"
        if not self.secrets.keys:
            problems["signing_keys"] = "none loaded"
        try:
            await self.redis.ping()
        except REDIS_DOWN as exc:
            problems["redis"] = type(exc).__name__
        self.metrics.ready.set(0 if problems else 1)
        return problems

    async def ready(self) -> tuple[int, dict[str, Any]]:
        """/readyz: 200 when nothing is wrong, else 503 naming each problem."""
        problems = await self.readiness()
        if problems:
            return 503, {"status": "not ready", **problems}
        return 200, {"status": "ready"}

    def scrape(self) -> bytes:
        """/metrics: this process's registry, or with RELAY_WORKERS > 1 the sum over every
        process (the stream health is sampled by this one, not in the shared files)."""
        self.sample_in_flight()
        if multiprocess_metrics():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(self.health)
            return generate_latest(registry)
        return generate_latest(self.metrics.registry)
